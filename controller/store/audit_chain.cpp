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

bool AuditChainWalk::add(const AuditEntry& e) {
  if (report_.first_broken_seq) return false;
  std::string problem;
  if (e.seq != expected_seq_) {
    problem = fmt::format("sequence {} follows {} (an entry is missing)", e.seq, expected_seq_ - 1);
  } else if (e.prev_hash != report_.head_hash) {
    problem = "previous-hash link does not match the entry before it";
  } else if (audit_entry_hash(e) != e.hash) {
    problem = "content does not match its hash (the entry was edited)";
  }
  if (!problem.empty()) {
    report_.first_broken_seq = e.seq;
    report_.problem = std::move(problem);
    return false;
  }
  ++report_.entries;
  report_.head_hash = e.hash;
  expected_seq_ = e.seq + 1;
  return true;
}

Result<AuditVerification> verify_audit_chain(Store& store, const std::atomic<bool>* stop) {
  AuditChainWalk walk;
  std::int64_t after = 0;
  for (;;) {
    if (stop != nullptr && *stop) return Error{"stopped: the controller is shutting down"};
    auto page = store.audit_entries(after, 1000);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& e : *page) {
      if (!walk.add(e)) return walk.report();
      after = e.seq;
    }
  }
  return walk.report();
}

}  // namespace riposte::controller
