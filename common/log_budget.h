#pragma once

// A bound on how often one kind of log line is written. Lines caused by peers that need no
// credentials (a failed TLS handshake, a refused certificate) would otherwise let anyone on the
// network write to the controller's disk at the rate the connection limits allow.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace riposte {

class LogBudget {
 public:
  explicit LogBudget(int lines_per_minute) : per_minute_(lines_per_minute) {}

  // Whether to write a line at `now_ms`: at most lines_per_minute in each minute from the first
  // line of that minute. When it is true, `held_back` is how many lines were not written since
  // the last one that was (to say so in this one). Thread-safe.
  bool take(std::int64_t now_ms, std::uint64_t& held_back);

  // " (N more WHAT not logged)" to end a line written after `held_back` were not; "" for none.
  static std::string held_back_note(std::uint64_t held_back, std::string_view what);

 private:
  const int per_minute_;
  std::mutex mutex_;
  std::int64_t window_start_ms_ = 0;
  bool started_ = false;
  int written_ = 0;
  std::uint64_t held_back_ = 0;
};

}  // namespace riposte
