#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace riposte {

// ISO 8601 in UTC with milliseconds, e.g. "2026-11-28T22:52:49.123Z": API timestamps and JSON logs.
std::string format_utc_ms(std::int64_t unix_ms);

// The same for an API field that may be unset: the timestamp, or JSON null.
inline nlohmann::json utc_or_null(const std::optional<std::int64_t>& unix_ms) {
  return unix_ms ? nlohmann::json(format_utc_ms(*unix_ms)) : nlohmann::json(nullptr);
}

// Parses an RFC 3339 / ISO 8601 timestamp as SIEMs write them: "2026-11-28T22:52:49Z",
// fractions of a second, "+02:00" or "+0200" offsets, a space instead of the 'T'. Returns Unix
// milliseconds, or nullopt when the text is not such a timestamp.
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);

}  // namespace riposte
