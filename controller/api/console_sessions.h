#pragma once

// Sessions of the web console. A person signs in with their operator token once; the browser
// then holds only a session cookie (HttpOnly, Secure, SameSite=Strict, `__Host-` prefixed, so
// script cannot read it and no other site or subdomain can send or set it), never the token.
// Each session has a CSRF token that the console sends back in an X-CSRF-Token header on every
// request that changes state: a page elsewhere cannot read it, so it cannot forge such a request
// even where a browser would attach the cookie.
//
// Sessions live in the store (console_sessions), keyed by the SHA-256 of the cookie's secret: the
// database holds no usable cookie, and every controller sharing the store knows every session,
// so a console behind one address for several controllers stays signed in whichever answers.
// They expire after `lifetime_ms` (absolute) and end on sign-out; they outlive a controller
// restart. Each request re-reads the operator behind the session, so disabling an operator or
// revoking the token the session came from ends it. Store errors are returned as they are
// ("database: ..."), so an outage is told apart from a session that is not there.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "controller/store/store.h"

namespace riposte::controller {

inline constexpr std::string_view kSessionCookie = "__Host-riposte_session";

struct ConsoleSession {
  std::string secret;      // the cookie's value: only in the Set-Cookie answer to sign-in
  std::string csrf_token;  // given to the console, repeated in X-CSRF-Token
  std::string token_hash;  // the operator token the session was opened with (SHA-256 hex)
  std::string operator_name;
  std::int64_t expires_at_ms = 0;
};

class ConsoleSessions {
 public:
  ConsoleSessions(Store& store, const Clock& clock, std::int64_t lifetime_ms = 8 * 3600 * 1000,
                  std::size_t max_per_operator = 16);

  // A new session for the operator whose token hashes to `token_hash` (already authenticated).
  // That operator's oldest sessions are dropped beyond `max_per_operator` (browsers, devices).
  Result<ConsoleSession> open(const std::string& token_hash, const std::string& operator_name);
  // The live session whose secret is in `cookie_header` (a Cookie header: "a=b; c=d"); nullopt
  // when there is none, it expired or it was closed. The returned secret is empty.
  Result<std::optional<ConsoleSession>> find(std::string_view cookie_header);
  // Ends the session in `cookie_header`; whether there was one.
  Result<bool> close(std::string_view cookie_header);

  // Set-Cookie values: the session's cookie, and one that deletes it.
  std::string set_cookie(const ConsoleSession& session) const;
  static std::string clear_cookie();

 private:
  static std::string cookie_value(std::string_view cookie_header);

  Store& store_;
  const Clock& clock_;
  const std::int64_t lifetime_ms_;
  const std::size_t max_per_operator_;
};

// Whether two secrets are equal, in time that does not depend on where they differ.
bool secrets_equal(std::string_view a, std::string_view b);

}  // namespace riposte::controller
