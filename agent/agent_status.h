#pragma once

// `riposte-agent status`: what an operator on the endpoint needs in one look — enrolled (as which
// agent, against which controller), running, connected, quarantined, last error — from the state
// directory alone (agent.json, status.json, quarantine.json), so it works whether or not the
// agent runs and needs no connection.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace riposte::agent {

struct AgentHealth {
  nlohmann::json report;  // the --json form
  bool healthy = false;   // enrolled, running and connected
};

AgentHealth agent_health(const std::filesystem::path& state_dir);
std::string render_agent_health(const nlohmann::json& report);

}  // namespace riposte::agent
