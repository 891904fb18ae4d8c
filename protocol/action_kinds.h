#pragma once

// The stable names of response actions, shared by the controller (which issues them) and the
// agent (which executes them). Parameters and results are the messages in actions.proto.

#include <array>
#include <string_view>

namespace riposte::action_kind {

inline constexpr std::string_view kProcessList = "process.list";
inline constexpr std::string_view kProcessTree = "process.tree";
inline constexpr std::string_view kProcessKill = "process.kill";
inline constexpr std::string_view kProcessSuspend = "process.suspend";
inline constexpr std::string_view kProcessResume = "process.resume";
inline constexpr std::string_view kMemoryCapture = "memory.capture";
inline constexpr std::string_view kNetworkQuarantine = "network.quarantine";
inline constexpr std::string_view kNetworkRelease = "network.release";
inline constexpr std::string_view kNetworkStatus = "network.status";
inline constexpr std::string_view kNetworkConnections = "network.connections";
inline constexpr std::string_view kFileHash = "file.hash";
inline constexpr std::string_view kFileCollect = "file.collect";
inline constexpr std::string_view kFileQuarantine = "file.quarantine";
inline constexpr std::string_view kFileRestore = "file.restore";
inline constexpr std::string_view kYaraScan = "yara.scan";
inline constexpr std::string_view kHostLogins = "host.logins";
inline constexpr std::string_view kHostFacts = "host.facts";

inline constexpr std::array kAll = {
    kProcessList,   kProcessTree,       kProcessKill,    kProcessSuspend, kProcessResume,
    kMemoryCapture, kNetworkQuarantine, kNetworkRelease, kNetworkStatus,  kNetworkConnections,
    kFileHash,      kFileCollect,       kFileQuarantine, kFileRestore,    kYaraScan,
    kHostLogins,    kHostFacts};

}  // namespace riposte::action_kind
