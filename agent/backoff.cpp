#include "agent/backoff.h"

#include <algorithm>

namespace riposte::agent {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                 std::uint64_t seed)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      max_(std::max(max, initial)),
      rng_(seed) {}

std::chrono::milliseconds Backoff::next() {
  // Cap the exponent so the shift cannot overflow however long the controller stays away.
  const unsigned exponent = std::min(attempt_, 30u);
  const auto ceiling = std::min<std::int64_t>(max_.count(), initial_.count() << exponent);
  ++attempt_;
  std::uniform_int_distribution<std::int64_t> jitter(ceiling / 2, ceiling);
  return std::chrono::milliseconds(jitter(rng_));
}

}  // namespace riposte::agent
