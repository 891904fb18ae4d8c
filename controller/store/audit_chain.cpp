#include "controller/store/audit_chain.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "protocol/crypto.h"

namespace riposte::controller {

std::string audit_entry_hash(const AuditEntry& e) {
  const nlohmann::json fields = {e.seq,     e.at_ms,   e.actor,    e.event,
                                 e.subject, e.details, e.prev_hash};
  return crypto::sha256_hex(fields.dump());
}

Result<AuditVerification> verify_audit_chain(Store& store, const std::atomic<bool>* stop) {
  AuditVerification report;
  std::string expected_prev(kAuditGenesisHash);
  std::int64_t expected_seq = 1;
  std::int64_t after = 0;
  for (;;) {
    if (stop != nullptr && *stop) return Error{"stopped: the controller is shutting down"};
    auto page = store.audit_entries(after, 1000);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& e : *page) {
      std::string problem;
      if (e.seq != expected_seq) {
        problem =
            fmt::format("sequence {} follows {} (an entry is missing)", e.seq, expected_seq - 1);
      } else if (e.prev_hash != expected_prev) {
        problem = "previous-hash link does not match the entry before it";
      } else if (audit_entry_hash(e) != e.hash) {
        problem = "content does not match its hash (the entry was edited)";
      }
      if (!problem.empty()) {
        report.first_broken_seq = e.seq;
        report.problem = std::move(problem);
        return report;
      }
      ++report.entries;
      expected_prev = e.hash;
      expected_seq = e.seq + 1;
      after = e.seq;
    }
  }
  report.head_hash = expected_prev;
  return report;
}

}  // namespace riposte::controller
