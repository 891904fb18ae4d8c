#pragma once

// Which enrolled agent an alert is about, by evidence that singles that agent out (DESIGN.md,
// "Act only on a proven target"):
//   - its hostname or FQDN ("web-1" and "web-1.corp.example" are one name), held by one agent;
//   - an address exactly one agent holds.
// Evidence that several agents share proves nothing and is set aside, saying why: an address two
// agents report (container and VM bridges, NAT, anycast), a hostname two agents report, and
// addresses every host has (loopback, link-local; ip_network.h host_local_scope). When the
// evidence left names one agent the alert is "resolved"; two or more (a hostname naming one and an
// address another) is "ambiguous"; none is "unresolved"; an alert that names no host is "no host".
//
// Only "resolved" lets anything act on "the alert's host". The record (`to_json`) is kept on the
// alert's validation and enrichment and on every run step that targets the host, so a person can
// see which evidence matched which agent.
//
// An address is judged at the alert's time: the agents that held it then, by the store's address
// history (AgentRecord::address_history, kept 30 days), within kAddressClockToleranceMs either
// side. An agent that holds it now but took it after the alert is not its holder; an agent that
// held it then and gave it up since still is; both together make the address shared. Without a
// time (0) or without history for an agent, the addresses it reports now count.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/store/store.h"

namespace riposte::controller {

struct HostEvidence {
  std::string agent_id;
  std::string hostname;
  std::string by;     // "hostname", "unique address", "agent id"
  std::string value;  // the name or address that matched
};

struct HostResolution {
  std::string status;                // resolved | ambiguous | unresolved | no host
  std::optional<AgentRecord> agent;  // set when resolved
  std::vector<HostEvidence> matched;
  // Evidence set aside: [{value, why}] ("held by 3 agents: a, b, c", "loopback: every host has
  // it").
  nlohmann::json ignored = nlohmann::json::array();
  // Some evidence was set aside because several agents hold it (as opposed to none): the host
  // may well have an agent, just not one this evidence can single out.
  bool shared = false;
  std::string why;  // one sentence for people

  bool resolved() const { return agent.has_value(); }
  // {status, agent_id, hostname, matched: [{agent_id, hostname, by, value}], ignored, why}
  nlohmann::json to_json() const;
};

// Clocks disagree and alerts are stamped late: how far from an address span's ends an alert may
// be and still count as inside it.
inline constexpr std::int64_t kAddressClockToleranceMs = 5 * 60 * 1000;

// The alert's host among `agents` (revoked ones never count), from its host name and addresses
// at `at_ms` (the alert's time, Unix ms; 0: now, by the addresses agents report now).
HostResolution resolve_alert_host(const std::string& host_name,
                                  const std::vector<std::string>& host_ips,
                                  const std::vector<AgentRecord>& agents, std::int64_t at_ms = 0);
HostResolution resolve_alert_host(const AlertRecord& alert, const std::vector<AgentRecord>& agents);

// A playbook step's explicit target, an agent id or a hostname: resolved only when exactly one
// agent has that id, or else that hostname; several agents with one hostname are "ambiguous".
HostResolution resolve_named_host(const std::string& name, const std::vector<AgentRecord>& agents);

// Host names are compared with same_host_name (observables/observable.h).

}  // namespace riposte::controller
