#include "controller/api/console_sessions.h"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include "protocol/crypto.h"

namespace riposte::controller {

bool secrets_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

ConsoleSessions::ConsoleSessions(Store& store, const Clock& clock, std::int64_t lifetime_ms,
                                 std::size_t max_per_operator)
    : store_(store),
      clock_(clock),
      lifetime_ms_(lifetime_ms),
      max_per_operator_(max_per_operator) {}

Result<ConsoleSession> ConsoleSessions::open(const std::string& token_hash,
                                             const std::string& operator_name) {
  const auto now = clock_.now_unix_ms();
  ConsoleSession s{crypto::random_token("rps_"), crypto::random_token("csrf_"), token_hash,
                   operator_name, now + lifetime_ms_};
  if (auto stored = store_.insert_console_session(
          {crypto::sha256_hex(s.secret), s.csrf_token, token_hash, operator_name, s.expires_at_ms},
          now, max_per_operator_);
      !stored)
    return stored.error();
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

Result<std::optional<ConsoleSession>> ConsoleSessions::find(std::string_view cookie_header) {
  const auto secret = cookie_value(cookie_header);
  if (secret.empty()) return std::optional<ConsoleSession>();
  auto found = store_.find_console_session(crypto::sha256_hex(secret), clock_.now_unix_ms());
  if (!found) return found.error();
  if (!*found) return std::optional<ConsoleSession>();
  auto& r = **found;
  return std::optional<ConsoleSession>(ConsoleSession{"", std::move(r.csrf_token),
                                                      std::move(r.token_hash),
                                                      std::move(r.operator_name), r.expires_at_ms});
}

Result<bool> ConsoleSessions::close(std::string_view cookie_header) {
  const auto secret = cookie_value(cookie_header);
  if (secret.empty()) return false;
  return store_.delete_console_session(crypto::sha256_hex(secret));
}

std::string ConsoleSessions::set_cookie(const ConsoleSession& session) const {
  return fmt::format("{}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
                     kSessionCookie, session.secret, lifetime_ms_ / 1000);
}

std::string ConsoleSessions::clear_cookie() {
  return fmt::format("{}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict", kSessionCookie);
}

}  // namespace riposte::controller
