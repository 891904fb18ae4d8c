#include "controller/playbooks/engine.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <future>
#include <limits>

#include "common/utc_time.h"
#include "controller/alerts/host_resolution.h"
#include "controller/alerts/intake.h"
#include "controller/playbooks/simulation.h"
#include "controller/playbooks/webhook.h"
#include "protocol/crypto.h"

namespace riposte::controller {

namespace asio = boost::asio;
using nlohmann::json;

struct PlaybookEngine::StepOutcome {
  enum class Kind { done, failed, waiting } kind = Kind::done;
  json output = json::object();  // what later steps see as steps.<id>
  std::string next;              // decide: the branch taken
  std::string outcome;           // the step record's outcome
  std::string error;
  std::string mode, mode_reason;
  std::string waiting_for;
  std::int64_t wake_at_ms = 0;

  static StepOutcome failed(std::string why) {
    StepOutcome o;
    o.kind = Kind::failed;
    o.outcome = "failed";
    o.output = {{"state", "failed"}, {"error", why}};
    o.error = std::move(why);
    return o;
  }
  static StepOutcome waiting(std::string what, std::int64_t wake_at_ms) {
    StepOutcome o;
    o.kind = Kind::waiting;
    o.waiting_for = std::move(what);
    o.wake_at_ms = wake_at_ms;
    return o;
  }
};

namespace {

std::string actor_of(const PlaybookRunRecord& run) { return "playbook:" + run.playbook; }

// The agents a step's rendered target names, with what proves each is the one meant: `all`
// (every enrolled agent: a fan-out the step itself declares), `host` (the alert's host, singled
// out by its evidence: host_resolution.h), or an agent id or hostname naming exactly one agent.
// Revoked agents are never targets. `refusal` says why nothing is targeted: a host no evidence
// singles out is never guessed at, and a hostname two agents report never fans out to both.
struct StepTargets {
  std::vector<AgentRecord> agents;
  json proof = json::array();  // [{agent_id, hostname, by, why}]
  std::string refusal;
};

StepTargets resolve_target(const std::string& target, const json& alert,
                           const std::vector<AgentRecord>& agents) {
  StepTargets out;
  if (target == "all") {
    for (const auto& a : agents) {
      if (a.revoked_at_ms) continue;
      out.agents.push_back(a);
      out.proof.push_back({{"agent_id", a.id},
                           {"hostname", a.facts.hostname},
                           {"by", "target: all"},
                           {"why", "the step targets every enrolled agent"}});
    }
    if (out.agents.empty()) out.refusal = "no enrolled agent matches target 'all'";
    return out;
  }
  HostResolution resolution;
  if (target == "host") {
    const auto host = alert.value("host", json::object());
    std::vector<std::string> ips;
    for (const auto& ip : host.value("ip", json::array()))
      if (ip.is_string()) ips.push_back(ip.get<std::string>());
    const auto name = host.value("name", json());
    // At the alert's time: an address that moved since names the agent that held it then.
    const auto at = alert.contains("timestamp") && alert["timestamp"].is_string()
                        ? parse_rfc3339_ms(alert["timestamp"].get<std::string>()).value_or(0)
                        : 0;
    resolution =
        resolve_alert_host(name.is_string() ? name.get<std::string>() : "", ips, agents, at);
  } else {
    resolution = resolve_named_host(target, agents);
  }
  if (!resolution.resolved()) {
    out.refusal = resolution.why;
    return out;
  }
  std::vector<std::string> by;
  for (const auto& m : resolution.matched) by.push_back(m.by + " " + m.value);
  out.agents.push_back(*resolution.agent);
  out.proof.push_back({{"agent_id", resolution.agent->id},
                       {"hostname", resolution.agent->facts.hostname},
                       {"by", fmt::format("{}", fmt::join(by, ", "))},
                       {"why", resolution.why},
                       {"ignored", resolution.ignored}});
  return out;
}

int mode_rank(AutonomyMode mode) { return static_cast<int>(mode); }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Who may not decide this run's approvals: whom it acts for, who started it, who submitted its
// alert (the system names "controller" and "" are nobody).
std::vector<std::string> not_deciders(const PlaybookRunRecord& run, const json& context) {
  std::vector<std::string> out;
  const auto submitter = context.value("alert", json::object())
                             .value("submitted_by", json::object())
                             .value("name", std::string());
  for (const auto& name : {run.requested_by, run.started_by, submitter}) {
    if (name.empty() || name == "controller") continue;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

// The agents a step's actions ended successfully on (what an undo goes back to).
std::vector<std::string> agents_acted_on(const json& step_output) {
  std::vector<std::string> out;
  for (const auto& a : step_output.value("actions", json::array())) {
    if (a.value("state", "") == "succeeded") out.push_back(a.value("agent_id", ""));
  }
  return out;
}

// Whether another unfinished run did the same thing as `step_output` (same action kind and
// parameters, succeeded on the same agent) and has not undone it: undoing ours would undo
// theirs (two runs suspended one process; one is cancelled, the other still needs it stopped).
std::string held_by_another_run(const std::vector<PlaybookRunRecord>& unfinished,
                                const std::string& run_id, const json& step_output) {
  const auto same = [](const json& a, const json& b) {
    return a.value("state", "") == "succeeded" && b.value("state", "") == "succeeded" &&
           a.value("kind", "") == b.value("kind", "") &&
           a.value("agent_id", "") == b.value("agent_id", "") &&
           a.value("parameters", json()) == b.value("parameters", json());
  };
  for (const auto& other : unfinished) {
    if (other.id == run_id) continue;
    const auto context = parse_json_or(other.context, json::object());
    const auto steps = context.value("steps", json::object());
    for (const auto& [id, output] : steps.items()) {
      if (id.starts_with("undo:") || steps.contains("undo:" + id)) continue;
      for (const auto& theirs : output.value("actions", json::array())) {
        for (const auto& mine : step_output.value("actions", json::array())) {
          if (same(theirs, mine))
            return fmt::format("run {} of {} still holds it (its step {})", other.id,
                               other.playbook, id);
        }
      }
    }
  }
  return "";
}

// The ids a step attempt's work is found by again after a restart or a second look: its
// actions' idempotency key and its approval request.
std::string attempt_key(const PlaybookRunRecord& run, const PlaybookStep& step) {
  return fmt::format("{}/{}/{}", run.id, step.id, run.attempt);
}
std::string approval_id(const PlaybookRunRecord& run, const PlaybookStep& step) {
  return crypto::name_uuid("approval/" + attempt_key(run, step));
}

std::string minutes(std::int64_t ms) { return fmt::format("{} min", ms / 60'000.0); }

}  // namespace

PlaybookEngine::PlaybookEngine(PlaybookEngineDeps deps, std::vector<Playbook> playbooks)
    : deps_(std::move(deps)),
      playbooks_(std::move(playbooks)),
      notifications_(deps_.autonomy.rate_limits.webhook) {}

PlaybookEngine::~PlaybookEngine() {
  worker_.stop();
  worker_.join();
}

const Playbook* PlaybookEngine::find(const std::string& name) const {
  for (const auto& p : playbooks_)
    if (p.name == name) return &p;
  return nullptr;
}

template <typename Fn>
void PlaybookEngine::post_guarded(std::string what, Fn fn) {
  asio::post(worker_, [what = std::move(what), fn = std::move(fn)]() mutable {
    try {
      fn();
    } catch (const std::exception& e) {
      spdlog::error("playbooks: {}: internal error: {}", what, e.what());
    }
  });
}

void PlaybookEngine::post_advance(const std::string& run_id) {
  asio::post(worker_, [this, run_id] { advance(run_id); });
}

void PlaybookEngine::look_again_if_actions_ended(const PlaybookRunRecord& run) {
  if (run.state != "waiting" || run.waiting_for != "actions") return;
  auto actions = deps_.store.run_actions(run.id);
  if (!actions) return;  // the wake, or the deadline, still comes
  for (const auto& a : *actions)
    if (!is_terminal(a.state)) return;
  post_advance(run.id);
}

void PlaybookEngine::drain() {
  std::promise<void> done;
  asio::post(worker_, [&done] { done.set_value(); });
  done.get_future().wait();
}

void PlaybookEngine::alert_ready(const std::string& alert_id) {
  if (playbooks_.empty()) return;
  post_guarded("alert " + alert_id, [this, alert_id] {
    auto alert = deps_.store.find_alert(alert_id);
    if (!alert || !*alert) return;
    const auto alert_doc = alert_json(**alert, /*with_raw=*/false);
    for (const auto& playbook : playbooks_) {
      std::string why_not;
      if (!trigger_matches(playbook, alert_doc, &why_not)) {
        spdlog::debug("playbooks: {} not started for alert {}: {}", playbook.name, alert_id,
                      why_not);
        continue;
      }
      // One run per (alert, playbook) however often the alert is reported ready.
      const auto run_id = crypto::name_uuid("run/" + alert_id + "/" + playbook.name);
      auto existing = deps_.store.find_run(run_id);
      if (!existing || *existing) continue;
      auto run = insert(playbook, **alert, run_id, "controller", false);
      if (run) advance(run->id);
    }
  });
}

Result<PlaybookRunRecord> PlaybookEngine::start(const std::string& name,
                                                const std::string& alert_id,
                                                const std::string& started_by, bool simulate_only,
                                                bool force) {
  const auto* playbook = find(name);
  if (playbook == nullptr) return Error{fmt::format("no playbook named '{}' is loaded", name)};
  auto alert = deps_.store.find_alert(alert_id);
  if (!alert) return alert.error();
  if (!*alert) return Error{fmt::format("no alert with id {}", alert_id)};
  std::string why_not;
  if (!trigger_matches(*playbook, alert_json(**alert, false), &why_not))
    return Error{
        fmt::format("playbook {} does not apply to alert {}: {}", name, alert_id, why_not)};
  // A second run of the same playbook over the same alert would act twice on one host: only on
  // purpose. (The check and the insert are not one transaction; two operators racing to start
  // the same run both get one, which `force` would have allowed anyway.)
  auto earlier = deps_.store.runs_of_alert(alert_id, name);
  if (!earlier) return earlier.error();
  for (const auto& r : *earlier) {
    if (!r.finished_at_ms && !force) {
      return Error{fmt::format(
          "an unfinished run {} of {} exists for alert {} ({}, started by {}); to start "
          "another anyway use --force (API: \"force\": true)",
          r.id, name, alert_id, r.state, r.started_by)};
    }
  }
  auto run = insert(*playbook, **alert, crypto::random_uuid(), started_by, simulate_only);
  if (!run) return run;
  post_advance(run->id);
  return run;
}

Result<PlaybookRunRecord> PlaybookEngine::insert(const Playbook& playbook, const AlertRecord& alert,
                                                 const std::string& run_id,
                                                 const std::string& started_by,
                                                 bool simulate_only) {
  const auto now = deps_.clock.now_unix_ms();
  json context = run_context(alert_json(alert, false));
  context["case"]["url"] = deps_.case_link_prefix + alert.case_id;
  // A run the controller starts acts for the alert's submitter; an operator's, for the operator.
  const auto requested_by = started_by != "controller" ? started_by
                            : alert.submitted_by.empty() ? std::string("controller")
                                                         : alert.submitted_by;
  context["run"] = {{"id", run_id},
                    {"playbook", playbook.name},
                    {"started_by", started_by},
                    {"requested_by", requested_by}};
  for (const auto& [name, value] : playbook.inputs) {
    auto rendered = value.render_value(context);
    if (!rendered) {
      // Recorded with the run; the worker ends it (and tells the responder) in advance().
      context["run"]["input_error"] = fmt::format("input {}: {}", name, rendered.error().message);
      break;
    }
    context["inputs"][name] = std::move(*rendered);
  }
  PlaybookRunRecord run;
  run.id = run_id;
  run.playbook = playbook.name;
  run.playbook_version = playbook.version;
  run.alert_id = alert.id;
  run.case_id = alert.case_id;
  run.started_by = started_by;
  run.requested_by = requested_by;
  run.simulate_only = simulate_only;
  run.step = playbook.steps.front().id;
  run.step_started_at_ms = now;
  run.context = context.dump(-1, ' ', false, json::error_handler_t::replace);
  run.started_at_ms = now;
  run.updated_at_ms = now;
  const json details{
      {"run_id", run.id},         {"playbook", run.playbook}, {"version", run.playbook_version},
      {"alert_id", run.alert_id}, {"started_by", started_by}, {"requested_by", requested_by},
      {"simulate_only", simulate_only}};
  if (auto s = deps_.store.insert_run(run, {started_by, "run.started", run.case_id, details.dump()},
                                      now);
      !s)
    return s.error();
  spdlog::info("playbooks: run {} of {} started by {} for alert {} (case {})", run.id,
               playbook.name, started_by, alert.id, run.case_id);
  return run;
}

Status PlaybookEngine::resume() {
  auto runs = deps_.store.unfinished_runs();
  if (!runs) return runs.error();
  if (!runs->empty()) spdlog::info("playbooks: resuming {} unfinished run(s)", runs->size());
  for (const auto& run : *runs) post_advance(run.id);
  return ok_status();
}

void PlaybookEngine::action_ended(const std::string& action_id) {
  post_guarded("action " + action_id, [this, action_id] {
    auto action = deps_.store.find_action(action_id);
    if (action && *action && !(*action)->playbook_run_id.empty())
      advance((*action)->playbook_run_id);
  });
}

void PlaybookEngine::approval_decided(const std::string& run_id) { post_advance(run_id); }

void PlaybookEngine::tick() {
  post_guarded("tick", [this] {
    const auto now = deps_.clock.now_unix_ms();
    auto expired = deps_.store.expire_approvals(now);
    if (expired) {
      for (const auto& a : *expired) {
        spdlog::warn("playbooks: approval {} for run {} expired unanswered", a.id, a.run_id);
        advance(a.run_id);
      }
    }
    auto due = deps_.store.runs_due(now);
    if (due) {
      for (const auto& id : *due) advance(id);
    }
    if (now - leases_renewed_at_ms_ >= kRunLeaseRenewMs) {
      leases_renewed_at_ms_ = now;
      if (auto s = deps_.store.renew_run_leases(now, kRunLeaseMs); !s)
        spdlog::error("playbooks: cannot renew run leases: {}", s.error().message);
      // Runs another controller sharing the store was working on when it stopped.
      auto orphaned = deps_.store.runs_to_take_over(now);
      if (orphaned) {
        for (const auto& id : *orphaned) {
          spdlog::warn("playbooks: taking over run {}: its controller's lease expired", id);
          advance(id);
        }
      }
    }
    if (!deps_.post_webhook) return;
    for (const auto& digest : notifications_.due(now)) {
      if (auto s = deps_.post_webhook(digest.url, digest.body); !s) {
        spdlog::error("playbooks: digest of {} held notification(s) not sent: {}",
                      digest.body.value("count", 0), s.error().message);
      }
    }
  });
}

Result<PlaybookRunRecord> PlaybookEngine::cancel(const std::string& run_id, const std::string& by,
                                                 const std::string& reason) {
  std::promise<Result<PlaybookRunRecord>> done;
  asio::post(worker_, [&] {
    const auto fail = [&](std::string why) { done.set_value(Error{std::move(why)}); };
    auto found = deps_.store.find_run(run_id);
    if (!found) return fail(found.error().message);
    if (!*found) return fail(fmt::format("no playbook run {}", run_id));
    PlaybookRunRecord run = std::move(**found);
    if (run.finished_at_ms)
      return fail(fmt::format("run {} already ended ({})", run_id, run.state));
    if (run.step.starts_with("undo:")) {
      const json context = parse_json_or(run.context, json::object());
      return fail(fmt::format("run {} is already ending ({}) and undoing its steps", run_id,
                              context["run"].value("ending", json::object()).value("state", "")));
    }
    const auto now = deps_.clock.now_unix_ms();
    // Only the lease holder moves a run: cancelling here while another controller dispatches its
    // next step would undo and end a run that then acts anyway.
    auto claimed = deps_.store.claim_run(run_id, now, kRunLeaseMs);
    if (!claimed) return fail(claimed.error().message);
    if (!*claimed) {
      const auto request = dump(json{{"by", by}, {"reason", reason}, {"at", format_utc_ms(now)}});
      auto recorded = deps_.store.request_run_cancel(
          run_id, request,
          {by, "run.cancel_requested", run.case_id,
           dump(json{{"run_id", run.id}, {"step", run.step}, {"reason", reason}})},
          now);
      if (!recorded) return fail(recorded.error().message);
      spdlog::info(
          "playbooks: run {} is held by another controller; its cancel by {} is asked of "
          "it",
          run.id, by);
    } else if (auto s = cancel_held(run, by, reason); !s) {
      return fail(s.error().message);
    }
    auto after = deps_.store.find_run(run_id);
    if (!after || !*after) return fail("the run cannot be read back");
    done.set_value(std::move(**after));
  });
  return done.get_future().get();
}

Status PlaybookEngine::cancel_held(PlaybookRunRecord run, const std::string& by,
                                   const std::string& reason) {
  json context = parse_json_or(run.context, json::object());
  const auto now = deps_.clock.now_unix_ms();
  auto cancelled = deps_.store.cancel_approvals(run.id, by, reason, now);
  if (!cancelled) return cancelled.error();
  if (auto s = deps_.store.append_audit({by, "run.cancelled", run.case_id,
                                         dump(json{{"run_id", run.id},
                                                   {"playbook", run.playbook},
                                                   {"step", run.step},
                                                   {"reason", reason},
                                                   {"approvals_cancelled", cancelled->size()}})},
                                        now);
      !s)
    return s;
  spdlog::info("playbooks: run {} cancelled by {} at step {}: {}", run.id, by, run.step, reason);
  if (!context.is_object() || !context["run"].is_object()) context = {{"run", json::object()}};
  end(find(run.playbook), run, context, "cancelled",
      fmt::format("cancelled by {} at step {}: {}", by, run.step, reason), nullptr);
  return ok_status();
}

void PlaybookEngine::advance(const std::string& run_id) {
  try {
    advance_held(run_id);
    faults_.erase(run_id);
  } catch (const std::exception& e) {
    fault(run_id, e.what());
  }
}

void PlaybookEngine::fault(const std::string& run_id, const std::string& what) {
  const int count = ++faults_[run_id];
  spdlog::error("playbooks: run {}: internal error (attempt {} of {}): {}", run_id, count,
                kMaxRunFaults, what);
  try {
    const auto now = deps_.clock.now_unix_ms();
    auto found = deps_.store.find_run(run_id);
    if (!found || !*found || (**found).finished_at_ms) {
      faults_.erase(run_id);
      return;
    }
    PlaybookRunRecord run = std::move(**found);
    if (count < kMaxRunFaults) {
      // Due again after a pause, as a step's backoff is (runs_due), on this controller or the
      // one that holds the run then.
      run.state = "waiting";
      run.waiting_for = "backoff";
      run.wake_at_ms = now + kRunFaultRetryMs;
      if (auto s = deps_.store.update_run(run, nullptr, nullptr, now); !s)
        spdlog::error("playbooks: run {}: cannot store: {}", run_id, s.error().message);
      return;
    }
    faults_.erase(run_id);
    const auto step = run.step;
    finish(find(run.playbook), run, "failed",
           fmt::format("step {} failed {} times on an internal error, and the run was stopped "
                       "rather than resumed into it again: {}",
                       step, count, what),
           nullptr);
  } catch (const std::exception& e) {
    spdlog::error("playbooks: run {}: cannot record its internal error: {}", run_id, e.what());
  }
}

void PlaybookEngine::advance_held(const std::string& run_id) {
  // With several controllers on one store, only the one holding the run's lease moves it; an
  // event seen here (an action's end, a decision) makes the run due for that one.
  const auto claimed_at = deps_.clock.now_unix_ms();
  auto claimed = deps_.store.claim_run(run_id, claimed_at, kRunLeaseMs);
  if (!claimed) {
    spdlog::error("playbooks: run {}: cannot claim: {}", run_id, claimed.error().message);
    return;
  }
  if (!*claimed) {
    if (auto s = deps_.store.wake_run(run_id, claimed_at); !s)
      spdlog::error("playbooks: run {}: cannot wake: {}", run_id, s.error().message);
    return;
  }
  auto found = deps_.store.find_run(run_id);
  if (!found || !*found) {
    spdlog::error("playbooks: cannot load run {}", run_id);
    return;
  }
  PlaybookRunRecord run = std::move(**found);
  if (run.finished_at_ms) return;
  // A cancel asked through another controller while this one held the run.
  if (!run.cancel_request.empty() && !run.step.starts_with("undo:")) {
    const json request = parse_json_or(run.cancel_request, json::object());
    if (auto s = cancel_held(run, request.value("by", std::string("unknown")),
                             request.value("reason", std::string()));
        !s)
      spdlog::error("playbooks: run {}: cannot carry out its cancel: {}", run.id,
                    s.error().message);
    return;
  }
  const auto* playbook = find(run.playbook);
  if (playbook == nullptr) {
    return finish(nullptr, run, "failed",
                  fmt::format("playbook {} is no longer loaded on this controller", run.playbook),
                  nullptr);
  }
  json context = json::parse(run.context, nullptr, false);
  if (!context.is_object())
    return finish(playbook, run, "failed", "run context is corrupt", nullptr);
  if (context["run"].contains("input_error"))
    return finish(playbook, run, "failed", context["run"]["input_error"].get<std::string>(),
                  nullptr);
  if (run.step.starts_with("undo:")) return compensate(*playbook, run, context);

  // A loaded playbook has no cycle, so a run ends; the bound guards one advance's length.
  for (int guard = 0; guard < 1000; ++guard) {
    const auto* step = playbook->find_step(run.step);
    if (step == nullptr) {
      return finish(playbook, run, "failed",
                    fmt::format("step {} is not in playbook {} version {}", run.step,
                                playbook->name, playbook->version),
                    nullptr);
    }
    const auto now = deps_.clock.now_unix_ms();
    if (run.waiting_for == "backoff") {
      if (now < run.wake_at_ms) return;  // a retry not yet due
      run.waiting_for.clear();
      run.step_started_at_ms = now;
    }
    auto out = execute(*playbook, *step, run, context);
    if (out.kind == StepOutcome::Kind::waiting) {
      const bool changed = run.state != "waiting" || run.waiting_for != out.waiting_for ||
                           run.wake_at_ms != out.wake_at_ms;
      run.state = "waiting";
      run.waiting_for = out.waiting_for;
      run.wake_at_ms = out.wake_at_ms;
      if (changed) {
        if (auto s = deps_.store.update_run(run, nullptr, nullptr, now); !s)
          spdlog::error("playbooks: run {}: cannot store: {}", run.id, s.error().message);
        else
          look_again_if_actions_ended(run);
      }
      return;
    }
    RunStepRecord record{run.id,
                         0,
                         step->id,
                         std::string(step_kind_name(step->kind)),
                         run.attempt,
                         out.outcome,
                         out.mode,
                         out.mode_reason,
                         out.output.dump(-1, ' ', false, json::error_handler_t::replace),
                         run.step_started_at_ms,
                         now};
    context["steps"][step->id] = out.output;
    run.context = context.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string next;
    if (out.kind == StepOutcome::Kind::done) {
      next = out.next.empty() ? step->next : out.next;
    } else {
      spdlog::warn("playbooks: run {} step {} attempt {} failed: {}", run.id, step->id, run.attempt,
                   out.error);
      // A person said no: the run ends there, whatever retries or on_failure say, and its
      // earlier steps are undone.
      if (out.outcome == "denied") {
        return end(playbook, run, context, "denied", fmt::format("step {}: {}", step->id, out.error),
                   &record);
      }
      if (run.attempt <= step->retries) {
        const auto backoff = step->backoff_ms << std::min(run.attempt - 1, 10);
        record.outcome = fmt::format("failed, retry {} of {} in {} s", run.attempt, step->retries,
                                     backoff / 1000.0);
        run.attempt += 1;
        run.state = "waiting";
        run.waiting_for = "backoff";
        run.wake_at_ms = now + backoff;
        if (auto s = deps_.store.update_run(run, &record, nullptr, now); !s)
          spdlog::error("playbooks: run {}: cannot store: {}", run.id, s.error().message);
        return;
      }
      if (step->on_failure == "stop" || step->on_failure == "escalate") {
        return end(playbook, run, context, step->on_failure == "stop" ? "failed" : "escalated",
                   fmt::format("step {}: {}", step->id, out.error), &record);
      }
      context["run"]["failed_step"] = step->id;
      context["run"]["failure"] = out.error;
      run.context = context.dump(-1, ' ', false, json::error_handler_t::replace);
      next = step->on_failure;
    }
    const auto index = static_cast<std::size_t>(step - playbook->steps.data());
    if (next == "end" || (next.empty() && index + 1 == playbook->steps.size())) {
      // The playbook ran to its end. If it got there through an on_failure step, its main path
      // failed: the run says so (never "succeeded" for a kill that did not happen) and undoes
      // what it began, as any run that does not succeed.
      const auto& failed = context["run"];
      if (!failed.contains("failed_step")) return finish(playbook, run, "succeeded", "", &record);
      const auto handled = fmt::format("step {} failed ({}); its on_failure step took over",
                                       failed["failed_step"].get<std::string>(),
                                       failed.value("failure", ""));
      return end(playbook, run, context, "failed", handled, &record);
    }
    run.step = next.empty() ? playbook->steps[index + 1].id : next;
    run.attempt = 1;
    run.state = "running";
    run.waiting_for.clear();
    run.wake_at_ms = 0;
    run.step_started_at_ms = now;
    if (auto s = deps_.store.update_run(run, &record, nullptr, now); !s) {
      spdlog::error("playbooks: run {}: cannot store its progress: {}", run.id, s.error().message);
      return;  // the store is the run's memory: without it, stop rather than act unrecorded
    }
  }
}

PlaybookEngine::StepOutcome PlaybookEngine::execute(const Playbook& playbook,
                                                    const PlaybookStep& step,
                                                    PlaybookRunRecord& run, json& context) {
  const auto now = deps_.clock.now_unix_ms();
  StepOutcome out;
  switch (step.kind) {
    case StepKind::action:
    case StepKind::query: {
      auto acted = run_actions(playbook, step, run, context);
      // From here on the run describes things that did not happen: no status may say they did
      // and no notification may tell anyone they did.
      if (acted.outcome == "simulated") context["run"]["simulated"] = true;
      return acted;
    }
    case StepKind::decide: {
      auto holds = step.condition->test(context);
      if (!holds) return StepOutcome::failed(holds.error().message);
      out.next = *holds ? step.then_step : step.else_step;
      out.outcome = fmt::format("{} -> {}", *holds ? "then" : "else",
                                out.next.empty() ? "next step" : out.next);
      out.output = {{"state", "succeeded"}, {"result", *holds}};
      return out;
    }
    case StepKind::approve: {
      auto reason = step.reason.render(context);
      if (!reason) return StepOutcome::failed(reason.error().message);
      return gate(step, run, json{{"gate", *reason}}.dump(), json::array(), *reason,
                  step.expires_ms);
    }
    case StepKind::notify: {
      auto body = step.body.render(context);
      if (!body) return StepOutcome::failed(body.error().message);
      if (!deps_.post_webhook) return StepOutcome::failed("no webhook client on this controller");
      std::string url = step.url;
      if (url.starts_with("webhook:")) {
        const auto named = deps_.webhooks.find(url.substr(8));
        if (named == deps_.webhooks.end()) {
          // A missing chat channel is a configuration gap, not a failed response: the step is
          // skipped and says so on the run and the case, and the run goes on.
          const auto why =
              fmt::format("{} is not defined in controller.yaml (playbooks.webhooks)", url);
          (void)deps_.store.update_case(
              run.case_id,
              {"", "", "", fmt::format("Notification of run {} ({}, step {}) not sent: {}.",
                                       run.id, playbook.name, step.id, why)},
              actor_of(run),
              {actor_of(run), "case.updated", run.case_id,
               dump(json{{"run_id", run.id}, {"step", step.id}, {"skipped", why}})},
              now);
          out.outcome = "skipped: " + why;
          out.output = {{"state", "skipped"}, {"reason", why}, {"body", *body}};
          return out;
        }
        url = named->second;
      }
      if (body->is_object()) (*body)["case_link"] = deps_.case_link_prefix + run.case_id;
      if (context["run"].value("simulated", false)) {
        out.outcome = "simulated: not sent (the run's actions were simulated)";
        out.output = {{"state", "simulated"}, {"body", *body}};
        return out;
      }
      bool held = false;
      if (auto s = post_limited(url, *body, &held); !s) {
        // A notification that did not get through is on the case and the audit log, but it
        // does not undo or fail what the run did: the host is contained whether or not the
        // chat heard of it.
        const auto why = fmt::format("{} not notified: {}", step.url, s.error().message);
        spdlog::error("playbooks: run {} step {}: {}", run.id, step.id, why);
        (void)deps_.store.update_case(
            run.case_id, {"", "", "", fmt::format("Run {} ({}): {}.", run.id, playbook.name, why)},
            actor_of(run),
            {actor_of(run), "run.notify_failed", run.case_id,
             dump(json{{"run_id", run.id}, {"step", step.id}, {"error", s.error().message}})},
            now);
        out.outcome = "not sent: " + s.error().message;
        out.output = {{"state", "failed"}, {"error", s.error().message}, {"body", *body}};
        return out;
      }
      out.outcome = held ? "held for a digest (webhook rate limit)" : "notified";
      // What was sent, for the case record (the URL may hold a token: only its name or host).
      out.output = {{"state", "succeeded"},
                    {"webhook", step.url.starts_with("webhook:")
                                    ? step.url
                                    : parse_webhook_url(url).value_or(WebhookUrl{}).host},
                    {"body", *body}};
      return out;
    }
    case StepKind::case_update: {
      auto note = step.note.render(context);
      if (!note) return StepOutcome::failed(note.error().message);
      CaseChange change{step.status, step.severity, step.assignee, *note};
      // Two playbooks on one case must not race on its status. A run closes a case (resolved,
      // false_positive) only when no other run of the case is unfinished and no other run has
      // contained it: containment and work in progress win over a close. The close that lost
      // is kept as a note naming both runs, so the record shows what each decided.
      std::string kept_because;
      if (context["run"].value("simulated", false) &&
          (step.status == "contained" || step.status == "resolved")) {
        // A simulated kill contained nothing.
        kept_because = "the run's actions were simulated";
        change.status.clear();
        change.note = fmt::format("[simulated run {} of {}: would set the case {}] {}", run.id,
                                  run.playbook, step.status, change.note);
      } else if (step.status == "resolved" || step.status == "false_positive") {
        kept_because = closing_blocked_by(run);
        if (!kept_because.empty()) {
          change.status.clear();
          change.note = fmt::format("{}{}[run {} of {} would set the case {}; kept: {}]",
                                    change.note, change.note.empty() ? "" : " ", run.id,
                                    run.playbook, step.status, kept_because);
        }
      }
      const json details{{"run_id", run.id},          {"step", step.id},
                         {"status", step.status},     {"severity", step.severity},
                         {"assignee", step.assignee}, {"note", *note}};
      if (auto s = deps_.store.update_case(
              run.case_id, change, actor_of(run),
              {actor_of(run), "case.updated", run.case_id,
               details.dump(-1, ' ', false, json::error_handler_t::replace)},
              now);
          !s)
        return StepOutcome::failed(s.error().message);
      out.outcome = step.status.empty()    ? "case updated"
                    : kept_because.empty() ? "case " + step.status
                                           : "case not " + step.status + " (" + kept_because + ")";
      out.output = {{"state", "succeeded"}, {"change", details}};
      if (!kept_because.empty()) out.output["kept_because"] = kept_because;
      return out;
    }
    case StepKind::wait:
      if (run.waiting_for != "timer") return StepOutcome::waiting("timer", now + step.wait_ms);
      if (now < run.wake_at_ms) return StepOutcome::waiting("timer", run.wake_at_ms);
      out.outcome = fmt::format("waited {} s", step.wait_ms / 1000.0);
      out.output = {{"state", "succeeded"}};
      return out;
  }
  return StepOutcome::failed("unknown step kind");
}

std::string PlaybookEngine::closing_blocked_by(const PlaybookRunRecord& run) {
  auto runs = deps_.store.list_runs(run.case_id, 100);
  if (!runs) return "";
  for (const auto& other : *runs) {
    if (other.id == run.id) continue;
    if (other.state == "running" || other.state == "waiting")
      return fmt::format("run {} of {} on this case is still {}", other.id, other.playbook,
                         other.state);
    auto steps = deps_.store.run_steps(other.id);
    if (!steps) continue;
    for (const auto& s : *steps) {
      if (s.outcome == "case contained")
        return fmt::format("run {} of {} contained the case", other.id, other.playbook);
    }
  }
  return "";
}

PlaybookEngine::StepOutcome PlaybookEngine::gate(const PlaybookStep& step, PlaybookRunRecord& run,
                                                 const std::string& what, const json& impact,
                                                 const std::string& reason,
                                                 std::int64_t expires_ms) {
  const auto now = deps_.clock.now_unix_ms();
  ApprovalRecord request;
  // The same (run, step, attempt) always asks through the same request, also after a restart.
  request.id = approval_id(run, step);
  request.run_id = run.id;
  request.step_id = step.id;
  request.attempt = run.attempt;
  request.case_id = run.case_id;
  request.requested_by = run.requested_by.empty() ? run.started_by : run.requested_by;
  request.not_deciders = not_deciders(run, parse_json_or(run.context, json::object()));
  request.what = what;
  request.reason = reason;
  request.impact = impact.dump();
  request.created_at_ms = now;
  request.expires_at_ms = now + expires_ms;
  auto stored =
      deps_.store.insert_approval(request,
                                  {actor_of(run), "approval.requested", run.case_id,
                                   json{{"approval_id", request.id},
                                        {"run_id", run.id},
                                        {"step", step.id},
                                        {"reason", reason},
                                        {"expires_at", format_utc_ms(request.expires_at_ms)}}
                                       .dump(-1, ' ', false, json::error_handler_t::replace)},
                                  now);
  if (!stored) return StepOutcome::failed(stored.error().message);
  const auto& a = *stored;
  if (a.state == "approved") {
    StepOutcome out;
    out.outcome = "approved by " + a.decided_by;
    out.output = {{"state", "approved"}, {"approval_id", a.id}, {"approver", a.decided_by}};
    return out;
  }
  if (a.state == "denied") {
    auto out = StepOutcome::failed(fmt::format(
        "denied by {}{}", a.decided_by, a.decision_reason.empty() ? "" : ": " + a.decision_reason));
    out.outcome = "denied";
    return out;
  }
  if (a.state == "expired" || a.expires_at_ms <= now) {
    auto out = StepOutcome::failed(
        fmt::format("approval {} expired at {} unanswered", a.id, format_utc_ms(a.expires_at_ms)));
    out.outcome = "approval expired";
    return out;
  }
  if (run.waiting_for != "approval") {
    spdlog::info("playbooks: run {} step {} waits for approval {}", run.id, step.id, a.id);
    // Someone must know that a decision waits: the responders' webhook is told once per request
    // (a resumed run finds its request already stored and is not announced again).
    if (a.created_at_ms == now && !deps_.responder_webhook.empty() && deps_.post_webhook) {
      const json announcement{{"event", "approval_requested"},
                              {"approval_id", a.id},
                              {"approval_link", deps_.approval_link_prefix + a.id},
                              {"run_id", run.id},
                              {"playbook", run.playbook},
                              {"step", step.id},
                              {"case_id", run.case_id},
                              {"case_link", deps_.case_link_prefix + run.case_id},
                              {"what", parse_json_or(a.what, json(a.what))},
                              {"reason", a.reason},
                              {"requested_by", a.requested_by},
                              {"expires_at", format_utc_ms(a.expires_at_ms)}};
      bool held = false;
      if (auto s = post_limited(deps_.responder_webhook, announcement, &held); !s) {
        spdlog::error("playbooks: approval {}: responders not notified: {}", a.id,
                      s.error().message);
        (void)deps_.store.append_audit(
            {actor_of(run), "approval.notify_failed", run.case_id,
             json{{"approval_id", a.id}, {"error", s.error().message}}.dump()},
            now);
      }
    }
  }
  return StepOutcome::waiting("approval", a.expires_at_ms);
}

PlaybookEngine::StepOutcome PlaybookEngine::run_actions(const Playbook& playbook,
                                                        const PlaybookStep& step,
                                                        PlaybookRunRecord& run,
                                                        const json& context) {
  const auto now = deps_.clock.now_unix_ms();
  std::unique_ptr<Store::AutomationLock> automation_lock;  // see the rate limits below
  auto target = step.target.render(context);
  if (!target) return StepOutcome::failed(target.error().message);
  auto parameters = step.parameters.render(context);
  if (!parameters) return StepOutcome::failed(parameters.error().message);
  if (!step.rules_text.empty()) {
    // The step's rules_file travels as a rule set stored once; approvals and audit see its hash.
    auto stored = deps_.dispatcher.store_rule_set(step.rules_text, step.rules_file,
                                                  "playbook " + playbook.name);
    if (!stored) return StepOutcome::failed(stored.error().message);
    (*parameters)["rules_sha256"] = stored->sha256;
  }
  auto agents = deps_.store.list_agents();
  if (!agents) return StepOutcome::failed(agents.error().message);
  const auto resolved = resolve_target(*target, context["alert"], *agents);
  if (!resolved.refusal.empty())
    return StepOutcome::failed(fmt::format("no proven target: {}", resolved.refusal));
  const auto& targets = resolved.agents;

  // The effective mode: the declaration, lowered by the run's own limit and by the ceiling of
  // every asset the step would touch (the most restrictive one wins).
  EffectiveMode mode{AutonomyMode::automatic, "query steps only read, so they run at once"};
  json impact = json::array();
  const auto assets = deps_.assets.current();
  if (step.kind == StepKind::action) {
    const auto declared = run.simulate_only ? AutonomyMode::simulate : step.mode;
    mode = {AutonomyMode::automatic, ""};
    bool first = true;
    for (const auto& agent : targets) {
      auto entries = assets->match(agent.facts.hostname, agent.id, agent.facts.ip_addresses);
      std::vector<std::optional<AssetClass>> classes;
      if (entries.empty()) classes.emplace_back(std::nullopt);
      for (const auto* e : entries) {
        classes.emplace_back(AssetClass{e->environment, e->criticality});
        impact.push_back({{"agent_id", agent.id},
                          {"hostname", agent.facts.hostname},
                          {"asset", e->name},
                          {"environment", e->environment},
                          {"criticality", e->criticality},
                          {"owner", e->owner},
                          {"stakeholders", e->stakeholders}});
      }
      if (entries.empty())
        impact.push_back(
            {{"agent_id", agent.id}, {"hostname", agent.facts.hostname}, {"asset", nullptr}});
      for (const auto& cls : classes) {
        auto m = effective_mode(declared, deps_.autonomy, cls);
        if (first || mode_rank(m.mode) < mode_rank(mode.mode)) mode = m;
        first = false;
      }
    }
    if (run.simulate_only)
      mode.why = fmt::format("run started by {} in simulate only; {}", run.started_by, mode.why);
    const auto source =
        context.value("alert", json::object()).value("submitted_by", json::object());
    mode = lower_to(mode, source_ceiling(deps_.autonomy, source.value("name", std::string()),
                                         source.value("role", std::string()),
                                         source.is_object() && source["max_mode"].is_string()
                                             ? source["max_mode"].get<std::string>()
                                             : std::string()));
    if (mode.mode == AutonomyMode::automatic) {
      // The rate limits, decided once per step attempt: a step already dispatched stays
      // automatic (its own actions now count), one already asked stays asked. Counted and
      // recorded under the store's automation lock (held to the end of this function, past the
      // dispatch), so that two controllers cannot both take the last slot.
      auto dispatched = deps_.store.find_action(
          crypto::name_uuid(attempt_key(run, step) + "/" + targets.front().id));
      auto asked = deps_.store.find_approval(approval_id(run, step));
      if (asked && *asked) {
        // The reason as gate() wrote it: "KIND on HOSTS (playbook P, step S): WHY".
        const auto& reason = (**asked).reason;
        const auto why = reason.find("): ");
        mode = {AutonomyMode::approve,
                why == std::string::npos ? reason : reason.substr(why + 3)};
      } else if (!dispatched || !*dispatched) {
        auto locked = deps_.store.lock_automation();
        if (locked) automation_lock = std::move(*locked);
        const auto limited = locked
                                 ? rate_limited(playbook, targets, now)
                                 : "the rate limits cannot be checked: " + locked.error().message;
        if (!limited.empty()) {
          mode = {AutonomyMode::approve, "lowered from auto to approve: " + limited};
          spdlog::warn("playbooks: run {} step {}: {}", run.id, step.id, mode.why);
          (void)deps_.store.update_case(
              run.case_id,
              {"", "", "", fmt::format("Rate limit: step {} of playbook {} (run {}) waits for a "
                                       "person's approval: {}.",
                                       step.id, playbook.name, run.id, limited)},
              actor_of(run),
              {actor_of(run), "automation.rate_limited", run.case_id,
               dump(json{{"run_id", run.id}, {"step", step.id}, {"limit", limited}})},
              now);
        }
      }
    }
  }

  std::string approver;
  if (mode.mode == AutonomyMode::approve) {
    std::vector<std::string> hosts;
    for (const auto& a : targets) hosts.push_back(a.facts.hostname);
    // The approver sees which host and why it is that one (the proof), not only its name.
    const json what{
        {"action", step.action}, {"targets", resolved.proof}, {"parameters", *parameters}};
    auto decided =
        gate(step, run, what.dump(-1, ' ', false, json::error_handler_t::replace), impact,
             fmt::format("{} on {} (playbook {}, step {}): {}", step.action, fmt::join(hosts, ", "),
                         playbook.name, step.id, mode.why),
             step.expires_ms);
    decided.mode = autonomy_mode_name(mode.mode);
    decided.mode_reason = mode.why;
    if (decided.kind != StepOutcome::Kind::done) return decided;
    approver = decided.output["approver"].get<std::string>();
  }

  ActionSubmission submission;
  for (const auto& a : targets) submission.agent_ids.push_back(a.id);
  submission.kind = step.action;
  submission.parameters = *parameters;
  submission.ttl_ms = std::max<std::int64_t>(step.timeout_ms, 1000);
  submission.requester = run.started_by == "controller" ? actor_of(run) : run.started_by;
  submission.approver = approver;
  submission.case_id = run.case_id;
  submission.playbook_run_id = run.id;
  submission.idempotency_key = attempt_key(run, step);
  submission.simulate = mode.mode == AutonomyMode::simulate;
  submission.automatic = step.kind == StepKind::action && mode.mode == AutonomyMode::automatic;
  auto actions = deps_.dispatcher.submit(submission);
  StepOutcome out;
  out.mode = step.kind == StepKind::query ? "query" : std::string(autonomy_mode_name(mode.mode));
  out.mode_reason = mode.why;
  if (!actions) {
    auto failed = StepOutcome::failed(actions.error().message);
    failed.mode = out.mode;
    failed.mode_reason = out.mode_reason;
    return failed;
  }
  json list = json::array();
  bool all_ended = true, all_succeeded = true;
  json first_result;
  for (const auto& a : *actions) {
    all_ended = all_ended && is_terminal(a.state);
    all_succeeded = all_succeeded && a.state == ActionState::succeeded;
    auto j = action_json(a);
    if (first_result.is_null() && a.state == ActionState::succeeded) first_result = j["result"];
    list.push_back(std::move(j));
  }
  if (submission.simulate) {
    out.outcome = "simulated";
    out.output = {{"state", "simulated"}, {"actions", list}, {"targets", resolved.proof}};
    return out;
  }
  if (!all_ended) {
    // From the dispatch, not the step's start: an approval may have taken hours before it.
    std::int64_t issued = actions->front().issued_at_ms;
    for (const auto& a : *actions) issued = std::min(issued, a.issued_at_ms);
    const auto deadline = issued + step.timeout_ms;
    if (now >= deadline) {
      auto failed = StepOutcome::failed(
          fmt::format("{} not finished after {} s", step.action, step.timeout_ms / 1000.0));
      failed.outcome = "timed out";
      failed.output["actions"] = list;
      failed.output["targets"] = resolved.proof;
      failed.mode = out.mode;
      failed.mode_reason = out.mode_reason;
      return failed;
    }
    auto waiting = StepOutcome::waiting("actions", deadline);
    return waiting;
  }
  if (!all_succeeded) {
    std::vector<std::string> why;
    for (const auto& a : *actions) {
      if (a.state != ActionState::succeeded)
        why.push_back(
            fmt::format("{} on {}: {} {}", a.kind, a.agent_id, to_string(a.state), a.reason));
    }
    auto failed = StepOutcome::failed(fmt::format("{}", fmt::join(why, "; ")));
    failed.output["actions"] = list;
    failed.output["targets"] = resolved.proof;
    failed.mode = out.mode;
    failed.mode_reason = out.mode_reason;
    return failed;
  }
  out.outcome = approver.empty() ? "succeeded" : "succeeded, approved by " + approver;
  out.output = {{"state", "succeeded"},
                {"actions", list},
                {"result", first_result},
                {"targets", resolved.proof}};
  return out;
}

std::string PlaybookEngine::rate_limited(const Playbook& playbook,
                                         const std::vector<AgentRecord>& targets,
                                         std::int64_t now_ms) {
  const auto& limits = deps_.autonomy.rate_limits;
  const auto count = [&](const RateLimit& limit, const std::string& agent,
                         const std::string& name) -> int {
    auto n = deps_.store.count_automatic_actions(now_ms - limit.window_ms, agent, name);
    // Unable to count is treated as over the limit: a person is asked rather than nobody.
    return n ? *n : std::numeric_limits<int>::max() / 2;
  };
  const auto n = static_cast<int>(targets.size());
  for (const auto& agent : targets) {
    const int done = count(limits.per_host, agent.id, "");
    if (done + 1 > limits.per_host.count) {
      return fmt::format(
          "{} automatic action(s) on {} in the last {} (autonomy.rate_limits.per_host: {})", done,
          agent.facts.hostname.empty() ? agent.id : agent.facts.hostname,
          minutes(limits.per_host.window_ms), limits.per_host.count);
    }
  }
  if (const int done = count(limits.per_playbook, "", playbook.name);
      done + n > limits.per_playbook.count) {
    return fmt::format(
        "{} automatic action(s) by playbook {} in the last {}, {} more asked "
        "(autonomy.rate_limits.per_playbook: {})",
        done, playbook.name, minutes(limits.per_playbook.window_ms), n,
        limits.per_playbook.count);
  }
  if (const int done = count(limits.global, "", ""); done + n > limits.global.count) {
    return fmt::format(
        "{} automatic action(s) in all in the last {}, {} more asked "
        "(autonomy.rate_limits.global: {})",
        done, minutes(limits.global.window_ms), n, limits.global.count);
  }
  return "";
}

Status PlaybookEngine::post_limited(const std::string& url, const json& body, bool* held) {
  *held = !notifications_.admit(url, body, deps_.clock.now_unix_ms());
  if (*held) {
    spdlog::info("playbooks: webhook rate limit reached; notification held for a digest");
    return ok_status();
  }
  return deps_.post_webhook(url, body);
}

void PlaybookEngine::end(const Playbook* playbook, PlaybookRunRecord& run, json& context,
                         const std::string& state, const std::string& error,
                         const RunStepRecord* last_step) {
  if (state == "succeeded" || playbook == nullptr) return finish(playbook, run, state, error, last_step);
  // The steps to undo: those that succeeded and declare an undo, newest first.
  auto steps = deps_.store.run_steps(run.id);
  std::vector<std::string> undo;
  if (steps) {
    for (auto it = steps->rbegin(); it != steps->rend(); ++it) {
      const auto* step = playbook->find_step(it->step_id);
      if (step == nullptr || step->undo_action.empty() || !it->outcome.starts_with("succeeded"))
        continue;
      if (agents_acted_on(context["steps"][step->id]).empty()) continue;
      if (std::find(undo.begin(), undo.end(), step->id) == undo.end()) undo.push_back(step->id);
    }
  }
  if (undo.empty()) return finish(playbook, run, state, error, last_step);
  const auto now = deps_.clock.now_unix_ms();
  context["run"]["ending"] = {{"state", state}, {"error", error}};
  context["run"]["undo"] = undo;
  run.context = dump(context);
  run.step = "undo:" + undo.front();
  run.attempt = 1;
  run.state = "running";
  run.waiting_for.clear();
  run.wake_at_ms = 0;
  run.step_started_at_ms = now;
  const AuditEvent audit{actor_of(run), "run.compensating", run.case_id,
                         dump(json{{"run_id", run.id}, {"ending", state}, {"undo", undo}})};
  if (auto s = deps_.store.update_run(run, last_step, &audit, now); !s) {
    spdlog::error("playbooks: run {}: cannot store its undo steps: {}", run.id, s.error().message);
    return;
  }
  spdlog::warn("playbooks: run {} ends {}; undoing {}", run.id, state, fmt::join(undo, ", "));
  compensate(*playbook, run, context);
}

void PlaybookEngine::compensate(const Playbook& playbook, PlaybookRunRecord& run, json& context) {
  while (run.step.starts_with("undo:")) {
    const auto now = deps_.clock.now_unix_ms();
    const auto id = run.step.substr(5);
    const auto* step = playbook.find_step(id);
    json output;
    std::string outcome;
    auto unfinished = deps_.store.unfinished_runs();
    const auto held = unfinished ? held_by_another_run(*unfinished, run.id, context["steps"][id])
                                 : std::string();
    if (step == nullptr || step->undo_action.empty()) {
      outcome = "failed";
      output = {{"state", "failed"}, {"error", "the step or its undo is gone from the playbook"}};
    } else if (!held.empty()) {
      outcome = "skipped: " + held;
      output = {{"state", "skipped"}, {"reason", held}};
    } else {
      auto parameters = step->undo_parameters.render(context);
      ActionSubmission submission;
      submission.agent_ids = agents_acted_on(context["steps"][id]);
      submission.kind = step->undo_action;
      submission.parameters = parameters ? *parameters : json::object();
      submission.ttl_ms = std::max<std::int64_t>(step->timeout_ms, 1000);
      submission.requester = run.started_by == "controller" ? actor_of(run) : run.started_by;
      submission.case_id = run.case_id;
      submission.playbook_run_id = run.id;
      submission.idempotency_key = fmt::format("{}/{}/1", run.id, run.step);
      auto actions = parameters ? deps_.dispatcher.submit(submission)
                                : Result<std::vector<ActionRecord>>(parameters.error());
      if (!actions) {
        outcome = "failed";
        output = {{"state", "failed"}, {"error", actions.error().message}};
      } else {
        json list = json::array();
        bool ended = true, succeeded = true;
        std::int64_t issued = now;
        std::vector<std::string> why;
        for (const auto& a : *actions) {
          ended = ended && is_terminal(a.state);
          succeeded = succeeded && a.state == ActionState::succeeded;
          issued = std::min(issued, a.issued_at_ms);
          if (is_terminal(a.state) && a.state != ActionState::succeeded)
            why.push_back(fmt::format("{} on {}: {} {}", a.kind, a.agent_id, to_string(a.state),
                                      a.reason));
          list.push_back(action_json(a));
        }
        const auto deadline = issued + step->timeout_ms;
        if (!ended && now < deadline) {
          if (run.state != "waiting" || run.wake_at_ms != deadline) {
            run.state = "waiting";
            run.waiting_for = "actions";
            run.wake_at_ms = deadline;
            if (auto s = deps_.store.update_run(run, nullptr, nullptr, now); !s)
              spdlog::error("playbooks: run {}: cannot store: {}", run.id, s.error().message);
            else
              look_again_if_actions_ended(run);
          }
          return;
        }
        outcome = succeeded ? "succeeded" : ended ? "failed" : "timed out";
        output = {{"state", succeeded ? "succeeded" : "failed"}, {"actions", list}};
        if (!why.empty()) output["error"] = fmt::format("{}", fmt::join(why, "; "));
      }
    }
    const RunStepRecord record{run.id, 0,       run.step,        "undo", 1, outcome, "auto",
                               "undoes what the run did, as the playbook declares", dump(output),
                               run.step_started_at_ms, now};
    context["steps"][run.step] = output;
    auto& queue = context["run"]["undo"];
    if (queue.is_array() && !queue.empty()) queue.erase(queue.begin());
    run.context = dump(context);
    if (queue.is_array() && !queue.empty()) {
      run.step = "undo:" + queue.front().get<std::string>();
      run.state = "running";
      run.waiting_for.clear();
      run.wake_at_ms = 0;
      run.step_started_at_ms = now;
      if (auto s = deps_.store.update_run(run, &record, nullptr, now); !s) {
        spdlog::error("playbooks: run {}: cannot store its progress: {}", run.id,
                      s.error().message);
        return;
      }
      continue;
    }
    const auto ending = context["run"].value("ending", json::object());
    std::vector<std::string> undone;
    for (const auto& [name, value] : context["steps"].items()) {
      if (name.starts_with("undo:")) undone.push_back(name.substr(5) + " " + value.value("state", ""));
    }
    return finish(&playbook, run, ending.value("state", "failed"),
                  fmt::format("{} (undone: {})", ending.value("error", ""), fmt::join(undone, ", ")),
                  &record);
  }
}

void PlaybookEngine::finish(const Playbook* playbook, PlaybookRunRecord& run,
                            const std::string& state, const std::string& error,
                            const RunStepRecord* last_step) {
  const auto now = deps_.clock.now_unix_ms();
  run.state = state;
  run.error = error;
  run.step.clear();
  run.waiting_for.clear();
  run.wake_at_ms = 0;
  run.finished_at_ms = now;
  const json details{
      {"run_id", run.id}, {"playbook", run.playbook}, {"state", state}, {"error", error}};
  const AuditEvent audit{actor_of(run), "run.finished", run.case_id,
                         details.dump(-1, ' ', false, json::error_handler_t::replace)};
  if (auto s = deps_.store.update_run(run, last_step, &audit, now); !s) {
    spdlog::error("playbooks: run {}: cannot store its end: {}", run.id, s.error().message);
    return;
  }
  if (state == "succeeded") {
    spdlog::info("playbooks: run {} of {} succeeded", run.id, run.playbook);
  } else {
    spdlog::warn("playbooks: run {} of {} {}: {}", run.id, run.playbook, state, error);
  }
  if (state == "escalated") {
    (void)deps_.store.update_case(
        run.case_id, {"", "", "", fmt::format("Escalated by playbook {}: {}", run.playbook, error)},
        actor_of(run), {actor_of(run), "case.escalated", run.case_id, details.dump()}, now);
  }
  if (deps_.responder_webhook.empty() || !deps_.post_webhook) return;
  const json summary{{"event", "playbook_run_finished"},
                     {"run_id", run.id},
                     {"playbook", run.playbook},
                     {"owner", playbook ? playbook->owner : ""},
                     {"state", state},
                     {"error", error},
                     {"alert_id", run.alert_id},
                     {"case_id", run.case_id},
                     {"case_link", deps_.case_link_prefix + run.case_id},
                     {"started_by", run.started_by},
                     {"started_at", format_utc_ms(run.started_at_ms)},
                     {"finished_at", format_utc_ms(now)}};
  bool held = false;
  if (auto s = post_limited(deps_.responder_webhook, summary, &held); !s) {
    spdlog::error("playbooks: run {}: responder not notified: {}", run.id, s.error().message);
    (void)deps_.store.append_audit({actor_of(run), "run.notify_failed", run.case_id,
                                    json{{"run_id", run.id}, {"error", s.error().message}}.dump()},
                                   now);
  }
}

bool cancel_pending(const PlaybookRunRecord& r) {
  // Carried out, the run is undoing its steps ("undo:...") or has ended.
  return !r.cancel_request.empty() && !r.finished_at_ms && !r.step.starts_with("undo:");
}

json run_json(const PlaybookRunRecord& r, const std::vector<RunStepRecord>* steps) {
  json out{{"id", r.id},
           {"playbook", r.playbook},
           {"version", r.playbook_version},
           {"alert_id", r.alert_id},
           {"case_id", r.case_id},
           {"started_by", r.started_by},
           {"requested_by", r.requested_by.empty() ? json(nullptr) : json(r.requested_by)},
           {"simulate_only", r.simulate_only},
           {"state", r.state},
           {"step", r.step.empty() ? json(nullptr) : json(r.step)},
           {"attempt", r.attempt},
           {"waiting_for", r.waiting_for.empty() ? json(nullptr) : json(r.waiting_for)},
           {"wake_at", r.wake_at_ms > 0 ? json(format_utc_ms(r.wake_at_ms)) : json(nullptr)},
           {"error", r.error.empty() ? json(nullptr) : json(r.error)},
           {"started_at", format_utc_ms(r.started_at_ms)},
           {"updated_at", format_utc_ms(r.updated_at_ms)},
           {"finished_at", utc_or_null(r.finished_at_ms)},
           // A cancel the controller holding the run has yet to carry out.
           {"cancel_requested", cancel_pending(r) ? parse_json_or(r.cancel_request, json(nullptr))
                                                  : json(nullptr)}};
  if (steps != nullptr) {
    json list = json::array();
    for (const auto& s : *steps) {
      list.push_back({{"step", s.step_id},
                      {"kind", s.kind},
                      {"attempt", s.attempt},
                      {"outcome", s.outcome},
                      {"mode", s.mode.empty() ? json(nullptr) : json(s.mode)},
                      {"mode_reason", s.mode_reason.empty() ? json(nullptr) : json(s.mode_reason)},
                      {"output", parse_json_or(s.detail, json(s.detail))},
                      {"started_at", format_utc_ms(s.started_at_ms)},
                      {"finished_at", format_utc_ms(s.finished_at_ms)},
                      {"duration_ms", s.finished_at_ms - s.started_at_ms}});
    }
    out["steps"] = std::move(list);
  }
  return out;
}

json approval_json(const ApprovalRecord& a) {
  return json{
      {"id", a.id},
      {"run_id", a.run_id},
      {"step", a.step_id},
      {"attempt", a.attempt},
      {"case_id", a.case_id},
      {"requested_by", a.requested_by},
      {"not_deciders", a.not_deciders},
      {"what", parse_json_or(a.what, json(a.what))},
      {"reason", a.reason},
      {"impact", parse_json_or(a.impact, json::array())},
      {"state", a.state},
      {"decided_by", a.decided_by.empty() ? json(nullptr) : json(a.decided_by)},
      {"decision_reason", a.decision_reason.empty() ? json(nullptr) : json(a.decision_reason)},
      {"created_at", format_utc_ms(a.created_at_ms)},
      {"expires_at", format_utc_ms(a.expires_at_ms)},
      {"decided_at", utc_or_null(a.decided_at_ms)}};
}

}  // namespace riposte::controller
