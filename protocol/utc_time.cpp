#include "protocol/utc_time.h"

#include <fmt/format.h>

#include <ctime>

namespace riposte {

std::string format_utc_ms(std::int64_t unix_ms) {
  const std::time_t seconds = unix_ms / 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", text, unix_ms % 1000);
}

}  // namespace riposte
