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
// length-delimited (a JSON array), so no two different entries hash the same input.
std::string audit_entry_hash(const AuditEntry& entry);

struct AuditVerification {
  std::int64_t entries = 0;
  std::optional<std::int64_t> first_broken_seq;
  std::string problem;  // what is wrong with that entry
  std::string head_hash;
};

// Walks the whole chain in order. Gives up with an error between pages once `*stop` is set (a
// controller shutting down does not wait for a walk of millions of entries).
Result<AuditVerification> verify_audit_chain(Store& store,
                                             const std::atomic<bool>* stop = nullptr);

}  // namespace riposte::controller
