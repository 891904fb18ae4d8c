#pragma once

#include <cstdint>
#include <string>

namespace riposte {

// ISO 8601 in UTC with milliseconds, e.g. "2026-11-28T22:52:49.123Z": API timestamps and JSON logs.
std::string format_utc_ms(std::int64_t unix_ms);

}  // namespace riposte
