#include "controller/api/failure_throttle.h"

#include <algorithm>

namespace riposte::controller {

void FailureThrottle::prune(std::deque<std::int64_t>& times, std::int64_t now_ms) const {
  while (!times.empty() && times.front() <= now_ms - window_ms_) times.pop_front();
}

int FailureThrottle::retry_after_s(const std::string& address, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  const auto found = failures_.find(address);
  if (found == failures_.end()) return 0;
  auto& times = found->second;
  prune(times, now_ms);
  if (static_cast<int>(times.size()) < max_failures_) return 0;
  // Until the oldest failure in the window leaves it.
  const auto wait_ms = times.front() + window_ms_ - now_ms;
  return static_cast<int>(std::max<std::int64_t>(1, (wait_ms + 999) / 1000));
}

void FailureThrottle::failed(const std::string& address, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = failures_.try_emplace(address);
  if (inserted) {
    order_.push_back(address);
    if (order_.size() > kMaxAddresses) {
      failures_.erase(order_.front());
      order_.pop_front();
    }
  }
  prune(it->second, now_ms);
  it->second.push_back(now_ms);
}

std::string source_address(std::string_view remote) {
  if (remote.starts_with('[')) {
    const auto close = remote.find(']');
    return std::string(close == std::string_view::npos ? remote : remote.substr(1, close - 1));
  }
  const auto colon = remote.rfind(':');
  if (colon == std::string_view::npos || remote.find(':') != colon) return std::string(remote);
  return std::string(remote.substr(0, colon));
}

}  // namespace riposte::controller
