#pragma once

// The checks an action must pass before anything runs, in this order, each refusal with its own
// reason: the signature against the action key pinned at enrollment; the target is this agent;
// not expired (allowing a configurable clock skew); the action id was never seen (persisted in
// the journal, so across restarts too); the kind is allowed by this agent's configuration.
// The platform safety policy (PID 1, the agent itself, protected processes) is applied later by
// the executor, which knows what each action touches.

#include <openssl/evp.h>

#include <chrono>
#include <set>
#include <string>
#include <variant>

#include "agent/action_journal.h"
#include "common/clock.h"
#include "protocol/agent_channel.pb.h"
#include "protocol/crypto.h"

namespace riposte::agent {

struct VerifierOptions {
  std::string agent_id;
  std::string action_public_key_pem;
  std::chrono::milliseconds clock_skew{30'000};
  std::set<std::string> allowed_kinds;  // empty: every kind this agent implements
};

class ActionVerifier {
 public:
  static Result<std::unique_ptr<ActionVerifier>> create(VerifierOptions options,
                                                        ActionJournal& journal, const Clock& clock);

  // The verified spec, or the refusal to send back (status REJECTED with its reason).
  std::variant<proto::ActionSpec, proto::ActionResult> verify(const proto::ActionRequest& request);

  bool kind_allowed(std::string_view kind) const;

 private:
  ActionVerifier(VerifierOptions options, crypto::PkeyPtr key, ActionJournal& journal,
                 const Clock& clock);

  VerifierOptions options_;
  crypto::PkeyPtr key_;
  ActionJournal& journal_;
  const Clock& clock_;
};

}  // namespace riposte::agent
