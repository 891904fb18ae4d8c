#include "agent/agent_state.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/secure_file.h"

namespace riposte::agent {

namespace fs = std::filesystem;

bool is_enrolled(const fs::path& dir) { return fs::exists(dir / kStateFile); }

Result<AgentState> load_agent_state(const fs::path& dir) {
  if (!is_enrolled(dir)) {
    return Error{
        fmt::format("{} holds no enrolled agent; run `riposte-agent enroll` first", dir.string())};
  }
  AgentState state;
  state.dir = dir;
  auto meta_text = read_file(dir / kStateFile);
  if (!meta_text) return meta_text.error();
  auto meta = nlohmann::json::parse(*meta_text, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) {
    return Error{fmt::format("{} is not valid JSON", (dir / kStateFile).string())};
  }
  try {
    state.agent_id = meta.at("agent_id").get<std::string>();
    state.controller_api = meta.at("controller_api").get<std::string>();
    state.ca_fingerprint = meta.at("ca_fingerprint").get<std::string>();
    auto gateway = parse_host_port(meta.at("gateway").get<std::string>());
    if (!gateway)
      return Error{
          fmt::format("{}: gateway: {}", (dir / kStateFile).string(), gateway.error().message)};
    state.gateway = *gateway;
  } catch (const nlohmann::json::exception& e) {
    return Error{fmt::format("{}: {}", (dir / kStateFile).string(), e.what())};
  }
  for (auto [file, target] : {std::pair{kAgentKeyFile, &state.key_pem},
                              {kAgentCertFile, &state.certificate_pem},
                              {kCaCertFile, &state.ca_certificate_pem},
                              {kActionKeyFile, &state.action_public_key_pem}}) {
    auto text = read_file(dir / file);
    if (!text) return text.error();
    *target = std::move(*text);
  }
  return state;
}

Status save_agent_state(const AgentState& state) {
  if (auto s = ensure_private_directory(state.dir); !s) return s;
  if (auto s = write_file_atomic(state.dir / kAgentKeyFile, state.key_pem, 0600); !s) return s;
  if (auto s = write_file_atomic(state.dir / kAgentCertFile, state.certificate_pem, 0644); !s)
    return s;
  if (auto s = write_file_atomic(state.dir / kCaCertFile, state.ca_certificate_pem, 0644); !s)
    return s;
  if (auto s = write_file_atomic(state.dir / kActionKeyFile, state.action_public_key_pem, 0644); !s)
    return s;
  const nlohmann::json meta{{"agent_id", state.agent_id},
                            {"gateway", state.gateway.to_string()},
                            {"controller_api", state.controller_api},
                            {"ca_fingerprint", state.ca_fingerprint}};
  return write_file_atomic(state.dir / kStateFile, meta.dump(2) + "\n", 0644);
}

}  // namespace riposte::agent
