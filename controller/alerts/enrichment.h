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
#include "controller/dispatch/live_queries.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct EnrichmentPlan {
  std::vector<AgentRecord> hosts;  // impacted hosts with an agent
  std::vector<LiveQuery> queries;
  nlohmann::json missing = nlohmann::json::array();
};

// Whether `agent` is the alert's host: its name (or short name) is the alert's host name, or it
// holds one of the alert's host addresses.
bool is_alert_host(const AlertRecord& alert, const AgentRecord& agent);

// Impacted hosts: the alert's own host and those validation found talking to the IP.
EnrichmentPlan plan_enrichment(const AlertRecord& alert, const std::vector<AgentRecord>& agents);

// The second round, once the first found the alert's process: the hash of its executable, and of
// its script when it is an interpreter running one (process.script, exe_sha256 / script_sha256).
std::vector<LiveQuery> plan_executable_hash(const AlertRecord& alert,
                                            const std::vector<LiveAnswer>& first_round);

nlohmann::json build_enrichment(const AlertRecord& alert, const EnrichmentPlan& plan,
                                const std::vector<LiveAnswer>& answers, const AssetMap& assets,
                                const std::vector<AlertRecord>& history);

}  // namespace riposte::controller
