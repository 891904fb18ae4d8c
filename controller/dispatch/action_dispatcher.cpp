#include "controller/dispatch/action_dispatcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "common/utc_time.h"
#include "common/utf8.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/observables/observable.h"
#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"
#include "protocol/action_outcome.h"
#include "protocol/action_signing.h"
#include "protocol/crypto.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

ActionState state_of(const proto::ActionResult& result) {
  switch (result.status()) {
    case proto::ActionResult::STATUS_SUCCEEDED:
      return ActionState::succeeded;
    case proto::ActionResult::STATUS_REJECTED:
      return ActionState::refused;
    default:
      return ActionState::failed;
  }
}

}  // namespace

ActionDispatcher::ActionDispatcher(Store& store, EVP_PKEY* action_key, const Clock& clock,
                                   DispatchOptions options)
    : store_(store), action_key_(action_key), clock_(clock), options_(options) {}

Status check_rule_text(std::string_view text) {
  if (text.empty()) return Error{"the rule set is empty"};
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    return Error{
        fmt::format("the rules hold a NUL byte at offset {}: not a YARA source file", nul)};
  return ok_status();
}

Result<std::string> ActionDispatcher::attach_rule_set(json& parameters,
                                                      const std::string& requester) {
  if (!parameters.is_object()) return std::string();
  const auto inline_rules = parameters.find("rules");
  const auto named = parameters.find("rules_sha256");
  const bool has_inline = inline_rules != parameters.end() && inline_rules->is_string() &&
                          !inline_rules->get_ref<const std::string&>().empty();
  const bool has_named = named != parameters.end() && named->is_string() &&
                         !named->get_ref<const std::string&>().empty();
  if (has_inline && has_named) return Error{"give rules or rules_sha256, not both"};
  if (!has_inline && !has_named) return Error{"yara.scan needs rules or rules_sha256"};
  std::string sha;
  if (has_inline) {
    const auto& text = inline_rules->get_ref<const std::string&>();
    auto stored = store_rule_set(text, "", requester);
    if (!stored) return stored.error();
    sha = stored->sha256;
    parameters.erase("rules");
  } else {
    sha = ascii_lower(named->get<std::string>());
    if (!is_sha256_hex(sha)) return Error{"rules_sha256 must be a SHA-256: 64 hex digits"};
  }
  auto object = store_.find_object(sha);
  if (!object) return object.error();
  if (!*object || (*object)->kind != kYaraRulesKind)
    return Error{fmt::format("no YARA rule set with SHA-256 {} has been uploaded", sha)};
  parameters["rules_sha256"] = sha;
  parameters["rules_size"] = std::to_string((*object)->size);
  return sha;
}

Result<ActionDispatcher::StoredRuleSet> ActionDispatcher::store_rule_set(std::string_view text,
                                                                         const std::string& name,
                                                                         const std::string& who) {
  if (auto checked = check_rule_text(text); !checked) return checked.error();
  ContentObjectRecord meta;
  meta.sha256 = crypto::sha256_hex(text);
  meta.kind = kYaraRulesKind;
  meta.size = text.size();
  meta.name = name;
  meta.created_by = who;
  const json details = {{"kind", meta.kind}, {"size", meta.size}, {"name", name}};
  auto created = store_.put_object(
      meta, text, {who, "rule_set.stored", meta.sha256, details.dump()}, clock_.now_unix_ms());
  if (!created) return created.error();
  return StoredRuleSet{meta.sha256, *created};
}

Result<std::vector<ActionRecord>> ActionDispatcher::submit(const ActionSubmission& submission) {
  if (!action_catalog::is_known_kind(submission.kind))
    return Error{fmt::format("unknown action kind '{}'", submission.kind)};
  // A yara.scan's rules travel as a rule set stored once and named by hash in every spec.
  json resolved = submission.parameters;
  std::string object_sha256;
  if (submission.kind == action_kind::kYaraScan) {
    auto attached = attach_rule_set(resolved, submission.requester);
    if (!attached) return attached.error();
    object_sha256 = std::move(*attached);
  }
  auto parameters = action_catalog::parameters_from_json(submission.kind, resolved);
  if (!parameters) return parameters.error();
  // Targets: the ids named, then agents carrying a named label (each agent once). A fan-out
  // is tens of thousands of agents: sets, not pairwise comparisons.
  std::vector<std::string> targets = submission.agent_ids;
  std::unordered_set<std::string> seen;
  for (const auto& id : targets) {
    if (!seen.insert(id).second) return Error{fmt::format("agent {} is named twice", id)};
  }
  std::unordered_set<std::string> listed;  // known to exist and not revoked: no lookup again
  if (!submission.labels.empty()) {
    auto agents = store_.list_agents();
    if (!agents) return agents.error();
    std::size_t matched = 0;
    for (const auto& a : *agents) {
      if (a.revoked_at_ms) continue;
      const bool labeled = std::any_of(a.labels.begin(), a.labels.end(), [&](const auto& l) {
        return std::find(submission.labels.begin(), submission.labels.end(), l) !=
               submission.labels.end();
      });
      if (!labeled) continue;
      ++matched;
      listed.insert(a.id);
      if (seen.insert(a.id).second) targets.push_back(a.id);
    }
    if (matched == 0) return Error{"no agent carries the label(s) given"};
  }
  if (targets.empty()) return Error{"no target agent given"};
  if (submission.ttl_ms < 1000 || submission.ttl_ms > options_.max_ttl_ms) {
    return Error{fmt::format("ttl must be between 1s and {} h", options_.max_ttl_ms / 3'600'000)};
  }
  if (submission.requester.empty()) return Error{"requester is required"};

  if (!submission.idempotency_key.empty()) {
    std::vector<ActionRecord> stored;
    for (const auto& agent_id : targets) {
      auto found =
          store_.find_action(crypto::name_uuid(submission.idempotency_key + "/" + agent_id));
      if (!found) return found.error();
      if (*found) stored.push_back(std::move(**found));
    }
    // A batch is stored in one transaction: all of it is there, or none.
    if (!stored.empty()) return stored;
  }

  const auto now = clock_.now_unix_ms();
  const auto batch = crypto::random_uuid();
  std::vector<proto::ActionSpec> specs;
  specs.reserve(targets.size());
  for (const auto& agent_id : targets) {
    if (!listed.contains(agent_id)) {
      auto agent = store_.find_agent(agent_id);
      if (!agent) return agent.error();
      if (!agent->has_value()) return Error{fmt::format("no agent with id {}", agent_id)};
      if ((*agent)->revoked_at_ms) return Error{fmt::format("agent {} is revoked", agent_id)};
    }
    proto::ActionSpec& spec = specs.emplace_back();
    spec.set_action_id(submission.idempotency_key.empty()
                           ? crypto::random_uuid()
                           : crypto::name_uuid(submission.idempotency_key + "/" + agent_id));
    spec.set_target_agent_id(agent_id);
    spec.set_kind(submission.kind);
    spec.set_parameters(*parameters);
    spec.set_issued_at_unix_ms(now);
    spec.set_expires_at_unix_ms(now + submission.ttl_ms);
    spec.set_case_id(submission.case_id);
    spec.set_playbook_run_id(submission.playbook_run_id);
    spec.set_requester(submission.requester);
    spec.set_approver(submission.approver);
  }
  auto signed_requests = sign_actions(specs, action_key_);
  if (!signed_requests) return signed_requests.error();

  const auto parameters_json = action_catalog::parameters_to_json(submission.kind, *parameters);
  std::vector<ActionRecord> actions;
  std::vector<AuditEvent> audit;
  actions.reserve(specs.size());
  audit.reserve(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& spec = specs[i];
    auto& signed_request = (*signed_requests)[i];
    ActionRecord a;
    a.id = spec.action_id();
    a.agent_id = spec.target_agent_id();
    a.kind = submission.kind;
    a.batch_id = batch;
    a.spec = std::move(*signed_request.mutable_action_spec());
    a.signature = std::move(*signed_request.mutable_signature());
    a.requester = submission.requester;
    a.approver = submission.approver;
    a.case_id = submission.case_id;
    a.playbook_run_id = submission.playbook_run_id;
    a.object_sha256 = object_sha256;
    a.automatic = submission.automatic && !submission.simulate;
    a.issued_at_ms = now;
    if (submission.simulate) a.state = ActionState::simulated;
    a.expires_at_ms = spec.expires_at_unix_ms();
    const json details = {
        {"agent_id", a.agent_id},
        {"kind", a.kind},
        {"batch_id", batch},
        {"parameters", parameters_json},
        {"expires_at", format_utc_ms(a.expires_at_ms)},
        {"approver", a.approver},
        {"case_id", a.case_id},
        {"playbook_run_id", a.playbook_run_id},
        {"spec_sha256", crypto::sha256_hex(a.spec)},
        {"signature", crypto::hex({reinterpret_cast<const std::uint8_t*>(a.signature.data()),
                                   a.signature.size()})},
    };
    audit.push_back({submission.requester,
                     submission.simulate ? "action.simulated" : "action.created", a.id,
                     details.dump()});
    actions.push_back(std::move(a));
  }
  if (auto s = store_.insert_actions(actions, audit, now); !s) return s.error();
  // One line per action for a few; a fan-out's are in the audit log, one line here says it.
  const char* what = submission.simulate ? "simulated (not sent)" : "queued";
  if (actions.size() <= kActionsLoggedEach) {
    for (const auto& a : actions)
      spdlog::info("dispatch: action {} ({}) for agent {} {} for {}", a.id, a.kind, a.agent_id,
                   what, a.requester);
  } else {
    spdlog::info("dispatch: batch {}: {} {} actions for {} agents {} for {}", batch,
                 actions.size(), submission.kind, actions.size(), what, submission.requester);
  }
  if (!submission.simulate) deliver_all(actions);
  return actions;
}

void ActionDispatcher::deliver_all(std::vector<ActionRecord>& actions) {
  if (!send_) return;
  std::vector<std::string> sent;  // queued ones now on their way, to record as delivered
  for (const auto& action : actions) {
    if (action.expires_at_ms <= clock_.now_unix_ms()) continue;  // the expiry sweep records it
    proto::Envelope envelope;
    auto* request = envelope.mutable_action_request();
    request->set_action_spec(action.spec);
    request->set_signature(action.signature);
    if (!send_(action.agent_id, std::move(envelope))) continue;  // offline: stays queued
    if (action.state == ActionState::queued) sent.push_back(action.id);  // else a re-send
  }
  if (sent.empty()) return;
  const auto now = clock_.now_unix_ms();
  auto marked = store_.mark_actions_delivered(sent, now);
  if (!marked) {
    spdlog::error("dispatch: cannot record the delivery of {} action(s): {}", sent.size(),
                  marked.error().message);
    return;
  }
  // The callers' copies match the store.
  std::set<std::string> delivered(marked->begin(), marked->end());
  for (auto& action : actions) {
    if (!delivered.contains(action.id)) continue;
    action.state = ActionState::delivered;
    action.delivered_at_ms = now;
  }
}

void ActionDispatcher::agent_connected(const std::string& agent_id) {
  auto pending = store_.actions_to_deliver(agent_id);
  if (!pending) {
    spdlog::error("dispatch: agent {}: cannot read pending actions: {}", agent_id,
                  pending.error().message);
    return;
  }
  if (!pending->empty())
    spdlog::info("dispatch: agent {} connected; sending {} waiting action(s)", agent_id,
                 pending->size());
  deliver_all(*pending);
}

void ActionDispatcher::queued_elsewhere(const std::vector<std::string>& agent_ids,
                                       const std::vector<std::string>& held) {
  const std::set<std::string> here(held.begin(), held.end());
  for (const auto& agent_id : agent_ids) {
    if (!here.contains(agent_id)) continue;
    auto pending = store_.actions_to_deliver(agent_id);
    if (!pending) {
      spdlog::error("dispatch: agent {}: cannot read pending actions: {}", agent_id,
                    pending.error().message);
      continue;
    }
    // Only what nobody has sent yet: a delivered action is on the agent already, and a second
    // copy would only be refused as a replay.
    std::erase_if(*pending, [](const ActionRecord& a) { return a.state != ActionState::queued; });
    if (pending->empty()) continue;
    spdlog::info("dispatch: agent {}: sending {} action(s) queued through another controller",
                 agent_id, pending->size());
    deliver_all(*pending);
  }
}

std::optional<proto::Envelope> ActionDispatcher::handle_result(const std::string& agent_id,
                                                               const proto::ActionResult& result) {
  const auto now = clock_.now_unix_ms();
  proto::Envelope ack;
  ack.mutable_action_result_ack()->set_action_id(result.action_id());
  if (result.refusal() == proto::ActionResult::REFUSAL_REPLAYED) {
    // Our own redelivery of an action the agent already holds: its real result comes from the
    // agent's spool. Anything else is someone replaying; either way the state does not change.
    // Audited only for the agent's own open action: an agent cannot write audit entries about
    // others' actions, nor about ended ones as often as it likes.
    auto action = store_.find_action(result.action_id());
    if (!action || !*action || (**action).agent_id != agent_id || is_terminal((**action).state)) {
      dropped(agent_id, result.action_id(), "a replay refusal");
      return ack;
    }
    spdlog::warn("dispatch: agent {} refused a replay of action {}", agent_id, result.action_id());
    (void)store_.append_audit({"agent:" + agent_id, "action.replay_refused", result.action_id(),
                               json{{"message", result.message()}}.dump()},
                              now);
    return ack;
  }
  ActionOutcome outcome = outcome_of(result, now);
  if (result.evidence_size() > 0) {
    // Decided against the stored action; a result for anything but the agent's own open action
    // is dropped below whatever it names.
    auto action = store_.find_action(result.action_id());
    if (!action) return std::nullopt;  // not acknowledged: the agent sends it again
    if (*action && (**action).agent_id == agent_id) {
      auto declared =
          store_.evidence_bytes_declared(agent_id, now - options_.evidence.quota_window_ms);
      if (!declared) return std::nullopt;
      auto decision = decide_evidence(**action, result, *declared, options_.evidence, now);
      outcome.evidence = std::move(decision.accepted);
      outcome.evidence_refused = std::move(decision.refused);
    }
  }
  auto changed = store_.record_action_outcome(result.action_id(), agent_id, outcome, now);
  if (!changed) {
    // Not acknowledged: the agent keeps the result and sends it again on the next session.
    spdlog::error("dispatch: agent {}: cannot store result of action {}: {}", agent_id,
                  result.action_id(), changed.error().message);
    return std::nullopt;
  }
  result_stored(agent_id, result.action_id(), outcome, *changed);
  return ack;
}

ActionOutcome ActionDispatcher::outcome_of(const proto::ActionResult& result,
                                           std::int64_t now_ms) const {
  ActionOutcome outcome;
  outcome.state = state_of(result);
  // At most 4 KiB, cut on a character boundary and valid UTF-8 (it reaches JSON and the audit).
  outcome.reason = utf8_prefix(result.message(), 4096);
  // A NUL (an agent quoting a path it was given with one) is replaced as an invalid sequence is:
  // PostgreSQL text cannot hold it, and a result the store refuses would leave the action
  // running for good (found by a reviewer).
  for (auto at = outcome.reason.find('\0'); at != std::string::npos;
       at = outcome.reason.find('\0', at))
    outcome.reason.replace(at, 1, "\xEF\xBF\xBD");
  outcome.result = result.output();
  if (result.started_at_unix_ms() > 0) outcome.started_at_ms = result.started_at_unix_ms();
  outcome.finished_at_ms =
      result.finished_at_unix_ms() > 0 ? result.finished_at_unix_ms() : now_ms;
  return outcome;
}

void ActionDispatcher::result_stored(const std::string& agent_id, const std::string& action_id,
                                     const ActionOutcome& outcome, bool changed) {
  if (!changed) {
    dropped(agent_id, action_id, "a result");
    return;
  }
  for (const auto& observer : observers_) observer(action_id, outcome.state);
  spdlog::info("dispatch: action {} on agent {} {}{}", action_id, agent_id,
               to_string(outcome.state), outcome.reason.empty() ? "" : ": " + outcome.reason);
  // At most once per action: an action ends once.
  for (const auto& r : outcome.evidence_refused) {
    spdlog::warn("dispatch: agent {}: action {}: evidence {} ({}, {} bytes) refused: {}",
                 agent_id, action_id, r.sha256, r.name, r.size, r.reason);
    if (evidence_) evidence_->remember_refusal(agent_id, action_id, r.sha256, r.reason);
  }
}

void ActionDispatcher::handle_result_grouped(const std::string& agent_id,
                                             proto::ActionResult result, ResultReply reply) {
  // Replay refusals and evidence are decided against the stored action first: one at a time.
  if (result.refusal() == proto::ActionResult::REFUSAL_REPLAYED || result.evidence_size() > 0) {
    reply(handle_result(agent_id, result));
    return;
  }
  // Bounded in results and in bytes (an output may be megabytes): past either, the caller
  // stores its own result, at the store's pace.
  const std::size_t bytes = result.output().size() + result.message().size();
  bool room = false;
  {
    std::lock_guard lock(results_mutex_);
    room = queued_results_.size() < kMaxQueuedResults &&
           queued_result_bytes_ + bytes <= kMaxQueuedResultBytes;
    if (room) queued_result_bytes_ += bytes;
  }
  if (!room) {
    reply(handle_result(agent_id, result));
    return;
  }
  std::string output = std::move(*result.mutable_output());  // not copied: may be megabytes
  ActionOutcome outcome = outcome_of(result, clock_.now_unix_ms());
  outcome.result = std::move(output);
  {
    std::lock_guard lock(results_mutex_);
    queued_results_.push_back(
        {{result.action_id(), agent_id, std::move(outcome)}, std::move(reply)});
    if (writing_results_) return;  // the writer takes it with its next group
    writing_results_ = true;
  }
  write_result_groups();
}

void ActionDispatcher::write_result_groups() {
  for (;;) {
    std::vector<QueuedResult> group;
    {
      std::lock_guard lock(results_mutex_);
      if (queued_results_.empty()) {
        writing_results_ = false;
        return;
      }
      group.swap(queued_results_);
      queued_result_bytes_ = 0;
    }
    // Whatever throws (an observer, a reply, the store), the group is answered and the writer
    // goes on: a writer that stopped with the flag set would leave every later result queued.
    std::size_t answered = 0;
    try {
      std::vector<ActionOutcomeReport> reports;
      reports.reserve(group.size());
      for (auto& q : group) reports.push_back(std::move(q.report));
      auto changed = store_.record_action_outcomes(reports, clock_.now_unix_ms());
      if (!changed) {
        // Not acknowledged: each agent keeps its result and sends it again on its next session.
        spdlog::error("dispatch: cannot store {} result(s): {}", reports.size(),
                      changed.error().message);
      } else {
        for (; answered < group.size(); ++answered) {
          const auto& r = reports[answered];
          result_stored(r.agent_id, r.action_id, r.outcome, (*changed)[answered]);
          proto::Envelope ack;
          ack.mutable_action_result_ack()->set_action_id(r.action_id);
          group[answered].reply(std::move(ack));
        }
      }
    } catch (const std::exception& e) {
      spdlog::error("dispatch: storing a group of {} result(s) failed: {}", group.size(),
                    e.what());
    }
    for (; answered < group.size(); ++answered) {
      try {
        group[answered].reply(std::nullopt);
      } catch (const std::exception&) {  // a session that cannot take it: nothing to add
      }
    }
  }
}

void ActionDispatcher::dropped(const std::string& agent_id, const std::string& action_id,
                               std::string_view what) {
  const auto now = clock_.now_unix_ms();
  std::uint64_t held_back = 0;
  bool log = false;
  {
    std::lock_guard lock(dropped_mutex_);
    auto& d = dropped_[agent_id];
    ++d.total;
    if (now - d.window_start_ms >= 60'000) {
      held_back = d.suppressed;
      d.window_start_ms = now;
      d.logged = 0;
      d.suppressed = 0;
    }
    log = d.logged < kDroppedLogsPerMinute;
    if (log) {
      ++d.logged;
    } else {
      ++d.suppressed;
    }
  }
  if (held_back > 0)
    spdlog::warn(
        "dispatch: agent {}: {} more report(s) about actions not its own or not open "
        "were dropped in the last minute",
        agent_id, held_back);
  if (log)
    spdlog::warn(
        "dispatch: agent {}: {} for action {} dropped (unknown, not its own, or already "
        "ended)",
        agent_id, what, utf8_prefix(action_id, 64));
}

std::uint64_t ActionDispatcher::dropped_reports(const std::string& agent_id) const {
  std::lock_guard lock(dropped_mutex_);
  const auto found = dropped_.find(agent_id);
  return found == dropped_.end() ? 0 : found->second.total;
}

void ActionDispatcher::handle_progress(const std::string& agent_id,
                                       const proto::ActionProgress& progress) {
  auto known = store_.record_action_progress(progress.action_id(), agent_id, progress.done(),
                                             progress.total(), utf8_prefix(progress.unit(), 16),
                                             clock_.now_unix_ms());
  if (!known) {
    spdlog::error("dispatch: agent {}: cannot record progress of {}: {}", agent_id,
                  utf8_prefix(progress.action_id(), 64), known.error().message);
  } else if (!*known) {
    dropped(agent_id, progress.action_id(), "progress");
  }
}

void ActionDispatcher::expire_due() {
  auto expired = store_.expire_actions(clock_.now_unix_ms(), options_.unanswered_grace_ms);
  if (!expired) {
    spdlog::error("dispatch: cannot expire actions: {}", expired.error().message);
    return;
  }
  for (const auto& id : *expired) {
    spdlog::warn("dispatch: action {} expired", id);
    for (const auto& observer : observers_) observer(id, ActionState::expired);
  }
}

json action_json(const ActionRecord& a) {
  json evidence = json::array();
  for (const auto& e : a.evidence) {
    evidence.push_back({{"sha256", e.sha256},
                        {"size", e.size},
                        {"name", e.name},
                        {"stored", e.stored},
                        {"stored_at", utc_or_null(e.stored_at_ms)}});
  }
  proto::ActionSpec spec;
  spec.ParseFromString(a.spec);
  json shown{
      {"id", a.id},
      {"agent_id", a.agent_id},
      {"kind", a.kind},
      {"batch_id", a.batch_id},
      {"state", to_string(a.state)},
      {"reason", a.reason.empty() ? json(nullptr) : json(a.reason)},
      {"parameters", action_catalog::parameters_to_json(a.kind, spec.parameters())},
      {"requester", a.requester},
      {"approver", a.approver},
      {"case_id", a.case_id},
      {"playbook_run_id", a.playbook_run_id},
      {"issued_at", format_utc_ms(a.issued_at_ms)},
      {"expires_at", format_utc_ms(a.expires_at_ms)},
      {"delivered_at", utc_or_null(a.delivered_at_ms)},
      {"started_at", utc_or_null(a.started_at_ms)},
      {"finished_at", utc_or_null(a.finished_at_ms)},
      {"duration_ms", a.started_at_ms && a.finished_at_ms
                          ? json(std::max<std::int64_t>(0, *a.finished_at_ms - *a.started_at_ms))
                          : json(nullptr)},
      {"progress",
       {{"done", a.progress_done}, {"total", a.progress_total}, {"unit", a.progress_unit}}},
      {"result", a.state == ActionState::succeeded
                     ? action_catalog::result_to_json(a.kind, a.result)
                     : json(nullptr)},
      {"evidence", evidence},
      {"spec_sha256", crypto::sha256_hex(a.spec)},
      {"signature", crypto::hex({reinterpret_cast<const std::uint8_t*>(a.signature.data()),
                                 a.signature.size()})},
  };
  shown["outcome"] = action_outcome_text(shown);
  return shown;
}

}  // namespace riposte::controller
