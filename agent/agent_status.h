#pragma once

// `riposte-agent status`: what an operator on the endpoint needs in one look — enrolled (as which
// agent, against which controller), running, connected, quarantined, last error — from the state
// directory (agent.json, status.json, quarantine.json), so it works whether or not the agent runs
// and needs no connection; and, given the firewall, from the kernel: a quarantine is reported as
// in force only while the kernel holds it, not because it was once asked for.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "platform/firewall.h"

namespace riposte::agent {

struct AgentHealth {
  nlohmann::json report;  // the --json form
  bool healthy = false;   // enrolled, running and connected
};

// `firewall`: read the kernel's quarantine table too (nullptr: the state files only). An intended
// quarantine the kernel does not enforce makes the agent unhealthy.
AgentHealth agent_health(const std::filesystem::path& state_dir,
                         platform::Firewall* firewall = nullptr);
std::string render_agent_health(const nlohmann::json& report);

}  // namespace riposte::agent
