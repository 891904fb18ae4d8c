#include "controller/playbooks/notification_limiter.h"

#include <fmt/format.h>

namespace riposte::controller {

using nlohmann::json;

bool NotificationLimiter::has_room(PerUrl& state, std::int64_t now_ms) const {
  while (!state.sent_at_ms.empty() && state.sent_at_ms.front() <= now_ms - limit_.window_ms)
    state.sent_at_ms.pop_front();
  return state.sent_at_ms.size() < static_cast<std::size_t>(limit_.count);
}

bool NotificationLimiter::admit(const std::string& url, const json& body, std::int64_t now_ms) {
  auto& state = urls_[url];
  // Held ones go first (as a digest), so a later notification never overtakes them.
  if (state.held_count == 0 && has_room(state, now_ms)) {
    state.sent_at_ms.push_back(now_ms);
    return true;
  }
  if (state.held.size() < kDigestBodies) state.held.push_back(body);
  ++state.held_count;
  return false;
}

std::vector<NotificationLimiter::Digest> NotificationLimiter::due(std::int64_t now_ms) {
  std::vector<Digest> out;
  for (auto& [url, state] : urls_) {
    if (state.held_count == 0 || !has_room(state, now_ms)) continue;
    state.sent_at_ms.push_back(now_ms);
    const auto text = fmt::format(
        "{} notification(s) were held back by the webhook rate limit ({} per {} s); the first {} "
        "follow.",
        state.held_count, limit_.count, limit_.window_ms / 1000, state.held.size());
    out.push_back({url, json{{"event", "notifications_batched"},
                             {"count", state.held_count},
                             {"text", text},
                             {"notifications", std::move(state.held)}}});
    state.held.clear();
    state.held_count = 0;
  }
  return out;
}

std::size_t NotificationLimiter::held() const {
  std::size_t n = 0;
  for (const auto& [url, state] : urls_) n += state.held_count;
  return n;
}

}  // namespace riposte::controller
