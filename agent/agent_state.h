#pragma once

// What an enrolled agent keeps in its state directory: its private key (mode 0600, generated here,
// never sent anywhere), its certificate, the pinned CA, the controller's action-signing public key,
// and where to connect. agent.json is written last: its presence means enrollment completed.

#include <filesystem>
#include <string>

#include "common/address.h"
#include "common/result.h"

namespace riposte::agent {

struct AgentState {
  std::filesystem::path dir;
  std::string agent_id;
  HostPort gateway;
  std::string controller_api;  // host:port enrolled against
  std::string ca_fingerprint;
  std::string key_pem;
  std::string certificate_pem;
  std::string ca_certificate_pem;
  std::string action_public_key_pem;
};

inline constexpr const char* kAgentKeyFile = "agent.key";
inline constexpr const char* kAgentCertFile = "agent.pem";
inline constexpr const char* kCaCertFile = "ca.pem";
inline constexpr const char* kActionKeyFile = "action.pub";
inline constexpr const char* kStateFile = "agent.json";

bool is_enrolled(const std::filesystem::path& dir);
Result<AgentState> load_agent_state(const std::filesystem::path& dir);
Status save_agent_state(const AgentState& state);

}  // namespace riposte::agent
