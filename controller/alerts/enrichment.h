#pragma once

// Enrichment of an alert that validation did not rule out: the impacted assets (application,
// criticality, owner, stakeholders), the people logged in, the process (start, parent, children,
// executable hash), logins before/during/after the alert, the host's network connections, and
// history (earlier alerts and cases for the same host or observables). What could not be gathered
// (agent offline, query failed) is listed under "missing" with why, never silently dropped.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/alerts/asset_map.h"
#include "controller/alerts/host_resolution.h"
#include "controller/dispatch/live_queries.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct EnrichmentPlan {
  HostResolution host;             // the alert's own host, and the evidence that singled it out
  std::vector<AgentRecord> hosts;  // impacted hosts with an agent
  std::vector<LiveQuery> queries;
  nlohmann::json missing = nlohmann::json::array();
};

// Impacted hosts: the alert's own host when the evidence singles it out (host_resolution.h), and
// those validation found talking to the IP. The alert's process is looked up on its own host
// only, never on a host that merely shares a name or an address with it.
EnrichmentPlan plan_enrichment(const AlertRecord& alert, const std::vector<AgentRecord>& agents);

// The second round, once the first found the alert's process: the hash of its executable, and of
// its script when it is an interpreter running one (process.script, exe_sha256 / script_sha256).
std::vector<LiveQuery> plan_executable_hash(const AlertRecord& alert,
                                            const std::vector<LiveAnswer>& first_round);

nlohmann::json build_enrichment(const AlertRecord& alert, const EnrichmentPlan& plan,
                                const std::vector<LiveAnswer>& answers, const AssetMap& assets,
                                const std::vector<AlertRecord>& history);

}  // namespace riposte::controller
