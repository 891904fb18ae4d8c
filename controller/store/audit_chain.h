#pragma once

// The audit log's hash chain. Each entry's hash is SHA-256 over its own fields and the previous
// entry's hash, so editing, deleting or reordering any entry breaks every link after it. The
// first entry's previous hash is 64 zeros.
//
// What this proves: the log was not altered without also rewriting every later hash. It does not
// stop someone with write access to the database from rewriting the whole tail; exporting the
// log (or its latest hash) elsewhere regularly is what anchors it.

#include <atomic>
#include <optional>
#include <string>

#include "controller/store/store.h"

namespace riposte::controller {

inline constexpr std::string_view kAuditGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// SHA-256 (hex) over seq, time, actor, event, subject, details and prev_hash, each
// length-delimited (a JSON array), so no two different entries hash the same input. Written out
// (docs/security.md, "Audit log", for re-verifying an export elsewhere):
//   hash = lowercase hex of SHA-256 over the UTF-8 bytes of the compact JSON array
//          [seq, at_ms, actor, event, subject, details, prev_hash]
// with seq and at_ms (Unix milliseconds) as JSON integers, the others as JSON strings (details is
// the entry's details as stored: the export's `details_text`), no spaces, nlohmann::json's
// escaping (RFC 8259: `"`, `\` and control characters escaped, other characters as UTF-8).
std::string audit_entry_hash(const AuditEntry& entry);

struct AuditVerification {
  std::int64_t entries = 0;
  std::optional<std::int64_t> first_broken_seq;
  std::string problem;  // what is wrong with that entry
  std::string head_hash;
};

// Checks entries one after another in sequence order: the same walk for the live log and for an
// export read back from a file.
class AuditChainWalk {
 public:
  // false once an entry breaks the chain (and for every entry after): report() says where.
  bool add(const AuditEntry& entry);
  const AuditVerification& report() const { return report_; }

 private:
  AuditVerification report_{0, std::nullopt, "", std::string(kAuditGenesisHash)};
  std::int64_t expected_seq_ = 1;
};

// Walks the whole chain in order. Gives up with an error between pages once `*stop` is set (a
// controller shutting down does not wait for a walk of millions of entries).
Result<AuditVerification> verify_audit_chain(Store& store,
                                             const std::atomic<bool>* stop = nullptr);

}  // namespace riposte::controller
