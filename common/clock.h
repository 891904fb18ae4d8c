#pragma once

#include <chrono>
#include <cstdint>

namespace riposte {

// Wall-clock time source, injected so tests can control expiry and timestamps.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_unix_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t now_unix_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t now_ms) : now_ms_(now_ms) {}
  std::int64_t now_unix_ms() const override { return now_ms_; }
  void advance_ms(std::int64_t delta) { now_ms_ += delta; }

 private:
  std::int64_t now_ms_;
};

}  // namespace riposte
