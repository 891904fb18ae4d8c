#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace riposte {

// ISO 8601 in UTC with milliseconds, e.g. "2026-11-28T22:52:49.123Z": API timestamps and JSON logs.
std::string format_utc_ms(std::int64_t unix_ms);

// The same for an API field that may be unset: the timestamp, or JSON null.
inline nlohmann::json utc_or_null(const std::optional<std::int64_t>& unix_ms) {
  return unix_ms ? nlohmann::json(format_utc_ms(*unix_ms)) : nlohmann::json(nullptr);
}

}  // namespace riposte
