#pragma once

// Bounds guessing: failed authentications and enrollments are counted per source address, and an
// address with more than `max_failures` in the last `window_ms` is answered 429 (with how long to
// wait) before its next attempt is even checked. Without it the API answers thousands of wrong
// tokens a second. Per address, not per token: a guesser changes tokens, not addresses. (An
// operator behind the same NAT address as a guesser waits too; the wait is at most the window.)
//
// Thread-safe (API handlers run on a worker pool). At most kMaxAddresses are tracked; beyond that
// the address tracked longest is forgotten, so a spray of addresses cannot grow memory.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace riposte::controller {

class FailureThrottle {
 public:
  static constexpr std::size_t kMaxAddresses = 65'536;

  FailureThrottle(int max_failures, std::int64_t window_ms)
      : max_failures_(max_failures), window_ms_(window_ms) {}

  // Seconds until `address` may try again; 0 when it may now.
  int retry_after_s(const std::string& address, std::int64_t now_ms);
  void failed(const std::string& address, std::int64_t now_ms);

 private:
  void prune(std::deque<std::int64_t>& times, std::int64_t now_ms) const;

  int max_failures_;
  std::int64_t window_ms_;
  std::mutex mutex_;
  std::map<std::string, std::deque<std::int64_t>> failures_;
  std::deque<std::string> order_;  // addresses in the order first tracked (for eviction)
};

// "203.0.113.7:51234" -> "203.0.113.7", "[2001:db8::1]:443" -> "2001:db8::1"; other text as is.
std::string source_address(std::string_view remote);

}  // namespace riposte::controller
