#include "controller/api/console_sessions.h"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <algorithm>

#include "protocol/crypto.h"

namespace riposte::controller {

bool secrets_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

ConsoleSessions::ConsoleSessions(const Clock& clock, std::int64_t lifetime_ms,
                                 std::size_t max_sessions)
    : clock_(clock), lifetime_ms_(lifetime_ms), max_sessions_(max_sessions) {}

ConsoleSession ConsoleSessions::open(const std::string& token_hash,
                                     const std::string& operator_name) {
  ConsoleSession s{crypto::random_token("rps_"), crypto::random_token("csrf_"), token_hash,
                   operator_name, clock_.now_unix_ms() + lifetime_ms_};
  std::lock_guard lock(mutex_);
  const auto now = clock_.now_unix_ms();
  std::erase_if(by_secret_hash_, [&](const auto& e) { return e.second.expires_at_ms <= now; });
  while (by_secret_hash_.size() >= max_sessions_) {
    auto oldest = std::min_element(
        by_secret_hash_.begin(), by_secret_hash_.end(),
        [](const auto& x, const auto& y) { return x.second.expires_at_ms < y.second.expires_at_ms; });
    by_secret_hash_.erase(oldest);
  }
  ConsoleSession stored = s;
  stored.secret.clear();
  by_secret_hash_.emplace(crypto::sha256_hex(s.secret), std::move(stored));
  return s;
}

std::string ConsoleSessions::cookie_value(std::string_view header) {
  // "name=value; name2=value2" (RFC 6265 section 4.2); the first of our name counts.
  while (!header.empty()) {
    const auto end = header.find(';');
    auto pair = header.substr(0, end);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.starts_with(kSessionCookie) && pair.size() > kSessionCookie.size() &&
        pair[kSessionCookie.size()] == '=') {
      return std::string(pair.substr(kSessionCookie.size() + 1));
    }
    if (end == std::string_view::npos) break;
    header.remove_prefix(end + 1);
  }
  return {};
}

std::optional<ConsoleSession> ConsoleSessions::find(std::string_view cookie_header) {
  const auto secret = cookie_value(cookie_header);
  if (secret.empty()) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto it = by_secret_hash_.find(crypto::sha256_hex(secret));
  if (it == by_secret_hash_.end()) return std::nullopt;
  if (it->second.expires_at_ms <= clock_.now_unix_ms()) {
    by_secret_hash_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

bool ConsoleSessions::close(std::string_view cookie_header) {
  const auto secret = cookie_value(cookie_header);
  if (secret.empty()) return false;
  std::lock_guard lock(mutex_);
  return by_secret_hash_.erase(crypto::sha256_hex(secret)) > 0;
}

std::string ConsoleSessions::set_cookie(const ConsoleSession& session) const {
  return fmt::format("{}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
                     kSessionCookie, session.secret, lifetime_ms_ / 1000);
}

std::string ConsoleSessions::clear_cookie() {
  return fmt::format("{}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict", kSessionCookie);
}

}  // namespace riposte::controller
