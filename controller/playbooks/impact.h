#pragma once

// A playbook's impact map: for each action step, every asset it can touch (targets are decided
// per alert, so any asset in the map and any enrolled host the map does not cover), the asset's
// environment, criticality and people, and the mode the step would really run in there (its
// declared mode lowered by the autonomy ceilings). `riposte playbooks impact` prints it; the API
// answers it at GET /api/v1/playbooks/{name}/impact for the console.

#include <nlohmann/json.hpp>

#include "controller/playbooks/autonomy_policy.h"
#include "controller/playbooks/playbook.h"

namespace riposte::controller {

// `asset_view` is what GET /api/v1/assets answers (alerts/asset_map.h merged_asset_view):
// {"entries": [{name, environment, criticality, owner, stakeholders}], "hosts": [{hostname,
// assets: [names]}], "agents_not_covered": [{hostname}]}. One row per (action step, asset):
// {step, action, declared_mode, asset, hosts (space separated), environment, criticality,
// stakeholders (owner first), effective_mode, why}; the hosts no entry covers form one row with
// asset "(no asset entry)" and null environment and criticality.
nlohmann::json playbook_impact(const Playbook& playbook, const AutonomyPolicy& policy,
                               const nlohmann::json& asset_view);

}  // namespace riposte::controller
