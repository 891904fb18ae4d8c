#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace riposte::agent {

// Exponential backoff with "equal jitter": the n-th delay is uniformly drawn from
// [d/2, d] with d = min(max, initial * 2^n). Jitter spreads a fleet's reconnects after a controller
// restart instead of having thousands of agents knock at the same instant.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, std::uint64_t seed);

  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }
  unsigned attempt() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  unsigned attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace riposte::agent
