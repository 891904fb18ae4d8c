#pragma once

// Operators and their API tokens. An operator is a named person (or integration) with one role;
// tokens are random secrets stored only as SHA-256 hashes, each belonging to an operator whose
// role and state (enabled or disabled) govern every request made with it.
//
// Roles, each including the ones before it:
//   viewer     reads everything the API shows
//   analyst    also submits alerts (and, with playbooks, edits cases and simulates)
//   responder  also runs response actions (and approves them)
//   admin      also manages operators, agents, enrollment tokens, feeds and the audit export
// and, outside that ladder:
//   ingest     an integration (a SIEM forwarder): submits alerts and nothing else, not even
//              reads; it has a max mode (simulate, approve, auto) that caps every run its alerts
//              start. Created with `riposte integrations create`.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "controller/store/store.h"

namespace riposte::controller {

enum class Role { viewer = 0, analyst = 1, responder = 2, admin = 3, ingest = 4 };

// The roles of people (operators); `ingest` is for integrations only.
inline constexpr std::string_view kRoleNames = "viewer, analyst, responder, admin";
std::optional<Role> parse_role(std::string_view name);
std::string_view role_name(Role role);
// Whether `caller` may do what needs `needed` (a person's role on the ladder above). A token
// whose stored role is not one of the four (a database edited by hand) may do nothing beyond
// reading; an `ingest` token may do nothing on the ladder, not even read.
bool has_role(const ApiTokenRecord& caller, Role needed);
bool is_integration(const ApiTokenRecord& caller);
// Analysts and above, and integrations.
bool may_submit_alerts(const ApiTokenRecord& caller);

struct NewApiToken {
  std::string secret;  // shown once
  ApiTokenRecord record;
};

class OperatorAuth {
 public:
  OperatorAuth(Store& store, const Clock& clock);

  // A token for `name`, creating the operator with `role` if there is none (init, `up`).
  Result<NewApiToken> create_token(const std::string& name, const std::string& role);

  // `riposte operators create`: a new operator and their first token. Errors name the problem:
  // a bad name or role, or "operator NAME exists".
  Result<NewApiToken> create_operator(const std::string& name, const std::string& role,
                                      const std::string& created_by);
  Result<std::vector<OperatorRecord>> list_operators();

  // `riposte integrations create`: an operator of role `ingest` whose alerts start runs at most
  // in `max_mode` (simulate, approve or auto), and its token. Errors as create_operator.
  Result<NewApiToken> create_integration(const std::string& name, const std::string& max_mode,
                                         const std::string& created_by);
  // Refuses to disable the last enabled admin: nobody could manage operators any more.
  Status disable_operator(const std::string& name, const std::string& disabled_by);

  // From an "Authorization" header value; errors say what is wrong without echoing the secret.
  // A disabled operator's tokens are refused.
  Result<ApiTokenRecord> authenticate(std::string_view authorization_header);
  // The same, for a token known by its SHA-256 (a console session, api/console_sessions.h).
  // When the store could not be asked, the error is its own (is_database_failure): not a wrong
  // token.
  Result<ApiTokenRecord> authenticate_hash(const std::string& token_hash);

 private:
  Result<NewApiToken> insert(const std::string& name, const std::string& role,
                             const std::string& max_mode, const std::string& created_by);

  Store& store_;
  const Clock& clock_;
};

}  // namespace riposte::controller
