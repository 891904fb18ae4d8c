#pragma once

// A playbook walked over one alert without touching any agent: which steps it would take, which
// branch each decision would choose, and exactly which actions it would dispatch (kind, target,
// rendered parameters, mode). `riposte playbooks test` (the backtest) runs it over recorded
// alerts so a team sees what automation would have done before enabling it.
//
// The alert is the normalized form `riposte alerts show ID --json` prints; its recorded
// validation, enrichment and confidence are used as they are, absent ones stay null. Agent
// answers do not exist here: a query step's result is {"state": "simulated"}.

#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/playbooks/autonomy_policy.h"
#include "controller/playbooks/playbook.h"

namespace riposte::controller {

// Whether the trigger holds for the alert; `why_not` says which condition did not.
bool trigger_matches(const Playbook& playbook, const nlohmann::json& alert, std::string* why_not);

// The context expressions see: alert, observables, validation (its `status` as the alert's),
// enrichment, confidence, case (id; url when run by the controller), inputs, steps (each ended
// step's output) and run (id, playbook, started_by; failed_step and failure once a step failed
// and its on_failure step runs).
// It also holds `matched`: what validation and intel singled out, for playbooks to act on instead
// of observables[0] (which may be the alert's own host address):
//   matched.ip         the outside address validation found a host talking to, else the first
//                      outside address it checked (never loopback or the host's own); null if none
//   matched.ip_why     which of the two it is
//   matched.indicator  the feed confirmation with the highest score ({type, value, feeds, score})
//   matched.host       the alert's host resolution (host_resolution.h: status, agent_id, why)
nlohmann::json run_context(const nlohmann::json& alert);

// Why a step's rendered target is the agent(s) it names, into `why`; or why no agent is proven
// (the alert's host is ambiguous or unresolved), which fails the step as the engine would.
std::optional<std::string> explain_target(const std::string& target, const nlohmann::json& alert,
                                          std::string* why);

struct SimulatedStep {
  std::string id;
  std::string kind;
  std::string outcome;  // "then -> kill", "would dispatch process.kill", ...
};

struct Simulation {
  bool triggered = false;
  std::string not_triggered_because;
  std::vector<SimulatedStep> path;
  nlohmann::json actions = nlohmann::json::array();  // {step, action, target, parameters, mode}
  std::string error;  // an expression failed where no on_failure step takes over
};

// `case_link_prefix` + the case id is what notify previews show as `case_link` (and expressions
// as case.url), as the controller would send it.
Simulation simulate_playbook(const Playbook& playbook, const nlohmann::json& alert,
                             const std::string& case_link_prefix = "");

// One alert's backtest as JSON: {alert, triggered, not_triggered_because, path: [{step, kind,
// outcome}], actions, error} (`riposte playbooks test --json`, POST .../backtest).
nlohmann::json simulation_json(const Simulation& sim, const nlohmann::json& alert_id);

// What a controller's limits make of a backtest's actions: each action step's declared mode is
// lowered by the autonomy ceilings (of the asset entries recorded on the alert at intake; none:
// `unmapped`), by the ceiling of the alert's source (submitted_by: an integration's max mode, or
// the ceiling for a person's alert), and by the rate limits, counted over the alerts replayed in
// the order given, at each alert's own timestamp. Query steps stay "query".
class ModeReplay {
 public:
  explicit ModeReplay(AutonomyPolicy policy) : policy_(std::move(policy)) {}
  // Sets `declared_mode`, `mode` (effective) and `why` on each action of `sim` (from `alert`).
  void apply(const Playbook& playbook, const nlohmann::json& alert, Simulation& sim);

 private:
  // Times (ms) of automatic actions within the windows, per host / playbook / all.
  std::map<std::string, std::deque<std::int64_t>> per_host_, per_playbook_;
  std::deque<std::int64_t> global_;
  AutonomyPolicy policy_;
};

}  // namespace riposte::controller
