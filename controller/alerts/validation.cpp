#include "controller/alerts/validation.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "common/utc_time.h"
#include "controller/alerts/enrichment.h"
#include "controller/observables/ip_network.h"
#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxIpsPerAlert = 8;

const AgentRecord* agent_by_id(const std::vector<AgentRecord>& agents, const std::string& id) {
  for (const auto& a : agents)
    if (a.id == id) return &a;
  return nullptr;
}

}  // namespace

std::vector<std::string> outside_ips(const AlertRecord& alert,
                                     const std::vector<AgentRecord>& agents) {
  std::set<std::string> ours(alert.host_ips.begin(), alert.host_ips.end());
  for (const auto& agent : agents)
    for (const auto& ip : agent.facts.ip_addresses)
      ours.insert(canonical_observable(observable_type::kIp, ip).value_or(ip));
  std::vector<std::string> out;
  for (const auto& o : alert.observables) {
    if (o.type != observable_type::kIp || ours.contains(o.value)) continue;
    if (!host_local_scope(o.value).empty()) continue;
    if (std::find(out.begin(), out.end(), o.value) == out.end()) out.push_back(o.value);
    if (out.size() == kMaxIpsPerAlert) break;
  }
  return out;
}

ValidationPlan plan_ip_validation(const AlertRecord& alert, const std::vector<AgentRecord>& agents,
                                  std::uint32_t lookback_days) {
  ValidationPlan plan;
  plan.ips = outside_ips(alert, agents);
  if (plan.ips.empty()) return plan;
  plan.host = resolve_alert_host(alert, agents);
  if (plan.host.status != "no host") {
    const auto host = !alert.host_name.empty() ? alert.host_name
                                               : fmt::format("{}", fmt::join(alert.host_ips, ", "));
    // No agent has the host's name or addresses at all (as opposed to several having them).
    const bool no_agent_at_all = plan.host.matched.empty() && !plan.host.shared;
    if (!plan.host.resolved() && !no_agent_at_all) {
      // Every agent is asked anyway; but which answer is the alert's own host is not known.
      plan.host_uncovered = fmt::format(
          "the alert's own host {} is not singled out by any agent ({}), so whether it connected "
          "is not known",
          host, plan.host.why);
    } else if (no_agent_at_all || !plan.host.agent->connected) {
      plan.host_uncovered = fmt::format(
          "the alert's own host {} has no online agent, so its connections could not be checked",
          host);
    }
  }
  for (const auto& agent : agents) {
    if (agent.revoked_at_ms) continue;
    if (!agent.connected) {
      plan.not_asked.push_back({{"agent_id", agent.id},
                                {"hostname", agent.facts.hostname},
                                {"why", "agent offline"},
                                {"last_seen", utc_or_null(agent.last_seen_ms)}});
      continue;
    }
    for (const auto& ip : plan.ips) {
      plan.queries.push_back({agent.id, std::string(action_kind::kNetworkConnections),
                              json{{"history_address", ip}, {"history_days", lookback_days}}});
    }
  }
  return plan;
}

ValidationOutcome decide_ip_validation(const ValidationPlan& plan,
                                       const std::vector<LiveAnswer>& answers,
                                       const std::vector<AgentRecord>& agents,
                                       std::uint32_t lookback_days) {
  json hosts = json::array();
  json checked = json::array();
  json action_ids = json::array();
  std::set<std::string> unanswered_agents;
  for (const auto& answer : answers) {
    const auto* agent = agent_by_id(agents, answer.query.agent_id);
    const std::string hostname = agent ? agent->facts.hostname : "";
    const std::string ip = answer.query.parameters.value("history_address", "");
    if (!answer.action_id.empty()) action_ids.push_back(answer.action_id);
    if (!answer.answered()) {
      unanswered_agents.insert(answer.query.agent_id);
      checked.push_back({{"agent_id", answer.query.agent_id},
                         {"hostname", hostname},
                         {"ip", ip},
                         {"answer", answer.state},
                         {"why", answer.reason}});
      continue;
    }
    json contacts = json::array();
    for (const auto& h : answer.result.value("history", json::array())) {
      contacts.push_back(
          {{"remote_address", h.value("remote_address", "")},
           {"remote_port", h.value("remote_port", 0)},
           {"protocol", h.value("protocol", "")},
           {"pid", h.value("pid", 0)},
           {"process", h.value("process", "")},
           {"first_seen", format_utc_ms(action_catalog::json_int64(h, "first_seen_unix_ms"))},
           {"last_seen", format_utc_ms(action_catalog::json_int64(h, "last_seen_unix_ms"))}});
    }
    // A connection open right now counts even if the history sampler has not seen it yet.
    for (const auto& c : answer.result.value("current", json::array())) {
      if (c.value("remote_address", "") != ip) continue;
      contacts.push_back({{"remote_address", ip},
                          {"remote_port", c.value("remote_port", 0)},
                          {"protocol", c.value("protocol", "")},
                          {"pid", c.value("pid", 0)},
                          {"process", c.value("process", "")},
                          {"state", c.value("state", "")},
                          {"open_now", true}});
    }
    checked.push_back({{"agent_id", answer.query.agent_id},
                       {"hostname", hostname},
                       {"ip", ip},
                       {"answer", contacts.empty() ? "no contact" : "contact"},
                       {"action_id", answer.action_id}});
    if (!contacts.empty()) {
      hosts.push_back({{"agent_id", answer.query.agent_id},
                       {"hostname", hostname},
                       {"ip", ip},
                       {"connections", contacts},
                       {"action_id", answer.action_id}});
    }
  }
  ValidationOutcome outcome;
  const std::size_t asked = answers.size();
  std::string reason;
  if (!hosts.empty()) {
    outcome.status = "qualified";
    std::set<std::string> names;
    for (const auto& h : hosts) names.insert(h["hostname"].get<std::string>());
    reason = fmt::format("{} host(s) connected to {} in the last {} days: {}", names.size(),
                         fmt::join(plan.ips, ", "), lookback_days, fmt::join(names, ", "));
  } else if (!plan.host_uncovered.empty()) {
    // The others not having talked to the IP says nothing about the host the alert is about.
    outcome.status = "undetermined";
    reason = plan.host_uncovered;
  } else if (unanswered_agents.empty() && plan.not_asked.empty() && asked > 0) {
    outcome.status = "not_relevant";
    reason = fmt::format("none of {} agents connected to {} in the last {} days",
                         asked / plan.ips.size(), fmt::join(plan.ips, ", "), lookback_days);
  } else if (asked == 0 && plan.not_asked.empty()) {
    outcome.status = "undetermined";
    reason = "no agent is enrolled to ask";
  } else {
    outcome.status = "undetermined";
    reason = fmt::format(
        "no answering agent connected to {}, but {} agent(s) could not be asked or did not answer",
        fmt::join(plan.ips, ", "), unanswered_agents.size() + plan.not_asked.size());
  }
  outcome.record = json{{"rule", "malicious_ip"},
                        {"outcome", outcome.status},
                        {"reason", reason},
                        {"ips", plan.ips},
                        {"lookback_days", lookback_days},
                        {"hosts", hosts},
                        {"checked", checked},
                        {"not_asked", plan.not_asked},
                        {"action_ids", action_ids},
                        {"host", plan.host.to_json()}};
  return outcome;
}

}  // namespace riposte::controller
