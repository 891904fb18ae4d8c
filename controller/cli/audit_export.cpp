#include "controller/cli/audit_export.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace riposte::cli {

using nlohmann::json;

Result<controller::AuditVerification> verify_audit_export(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{fmt::format("cannot read {}", file.string())};
  controller::AuditChainWalk walk;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const auto parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
    const auto fail = [&](std::string_view why) {
      return Error{fmt::format("{} line {}: {}", file.string(), line_no, why)};
    };
    if (!parsed.is_object()) return fail("not a JSON object");
    controller::AuditEntry e;
    for (const char* key : {"seq", "at_ms"})
      if (!parsed.contains(key) || !parsed[key].is_number_integer())
        return fail(fmt::format("'{}' is missing or not an integer", key));
    // details_text is the details as hashed; an export's `details` is only its parsed view.
    for (const char* key : {"actor", "event", "subject", "details_text", "prev_hash", "hash"})
      if (!parsed.contains(key) || !parsed[key].is_string())
        return fail(fmt::format("'{}' is missing or not a string", key));
    e.seq = parsed["seq"].get<std::int64_t>();
    e.at_ms = parsed["at_ms"].get<std::int64_t>();
    e.actor = parsed["actor"].get<std::string>();
    e.event = parsed["event"].get<std::string>();
    e.subject = parsed["subject"].get<std::string>();
    e.details = parsed["details_text"].get<std::string>();
    e.prev_hash = parsed["prev_hash"].get<std::string>();
    e.hash = parsed["hash"].get<std::string>();
    if (!walk.add(e)) break;
  }
  return walk.report();
}

}  // namespace riposte::cli
