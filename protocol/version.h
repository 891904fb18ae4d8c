#pragma once

#include <cstdint>
#include <string_view>

namespace riposte {

// Major version of agent_channel.proto. Bump only for incompatible changes.
inline constexpr std::uint32_t kProtocolVersion = 1;
// Oldest agent protocol the controller still serves.
inline constexpr std::uint32_t kMinProtocolVersion = 1;

inline constexpr std::string_view kRiposteVersion = RIPOSTE_VERSION;

// Agent identities are carried in the client certificate as a URI SAN with this prefix.
inline constexpr std::string_view kAgentUriPrefix = "urn:riposte:agent:";

}  // namespace riposte
