#pragma once

// The endpoint side of enrollment: make a key pair here, send only a CSR and the token to the
// controller over TLS pinned to the CA fingerprint the operator gave, and store what comes back.

#include <filesystem>
#include <string>

#include "agent/agent_state.h"
#include "platform/system_facts.h"

namespace riposte::agent {

struct EnrollOptions {
  HostPort controller;  // the controller's API address
  std::string token;
  std::string ca_pin;  // sha256:HEX of the controller's CA certificate
  std::filesystem::path state_dir;
  std::string gateway_override;  // HOST:PORT, if agents must reach the gateway by another address
  bool force = false;            // re-enroll even if the state directory holds an agent
};

Result<AgentState> enroll(const EnrollOptions& options, platform::SystemFactsSource& facts);

}  // namespace riposte::agent
