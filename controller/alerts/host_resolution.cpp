#include "controller/alerts/host_resolution.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "controller/observables/ip_network.h"
#include "controller/observables/observable.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

std::string short_name(const std::string& lowered) { return lowered.substr(0, lowered.find('.')); }

std::string agents_named(const std::vector<const AgentRecord*>& agents) {
  std::vector<std::string> names;
  for (const auto* a : agents) names.push_back(fmt::format("{} ({})", a->facts.hostname, a->id));
  return fmt::format("{}", fmt::join(names, ", "));
}

// Decides from the evidence gathered: one agent, several, or none.
void conclude(HostResolution& r, const std::vector<AgentRecord>& agents, const std::string& what) {
  std::set<std::string> ids;
  for (const auto& m : r.matched) ids.insert(m.agent_id);
  if (ids.size() == 1) {
    for (const auto& a : agents)
      if (a.id == *ids.begin()) r.agent = a;
    r.status = "resolved";
    std::vector<std::string> by;
    for (const auto& m : r.matched) by.push_back(fmt::format("{} {}", m.by, m.value));
    r.why = fmt::format("{} is {} ({}), matched by {}", what, r.agent->facts.hostname, r.agent->id,
                        fmt::join(by, " and "));
  } else if (ids.size() > 1) {
    r.status = "ambiguous";
    std::vector<std::string> parts;
    for (const auto& m : r.matched)
      parts.push_back(fmt::format("{} {} is {} ({})", m.by, m.value, m.hostname, m.agent_id));
    r.why = fmt::format("{} is ambiguous: {}; nothing acts on it until a person names the host",
                        what, fmt::join(parts, "; "));
  } else {
    r.status = "unresolved";
    r.why = r.ignored.empty()
                ? fmt::format("no enrolled agent matches {}", what)
                : fmt::format("no evidence singles out one agent for {} (see ignored)", what);
  }
}

}  // namespace

bool same_host_name(std::string_view a, std::string_view b) {
  const auto x = ascii_lower(a), y = ascii_lower(b);
  if (x.empty() || y.empty()) return false;
  return x == y || short_name(x) == y || short_name(y) == x;
}

json HostResolution::to_json() const {
  json matches = json::array();
  for (const auto& m : matched)
    matches.push_back(
        {{"agent_id", m.agent_id}, {"hostname", m.hostname}, {"by", m.by}, {"value", m.value}});
  return json{{"status", status},
              {"agent_id", agent ? json(agent->id) : json()},
              {"hostname", agent ? json(agent->facts.hostname) : json()},
              {"matched", matches},
              {"ignored", ignored},
              {"why", why}};
}

HostResolution resolve_alert_host(const std::string& host_name,
                                  const std::vector<std::string>& host_ips,
                                  const std::vector<AgentRecord>& agents) {
  HostResolution r;
  if (host_name.empty() && host_ips.empty()) {
    r.status = "no host";
    r.why = "the alert names no host";
    return r;
  }
  std::vector<const AgentRecord*> live;
  for (const auto& a : agents)
    if (!a.revoked_at_ms) live.push_back(&a);

  if (!host_name.empty()) {
    std::vector<const AgentRecord*> named;
    for (const auto* a : live)
      if (same_host_name(host_name, a->facts.hostname)) named.push_back(a);
    if (named.size() == 1) {
      r.matched.push_back({named[0]->id, named[0]->facts.hostname, "hostname", host_name});
    } else if (named.size() > 1) {
      r.shared = true;
      r.ignored.push_back({{"value", host_name},
                           {"why", fmt::format("hostname held by {} agents: {}", named.size(),
                                               agents_named(named))}});
    }
  }
  std::set<std::string> seen;
  for (const auto& ip : host_ips) {
    if (!seen.insert(ip).second) continue;
    if (const auto scope = host_local_scope(ip); !scope.empty()) {
      r.ignored.push_back(
          {{"value", ip}, {"why", fmt::format("{} address: it names no one host", scope)}});
      continue;
    }
    std::vector<const AgentRecord*> holders;
    for (const auto* a : live) {
      // Compared in canonical form (the gateway stores them so; older rows may not be).
      const auto& ips = a->facts.ip_addresses;
      if (std::any_of(ips.begin(), ips.end(), [&](const std::string& held) {
            return held == ip || canonical_observable(observable_type::kIp, held) == ip;
          }))
        holders.push_back(a);
    }
    if (holders.size() == 1) {
      r.matched.push_back({holders[0]->id, holders[0]->facts.hostname, "unique address", ip});
    } else if (holders.size() > 1) {
      r.shared = true;
      r.ignored.push_back(
          {{"value", ip},
           {"why", fmt::format("address held by {} agents (a bridge, NAT or shared address): {}",
                               holders.size(), agents_named(holders))}});
    } else {
      r.ignored.push_back({{"value", ip}, {"why", "no enrolled agent holds this address"}});
    }
  }
  std::vector<std::string> described;
  if (!host_name.empty()) described.push_back(host_name);
  described.insert(described.end(), host_ips.begin(), host_ips.end());
  conclude(r, agents, fmt::format("the alert's host {}", fmt::join(described, " / ")));
  return r;
}

HostResolution resolve_alert_host(const AlertRecord& alert,
                                  const std::vector<AgentRecord>& agents) {
  return resolve_alert_host(alert.host_name, alert.host_ips, agents);
}

HostResolution resolve_named_host(const std::string& name, const std::vector<AgentRecord>& agents) {
  HostResolution r;
  for (const auto& a : agents) {
    if (!a.revoked_at_ms && a.id == name) {
      r.matched.push_back({a.id, a.facts.hostname, "agent id", name});
      conclude(r, agents, fmt::format("target '{}'", name));
      return r;
    }
  }
  for (const auto& a : agents)
    if (!a.revoked_at_ms && same_host_name(name, a.facts.hostname))
      r.matched.push_back({a.id, a.facts.hostname, "hostname", name});
  conclude(r, agents, fmt::format("target '{}'", name));
  return r;
}

}  // namespace riposte::controller
