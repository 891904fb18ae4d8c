#include "controller/playbooks/simulation.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "common/utc_time.h"
#include "controller/observables/ip_network.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

int severity_rank(const std::string& severity) {
  static constexpr std::array<std::string_view, 4> kOrder = {"low", "medium", "high", "critical"};
  const auto found = std::find(kOrder.begin(), kOrder.end(), severity);
  return found == kOrder.end() ? -1 : static_cast<int>(found - kOrder.begin());
}

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

bool listed(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

namespace {

json matched_entities(const json& alert) {
  json matched{{"ip", nullptr}, {"ip_why", nullptr}, {"indicator", nullptr}, {"host", nullptr}};
  const auto validation = alert.value("validation", json());
  if (validation.is_object()) {
    // The address a host was found talking to, else the first outside address validation
    // checked: never the alert's own host address, never loopback (validation.h outside_ips).
    for (const auto& h : validation.value("hosts", json::array())) {
      if (!h.is_object() || !h.value("ip", json()).is_string()) continue;
      matched["ip"] = h["ip"];
      matched["ip_why"] =
          fmt::format("validation found {} connected to it", text(h.value("hostname", json())));
      break;
    }
    const auto ips = validation.value("ips", json::array());
    if (matched["ip"].is_null() && ips.is_array() && !ips.empty() && ips[0].is_string()) {
      matched["ip"] = ips[0];
      matched["ip_why"] = "the first outside address validation checked (no host contact found)";
    }
    if (validation.value("host", json()).is_object()) matched["host"] = validation["host"];
  }
  if (matched["ip"].is_null()) {
    // Alerts validated before validation listed its addresses: the first IP observable that can
    // be an outside address (not the alert's host's, not loopback or link-local).
    const auto own = alert.value("host", json::object()).value("ip", json());
    for (const auto& o : alert.value("observables", json::array())) {
      if (!o.is_object() || text(o.value("type", json())) != "ip") continue;
      const auto value = text(o.value("value", json()));
      const bool host_own =
          own == json(value) ||
          (own.is_array() && std::find(own.begin(), own.end(), json(value)) != own.end());
      if (value.empty() || host_own || !host_local_scope(value).empty()) continue;
      matched["ip"] = value;
      matched["ip_why"] = "the first IP observable that is not the alert's host's own";
      break;
    }
  }
  const auto enrichment = alert.value("enrichment", json());
  if (enrichment.is_object() && enrichment.value("host", json()).is_object())
    matched["host"] = enrichment["host"];
  const auto confidence = alert.value("confidence", json());
  if (confidence.is_object()) {
    double best = -1;
    for (const auto& c : confidence.value("confirmations", json::array())) {
      if (!c.is_object() || !c.value("score", json()).is_number()) continue;
      if (c["score"].get<double>() > best) {
        best = c["score"].get<double>();
        matched["indicator"] = c;
      }
    }
  }
  return matched;
}

}  // namespace

json run_context(const json& alert) {
  // The validation record says "outcome"; playbooks read validation.status, as the alert does.
  json validation = alert.value("validation", json());
  if (validation.is_object() && !validation.contains("status")) {
    validation["status"] =
        validation.contains("outcome") ? validation["outcome"] : alert.value("status", json());
  }
  return json{{"alert", alert},
              {"matched", matched_entities(alert)},
              {"observables", alert.value("observables", json::array())},
              {"validation", validation},
              {"enrichment", alert.value("enrichment", json())},
              {"confidence", alert.value("confidence", json())},
              {"case", {{"id", alert.value("case_id", json())}}},
              {"inputs", json::object()},
              {"steps", json::object()},
              {"run", json::object()}};
}

std::optional<std::string> explain_target(const std::string& target, const json& alert,
                                          std::string* why) {
  if (target.empty()) return std::string("the step's target is empty (what it names is not in the alert)");
  if (target == "all") {
    *why = "every enrolled agent, as the step declares";
    return std::nullopt;
  }
  const auto matched = matched_entities(alert);
  if (target == "host") {
    const auto& host = matched["host"];
    if (!host.is_object()) {
      // Recorded before host resolution existed, or never enriched: the controller decides
      // when it runs; here nothing proves which agent it is.
      *why = "the alert's host; no recorded resolution (the controller resolves it when it runs)";
      return std::nullopt;
    }
    if (text(host.value("status", json())) != "resolved") return text(host.value("why", json()));
    *why = text(host.value("why", json()));
    return std::nullopt;
  }
  for (const auto& h : alert.value("validation", json::object()).value("hosts", json::array())) {
    if (h.is_object() && text(h.value("agent_id", json())) == target) {
      *why = fmt::format("agent id {} ({}): validation found it connected to {}", target,
                         text(h.value("hostname", json())), text(h.value("ip", json())));
      return std::nullopt;
    }
  }
  *why = fmt::format("agent id or hostname '{}' as the playbook names it", target);
  return std::nullopt;
}

bool trigger_matches(const Playbook& playbook, const json& alert, std::string* why_not) {
  const auto& t = playbook.trigger;
  const auto no = [&](std::string why) {
    if (why_not) *why_not = std::move(why);
    return false;
  };
  if (!t.sources.empty() && !listed(t.sources, text(alert.value("source", json()))))
    return no(fmt::format("source {} is not one of the trigger's", text(alert["source"])));
  if (!t.rules.empty()) {
    const auto rule = alert.value("rule", json::object());
    if (!listed(t.rules, text(rule.value("name", json()))) &&
        !listed(t.rules, text(rule.value("id", json()))))
      return no("rule is not one of the trigger's");
  }
  if (!t.severity_at_least.empty() &&
      severity_rank(text(alert.value("severity", json()))) < severity_rank(t.severity_at_least))
    return no(fmt::format("severity {} is below {}", text(alert.value("severity", json())),
                          t.severity_at_least));
  if (!t.observable_types.empty()) {
    const auto observables = alert.value("observables", json::array());
    const bool any = std::any_of(observables.begin(), observables.end(), [&](const json& o) {
      return listed(t.observable_types, text(o.value("type", json())));
    });
    if (!any) return no("no observable of the trigger's types");
  }
  if (!t.validation.empty()) {
    const auto validation = alert.value("validation", json());
    auto status = validation.is_object() ? text(validation.value("status", json())) : "";
    if (status.empty()) status = text(alert.value("status", json()));
    if (!listed(t.validation, status))
      return no(fmt::format("validation status '{}' is not one of the trigger's", status));
  }
  const auto confidence = alert.value("confidence", json());
  const double score = confidence.is_object() ? confidence.value("score", 0.0) : 0.0;
  if (score < t.confidence_min || score > t.confidence_max)
    return no(fmt::format("confidence {:.2f} is outside {:.2f}..{:.2f}", score, t.confidence_min,
                          t.confidence_max));
  if (t.when) {
    auto holds = t.when->test(run_context(alert));
    if (!holds) return no("trigger.when: " + holds.error().message);
    if (!*holds) return no("trigger.when is false");
  }
  return true;
}

Simulation simulate_playbook(const Playbook& playbook, const json& alert,
                             const std::string& case_link_prefix) {
  Simulation sim;
  sim.triggered = trigger_matches(playbook, alert, &sim.not_triggered_because);
  if (!sim.triggered) return sim;
  json context = run_context(alert);
  const auto case_link =
      (case_link_prefix.empty() ? std::string("https://CONTROLLER/api/v1/cases/")
                                : case_link_prefix) +
      text(alert.value("case_id", json()));
  context["case"]["url"] = case_link;
  for (const auto& [name, value] : playbook.inputs) {
    auto rendered = value.render_value(context);
    if (!rendered) {
      sim.error = fmt::format("input {}: {}", name, rendered.error().message);
      return sim;
    }
    context["inputs"][name] = std::move(*rendered);
  }
  std::size_t index = 0;
  // A loaded playbook has no cycle; the bound only guards against a logic error here.
  for (std::size_t guard = 0; index < playbook.steps.size() && guard < 1000; ++guard) {
    const auto& step = playbook.steps[index];
    SimulatedStep taken{step.id, std::string(step_kind_name(step.kind)), ""};
    std::string next = step.next;
    std::string failure;
    switch (step.kind) {
      case StepKind::action:
      case StepKind::query: {
        auto target = step.target.render(context);
        auto parameters = step.parameters.render(context);
        if (!target || !parameters) {
          failure = (!target ? target.error() : parameters.error()).message;
          break;
        }
        std::string why_target;
        if (auto refused = explain_target(*target, alert, &why_target)) {
          failure = "no proven target: " + *refused;
          break;
        }
        json action{
            {"step", step.id},
            {"action", step.action},
            {"target", *target},
            {"target_why", why_target},
            {"parameters", *parameters},
            {"mode", step.kind == StepKind::query ? "query" : autonomy_mode_name(step.mode)}};
        taken.outcome = fmt::format("would dispatch {} to {} [{}] ({})", step.action, *target,
                                    why_target, action["mode"].get<std::string>());
        sim.actions.push_back(std::move(action));
        context["steps"][step.id] = {{"state", "simulated"}};
        break;
      }
      case StepKind::decide: {
        auto holds = step.condition->test(context);
        if (!holds) {
          failure = holds.error().message;
          break;
        }
        next = *holds ? step.then_step : step.else_step;
        taken.outcome =
            fmt::format("{} -> {}", *holds ? "then" : "else", next.empty() ? "next step" : next);
        context["steps"][step.id] = {{"state", "succeeded"}, {"result", *holds}};
        break;
      }
      case StepKind::approve: {
        auto reason = step.reason.render(context);
        if (!reason) {
          failure = reason.error().message;
          break;
        }
        taken.outcome = "would ask for approval: " + *reason;
        context["steps"][step.id] = {{"state", "approved"}};
        break;
      }
      case StepKind::notify: {
        auto body = step.body.render(context);
        if (!body) {
          failure = body.error().message;
          break;
        }
        if (body->is_object()) (*body)["case_link"] = case_link;
        taken.outcome = fmt::format("would notify {} with {}", step.url, compact_json(*body));
        break;
      }
      case StepKind::case_update: {
        auto note = step.note.render(context);
        if (!note) {
          failure = note.error().message;
          break;
        }
        std::string change;
        if (!step.status.empty()) change += "status " + step.status;
        if (!step.severity.empty())
          change += (change.empty() ? "" : ", ") + ("severity " + step.severity);
        if (!note->empty()) change += (change.empty() ? "" : ", ") + ("note \"" + *note + "\"");
        taken.outcome = "case: " + change;
        break;
      }
      case StepKind::wait:
        taken.outcome = fmt::format("would wait {} s", step.wait_ms / 1000);
        break;
    }
    if (!failure.empty()) {
      taken.outcome = "fails: " + failure;
      sim.path.push_back(std::move(taken));
      if (step.on_failure == "stop" || step.on_failure == "escalate") {
        sim.error = fmt::format("step {}: {} ({})", step.id, failure, step.on_failure);
        return sim;
      }
      context["run"]["failed_step"] = step.id;
      context["run"]["failure"] = failure;
      next = step.on_failure;
    } else {
      sim.path.push_back(std::move(taken));
    }
    if (next == "end") break;
    if (next.empty()) {
      ++index;
      continue;
    }
    const auto* target = playbook.find_step(next);
    index = static_cast<std::size_t>(target - playbook.steps.data());
  }
  return sim;
}

void ModeReplay::apply(const Playbook& playbook, const json& alert, Simulation& sim) {
  const auto at_ms = parse_rfc3339_ms(text(alert.value("timestamp", json()))).value_or(0);
  const auto host_name = text(alert.value("host", json::object()).value("name", json()));
  std::vector<std::optional<AssetClass>> classes;
  for (const auto& entry : alert.value("assets", json::array())) {
    if (entry.is_object())
      classes.emplace_back(
          AssetClass{text(entry.value("environment", json())), text(entry.value("criticality", json()))});
  }
  if (classes.empty()) classes.emplace_back(std::nullopt);
  const auto given = alert.value("submitted_by", json::object());
  const auto source = given.is_object() ? given : json::object();
  const auto ceiling =
      source_ceiling(policy_, text(source.value("name", json())), text(source.value("role", json())),
                     text(source.value("max_mode", json())));
  const auto prune = [&](std::deque<std::int64_t>& times, const RateLimit& limit) {
    while (!times.empty() && times.front() <= at_ms - limit.window_ms) times.pop_front();
    return static_cast<int>(times.size());
  };
  const auto& limits = policy_.rate_limits;
  for (auto& action : sim.actions) {
    const auto declared = text(action["mode"]);
    action["declared_mode"] = declared;
    if (declared == "query") continue;
    const auto* step = playbook.find_step(text(action["step"]));
    if (step == nullptr) continue;
    EffectiveMode mode;
    bool first = true;
    for (const auto& cls : classes) {
      auto m = effective_mode(step->mode, policy_, cls);
      if (first || m.mode < mode.mode) mode = m;
      first = false;
    }
    mode = lower_to(mode, ceiling);
    if (mode.mode == AutonomyMode::automatic) {
      const auto target = text(action["target"]);
      const auto host = target == "host" ? host_name : target;
      auto& on_host = per_host_[host];
      auto& by_playbook = per_playbook_[playbook.name];
      std::string limited;
      if (prune(on_host, limits.per_host) + 1 > limits.per_host.count) {
        limited = fmt::format("{} automatic action(s) on {} in the window (per_host: {})",
                              on_host.size(), host, limits.per_host.count);
      } else if (prune(by_playbook, limits.per_playbook) + 1 > limits.per_playbook.count) {
        limited = fmt::format("{} automatic action(s) by {} in the window (per_playbook: {})",
                              by_playbook.size(), playbook.name, limits.per_playbook.count);
      } else if (prune(global_, limits.global) + 1 > limits.global.count) {
        limited = fmt::format("{} automatic action(s) in all in the window (global: {})",
                              global_.size(), limits.global.count);
      }
      if (limited.empty()) {
        on_host.push_back(at_ms);
        by_playbook.push_back(at_ms);
        global_.push_back(at_ms);
      } else {
        mode = {AutonomyMode::approve, "lowered from auto to approve: rate limit, " + limited};
      }
    }
    action["mode"] = autonomy_mode_name(mode.mode);
    action["why"] = mode.why;
    // The path says the same as the action list.
    for (auto& taken : sim.path) {
      if (taken.id == step->id && taken.outcome.starts_with("would dispatch"))
        taken.outcome = fmt::format("would dispatch {} to {} [{}] ({})", text(action["action"]),
                                    text(action["target"]), text(action["target_why"]),
                                    text(action["mode"]));
    }
  }
}

json simulation_json(const Simulation& sim, const json& alert_id) {
  json path = json::array();
  for (const auto& step : sim.path)
    path.push_back(json{{"step", step.id}, {"kind", step.kind}, {"outcome", step.outcome}});
  return json{{"alert", alert_id},
              {"triggered", sim.triggered},
              {"not_triggered_because", sim.not_triggered_because},
              {"path", path},
              {"actions", sim.actions},
              {"error", sim.error}};
}

}  // namespace riposte::controller
