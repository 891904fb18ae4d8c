#pragma once

// Re-verifying an exported audit log offline (`riposte audit verify --file EXPORT`), with the
// same walk the controller uses (controller/store/audit_chain.h): no controller, no token.

#include <filesystem>

#include "common/result.h"
#include "controller/store/audit_chain.h"

namespace riposte::cli {

// Reads `riposte audit export` output (JSON lines: seq, at_ms, actor, event, subject,
// details_text, prev_hash, hash) and walks its chain from the first entry (seq 1, previous hash
// 64 zeros). An error names the line that is not an audit entry; a broken chain is a report
// with first_broken_seq set, not an error.
Result<controller::AuditVerification> verify_audit_export(const std::filesystem::path& file);

}  // namespace riposte::cli
