#pragma once

// How freely the controller may act on an asset, whatever a playbook asks: a ceiling on the
// autonomy mode (simulate < approve < auto) per asset environment and criticality. A step's
// effective mode is the lower of what it declares and the ceiling of the asset it would touch,
// and the reason is recorded, so "mission-critical production never above approve" holds even
// for a playbook written with `mode: auto`.
//
// controller.yaml:
//   autonomy:
//     default: auto          # assets in the map that no rule below matches
//     unmapped: approve      # hosts with no asset entry: unknown, so not automatic
//     ceilings:              # every matching rule applies; the most restrictive wins
//       - {environment: production, criticality: mission-critical, max: approve}
//       - {environment: production, max: approve}
//     sources:
//       operators: approve   # alerts a person submitted: at most approve (or simulate)
//                            # (an integration's own max mode caps its alerts' runs)
//     rate_limits:           # automatic actions (auto mode, no approval) within a window;
//                            # beyond a limit the step waits for a person's approval instead
//       per_host: {actions: 5, window: 10m}
//       per_playbook: {actions: 20, window: 10m}
//       global: {actions: 30, window: 1m}
//       webhook: {posts: 10, window: 1m}   # per webhook URL; more are sent as one digest
//
// A step's effective mode is the lowest of what it declares, the asset ceiling, the run's own
// limit (an analyst's simulate-only run), the source's ceiling, and the rate limits.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/playbooks/playbook.h"

namespace riposte::controller {

struct EffectiveMode {
  AutonomyMode mode = AutonomyMode::simulate;
  std::string why;
};

struct CeilingRule {
  std::string environment;  // empty: any
  std::string criticality;  // empty: any
  AutonomyMode max = AutonomyMode::approve;
};

// At most `count` in any `window_ms`; a count of 0 means none at all.
struct RateLimit {
  int count = 0;
  std::int64_t window_ms = 0;
};

// The defaults say: one host is touched automatically a few times in a burst and then a person
// looks (5 per 10 minutes covers the shipped suspicious-process playbook's suspend, capture,
// collect and a script collect); one playbook gone wrong, or an alert storm, cannot act on more
// than a handful of hosts before people are asked (20 per 10 minutes, 30 per minute in all);
// a chat channel gets at most 10 posts a minute per webhook, the rest in one digest.
struct AutomationLimits {
  RateLimit per_host{5, 10 * 60'000};
  RateLimit per_playbook{20, 10 * 60'000};
  RateLimit global{30, 60'000};
  RateLimit webhook{10, 60'000};
};

struct AutonomyPolicy {
  AutonomyMode default_ceiling = AutonomyMode::automatic;
  AutonomyMode unmapped = AutonomyMode::approve;
  std::vector<CeilingRule> ceilings{{"", "mission-critical", AutonomyMode::approve}};
  // Alerts a person submitted (any role but `ingest`) start runs at most in this mode: approve,
  // or simulate; never auto, so an analyst's alert cannot act on a host with nobody's decision.
  AutonomyMode operator_alerts = AutonomyMode::approve;
  AutomationLimits rate_limits;
};

// What an alert's source allows: the integration's max mode (role `ingest`), or
// `operator_alerts` for a person (and for alerts stored before submitters were recorded).
EffectiveMode source_ceiling(const AutonomyPolicy& policy, const std::string& submitted_by,
                             const std::string& submitter_role, const std::string& max_mode);
// `mode` lowered to `ceiling` when above it, with `why` naming the limit that applied.
EffectiveMode lower_to(const EffectiveMode& mode, const EffectiveMode& ceiling);

// What is known of the asset a step would touch; nullopt for a host with no asset entry.
struct AssetClass {
  std::string environment;
  std::string criticality;
};

EffectiveMode effective_mode(AutonomyMode declared, const AutonomyPolicy& policy,
                             const std::optional<AssetClass>& asset);

nlohmann::json autonomy_policy_json(const AutonomyPolicy& policy);
// The same JSON back (what GET /api/v1/autonomy returns); errors name the field.
Result<AutonomyPolicy> autonomy_policy_from_json(const nlohmann::json& j);

}  // namespace riposte::controller
