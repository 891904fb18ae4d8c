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

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/playbooks/playbook.h"

namespace riposte::controller {

struct CeilingRule {
  std::string environment;  // empty: any
  std::string criticality;  // empty: any
  AutonomyMode max = AutonomyMode::approve;
};

struct AutonomyPolicy {
  AutonomyMode default_ceiling = AutonomyMode::automatic;
  AutonomyMode unmapped = AutonomyMode::approve;
  std::vector<CeilingRule> ceilings{{"", "mission-critical", AutonomyMode::approve}};
};

// What is known of the asset a step would touch; nullopt for a host with no asset entry.
struct AssetClass {
  std::string environment;
  std::string criticality;
};

struct EffectiveMode {
  AutonomyMode mode = AutonomyMode::simulate;
  std::string why;
};

EffectiveMode effective_mode(AutonomyMode declared, const AutonomyPolicy& policy,
                             const std::optional<AssetClass>& asset);

nlohmann::json autonomy_policy_json(const AutonomyPolicy& policy);
// The same JSON back (what GET /api/v1/autonomy returns); errors name the field.
Result<AutonomyPolicy> autonomy_policy_from_json(const nlohmann::json& j);

}  // namespace riposte::controller
