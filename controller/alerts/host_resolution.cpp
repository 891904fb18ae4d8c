#include "controller/alerts/host_resolution.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/utc_time.h"
#include "controller/observables/ip_network.h"
#include "controller/observables/observable.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

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

namespace {

enum class Held { no, yes, after };

// Whether `a` held `ip` at `at_ms`: by its address history when it has one for `ip` (and a time is
// given), else by the addresses it reports now. `after`: it holds it now, but only since after
// the alert (give or take kAddressClockToleranceMs).
Held held_at(const AgentRecord& a, const std::string& ip, std::int64_t at_ms) {
  // Compared in canonical form (the gateway stores them so; older rows may not be).
  const auto same = [&](const std::string& held) {
    return held == ip || canonical_observable(observable_type::kIp, held) == ip;
  };
  const auto& now = a.facts.ip_addresses;
  const bool holds_now = std::any_of(now.begin(), now.end(), same);
  if (at_ms <= 0) return holds_now ? Held::yes : Held::no;
  bool known = false;
  for (const auto& span : a.address_history) {
    if (!same(span.ip)) continue;
    known = true;
    const bool started = span.since_ms - kAddressClockToleranceMs <= at_ms;
    const bool not_ended = span.until_ms == 0 || at_ms <= span.until_ms + kAddressClockToleranceMs;
    if (started && not_ended) return Held::yes;
  }
  if (!known) return holds_now ? Held::yes : Held::no;
  return holds_now ? Held::after : Held::no;
}

}  // namespace

HostResolution resolve_alert_host(const std::string& host_name,
                                  const std::vector<std::string>& host_ips,
                                  const std::vector<AgentRecord>& agents, std::int64_t at_ms) {
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
    std::vector<std::string> came_later;  // agents that hold it now, taken after the alert
    for (const auto* a : live) {
      switch (held_at(*a, ip, at_ms)) {
        case Held::yes:
          holders.push_back(a);
          break;
        case Held::after:
          came_later.push_back(a->facts.hostname);
          break;
        case Held::no:
          break;
      }
    }
    if (!came_later.empty())
      r.ignored.push_back(
          {{"value", ip},
           {"why", fmt::format("{} holds it now but took it after the alert's time ({})",
                               fmt::join(came_later, ", "), format_utc_ms(at_ms))}});
    if (holders.size() == 1) {
      r.matched.push_back({holders[0]->id, holders[0]->facts.hostname, "unique address", ip});
    } else if (holders.size() > 1) {
      r.shared = true;
      r.ignored.push_back(
          {{"value", ip},
           {"why", fmt::format("address held by {} agents at the alert's time (a bridge, NAT or "
                               "shared address, or it moved): {}",
                               holders.size(), agents_named(holders))}});
    } else if (came_later.empty()) {
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
  return resolve_alert_host(alert.host_name, alert.host_ips, agents, alert.timestamp_ms);
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
