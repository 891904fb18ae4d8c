#pragma once

// Keeps an alert storm from flooding a chat channel: at most `limit.count` posts to one webhook
// URL in any `limit.window_ms`. A notification over the limit is held, and once the window has
// room again the held ones go out as one digest post (how many, and the first few bodies), so
// nothing is silently dropped and the channel sees one message instead of hundreds.
//
// Held notifications live in memory: a controller restart loses the digest (each run's own
// record still says what it would have sent). Not thread-safe: the playbook engine's one worker
// thread owns it.

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/playbooks/autonomy_policy.h"

namespace riposte::controller {

class NotificationLimiter {
 public:
  // The most bodies a digest repeats; the count covers all of them.
  static constexpr std::size_t kDigestBodies = 20;

  explicit NotificationLimiter(RateLimit limit) : limit_(limit) {}

  // Whether a post to `url` may go now (it is then counted); false holds `body` for a digest.
  bool admit(const std::string& url, const nlohmann::json& body, std::int64_t now_ms);

  struct Digest {
    std::string url;
    nlohmann::json body;  // {event: notifications_batched, count, text, notifications: [...]}
  };
  // Digests whose webhook has room again at `now_ms` (each counted as one post).
  std::vector<Digest> due(std::int64_t now_ms);

  std::size_t held() const;

 private:
  struct PerUrl {
    std::deque<std::int64_t> sent_at_ms;  // within the current window
    std::vector<nlohmann::json> held;
    std::size_t held_count = 0;
  };
  bool has_room(PerUrl& state, std::int64_t now_ms) const;

  RateLimit limit_;
  std::map<std::string, PerUrl> urls_;
};

}  // namespace riposte::controller
