#include "agent/action_verifier.h"

#include <fmt/format.h>

#include "protocol/action_kinds.h"
#include "protocol/action_signing.h"

namespace riposte::agent {

namespace {

proto::ActionResult refusal(std::string action_id, proto::ActionResult::Refusal why,
                            std::string message, std::int64_t now_ms) {
  proto::ActionResult r;
  r.set_action_id(std::move(action_id));
  r.set_status(proto::ActionResult::STATUS_REJECTED);
  r.set_refusal(why);
  r.set_message(std::move(message));
  r.set_started_at_unix_ms(now_ms);
  r.set_finished_at_unix_ms(now_ms);
  return r;
}

}  // namespace

Result<std::unique_ptr<ActionVerifier>> ActionVerifier::create(VerifierOptions options,
                                                               ActionJournal& journal,
                                                               const Clock& clock) {
  auto key = crypto::load_public_key_pem(options.action_public_key_pem);
  if (!key) return Error{"action public key from enrollment is unusable: " + key.error().message};
  for (const auto& kind : options.allowed_kinds) {
    bool known = false;
    for (auto k : action_kind::kAll) known = known || k == kind;
    if (!known) return Error{fmt::format("allowed_actions: unknown action kind '{}'", kind)};
  }
  return std::unique_ptr<ActionVerifier>(
      new ActionVerifier(std::move(options), std::move(*key), journal, clock));
}

ActionVerifier::ActionVerifier(VerifierOptions options, crypto::PkeyPtr key, ActionJournal& journal,
                               const Clock& clock)
    : options_(std::move(options)), key_(std::move(key)), journal_(journal), clock_(clock) {}

bool ActionVerifier::kind_allowed(std::string_view kind) const {
  if (!options_.allowed_kinds.empty()) return options_.allowed_kinds.contains(std::string(kind));
  for (auto k : action_kind::kAll)
    if (k == kind) return true;
  return false;
}

std::variant<proto::ActionSpec, proto::ActionResult> ActionVerifier::verify(
    const proto::ActionRequest& request) {
  const auto now = clock_.now_unix_ms();
  auto spec = verify_action(request, key_.get());
  if (!spec) {
    // The id inside unverified bytes is only a hint for the operator; it is not trusted.
    proto::ActionSpec unverified;
    (void)unverified.ParseFromString(request.action_spec());
    const auto why = spec.error().message.starts_with("bad signature")
                         ? proto::ActionResult::REFUSAL_BAD_SIGNATURE
                         : proto::ActionResult::REFUSAL_MALFORMED;
    return refusal(unverified.action_id(), why, spec.error().message, now);
  }
  const auto& id = spec->action_id();
  if (spec->target_agent_id() != options_.agent_id) {
    return refusal(id, proto::ActionResult::REFUSAL_WRONG_AGENT,
                   fmt::format("action is for agent {}, not this agent ({})",
                               spec->target_agent_id(), options_.agent_id),
                   now);
  }
  const auto skew = options_.clock_skew.count();
  if (spec->expires_at_unix_ms() + skew <= now) {
    return refusal(id, proto::ActionResult::REFUSAL_EXPIRED,
                   fmt::format("action expired {} ms ago (clock skew allowance {} ms)",
                               now - spec->expires_at_unix_ms(), skew),
                   now);
  }
  if (spec->issued_at_unix_ms() > now + skew) {
    return refusal(id, proto::ActionResult::REFUSAL_EXPIRED,
                   "action is issued in the future: controller and agent clocks disagree", now);
  }
  if (id.empty()) return refusal(id, proto::ActionResult::REFUSAL_MALFORMED, "no action id", now);
  auto fresh = journal_.admit(id, spec->kind(), spec->expires_at_unix_ms(), now);
  if (!fresh) {
    return refusal(id, proto::ActionResult::REFUSAL_MALFORMED,
                   "cannot record the action id: " + fresh.error().message, now);
  }
  if (!*fresh) {
    return refusal(id, proto::ActionResult::REFUSAL_REPLAYED,
                   "action id was seen before (replay refused)", now);
  }
  if (!kind_allowed(spec->kind())) {
    return refusal(
        id, proto::ActionResult::REFUSAL_KIND_NOT_ALLOWED,
        fmt::format("action kind '{}' is not allowed by this agent's policy", spec->kind()), now);
  }
  return std::move(*spec);
}

}  // namespace riposte::agent
