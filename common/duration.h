#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace riposte {

// Parses "90s", "30m", "24h", "7d" (a positive integer and one unit) into milliseconds.
Result<std::int64_t> parse_duration_ms(std::string_view text);

// A span of seconds for people: "42.0 s", "3.5 min", "2.0 h".
std::string format_seconds(double seconds);

}  // namespace riposte
