#include "controller/cli/audit_export.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "common/utc_time.h"

namespace riposte::cli {

using nlohmann::json;

namespace {

// An entry is a few KiB; a line this long is not one (and reading it whole would take the
// memory of whatever the file holds: /dev/zero).
constexpr std::size_t kMaxLineBytes = 16u << 20;

// Reads one line of at most kMaxLineBytes; false at the end or past the limit (`too_long`).
bool read_line(std::istream& in, std::string& line, bool& too_long) {
  line.clear();
  too_long = false;
  char c;
  bool any = false;
  while (in.get(c)) {
    any = true;
    if (c == '\n') return true;
    if (line.size() >= kMaxLineBytes) {
      too_long = true;
      return false;
    }
    line.push_back(c);
  }
  return any;
}

// nlohmann keeps the last of two equal keys; another reader may take the first. An entry with a
// key twice could show one value and be hashed with another: refused.
bool has_duplicate_keys(const std::string& line) {
  std::vector<std::set<std::string>> open;
  bool duplicate = false;
  const auto ignored = json::parse(
      line,
      [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) open.emplace_back();
        if (event == json::parse_event_t::object_end && !open.empty()) open.pop_back();
        if (event == json::parse_event_t::key && !open.empty() &&
            !open.back().insert(parsed.get<std::string>()).second)
          duplicate = true;
        return true;
      },
      /*allow_exceptions=*/false);
  (void)ignored;
  return duplicate;
}

json details_view(const std::string& text) {
  auto parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? json(text) : parsed;
}

}  // namespace

Result<controller::AuditVerification> verify_audit_export(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    return Error{
        fmt::format("{} is not a file (an export written by riposte audit export)", file.string())};
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{fmt::format("cannot read {}", file.string())};
  controller::AuditChainWalk walk;
  std::string line;
  std::size_t line_no = 0;
  bool too_long = false;
  while (read_line(in, line, too_long)) {
    ++line_no;
    if (line.empty()) continue;
    const auto parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
    const auto fail = [&](std::string_view why) {
      return Error{fmt::format("{} line {}: {}", file.string(), line_no, why)};
    };
    if (!parsed.is_object()) return fail("not a JSON object");
    if (has_duplicate_keys(line)) return fail("a key appears twice in the entry");
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
    // What a reader sees must be what was hashed: `at` is at_ms, `details` is details_text.
    if (parsed.contains("at") && parsed["at"] != format_utc_ms(e.at_ms))
      return fail("'at' does not say the time 'at_ms' holds (and is hashed)");
    if (parsed.contains("details") && parsed["details"] != details_view(e.details))
      return fail("'details' is not what 'details_text' holds (and is hashed)");
    if (!walk.add(e)) break;
  }
  if (too_long)
    return Error{fmt::format("{} line {}: longer than {} bytes: not an audit entry", file.string(),
                             line_no + 1, kMaxLineBytes)};
  if (walk.report().entries == 0 && !walk.report().first_broken_seq)
    return Error{fmt::format("{} holds no audit entry: an export has at least one", file.string())};
  return walk.report();
}

}  // namespace riposte::cli
