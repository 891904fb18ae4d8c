#include "common/duration.h"

#include <fmt/format.h>

#include <charconv>

namespace riposte {

Result<std::int64_t> parse_duration_ms(std::string_view text) {
  const Error bad{fmt::format("'{}' is not a duration like 90s, 30m, 24h or 7d", text)};
  if (text.size() < 2) return bad;
  std::int64_t unit_ms = 0;
  switch (text.back()) {
    case 's':
      unit_ms = 1000;
      break;
    case 'm':
      unit_ms = 60'000;
      break;
    case 'h':
      unit_ms = 3'600'000;
      break;
    case 'd':
      unit_ms = 86'400'000;
      break;
    default:
      return bad;
  }
  const auto digits = text.substr(0, text.size() - 1);
  std::int64_t count = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (ec != std::errc() || end != digits.data() + digits.size() || count <= 0 ||
      count > INT64_MAX / unit_ms) {
    return bad;
  }
  return count * unit_ms;
}

std::string format_seconds(double seconds) {
  if (seconds < 120) return fmt::format("{:.1f} s", seconds);
  if (seconds < 7200) return fmt::format("{:.1f} min", seconds / 60);
  return fmt::format("{:.1f} h", seconds / 3600);
}

}  // namespace riposte
