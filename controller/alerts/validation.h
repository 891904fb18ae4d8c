#pragma once

// Validation: is an alert relevant to us before anything else happens? The built-in rule,
// "malicious_ip", covers the case that matters most in practice: for an alert naming an outside
// IP address, ask every agent whether its host talked to that address in the last N days (the
// agent's connection history), and call the alert qualified only if one did — recording which
// hosts, processes and when. Agents that could not be asked are listed; if none of those that
// answered had contact but some could not answer, the outcome is "undetermined", not "not
// relevant".

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/alerts/host_resolution.h"
#include "controller/dispatch/live_queries.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct ValidationPlan {
  std::vector<std::string> ips;  // the outside addresses to check; empty: rule does not apply
  std::vector<LiveQuery> queries;
  nlohmann::json not_asked = nlohmann::json::array();  // agents offline, with why
  // Why the alert's own host could not be asked (no agent, or its agent offline); "" when an
  // online agent covers it or the alert names no host. Such an alert is never `not_relevant`:
  // the one host that matters was not seen.
  std::string host_uncovered;
  HostResolution host;  // which agent the alert's host is, and by what evidence
};

// IP observables that can be an outside address: not the alert's own host's, not one of our
// agents', and not one every host has (loopback, link-local, unspecified, multicast, broadcast:
// "connected to 127.0.0.1" says nothing about the outside world).
std::vector<std::string> outside_ips(const AlertRecord& alert,
                                     const std::vector<AgentRecord>& agents);

ValidationPlan plan_ip_validation(const AlertRecord& alert, const std::vector<AgentRecord>& agents,
                                  std::uint32_t lookback_days);

struct ValidationOutcome {
  std::string status;     // qualified, not_relevant, undetermined
  nlohmann::json record;  // stored as the alert's "validation"
};

ValidationOutcome decide_ip_validation(const ValidationPlan& plan,
                                       const std::vector<LiveAnswer>& answers,
                                       const std::vector<AgentRecord>& agents,
                                       std::uint32_t lookback_days);

}  // namespace riposte::controller
