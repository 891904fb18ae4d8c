#pragma once

// A deliberately misbehaving client for the agent gateway: it completes (or not) a TLS handshake
// with a given identity, optionally says Hello, then sends whatever bytes a test wants and reports
// how the controller ended the connection.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace riposte::testing {

struct RawOutcome {
  bool handshake_ok = false;
  bool hello_accepted = false;
  bool closed_by_peer = false;  // the controller closed the connection on us
  std::string detail;
  std::vector<std::string> received;  // serialized Envelopes the controller sent after HelloAck
};

// `state_dir` holds agent.pem / agent.key / ca.pem; empty means plain TCP, no TLS at all.
RawOutcome send_to_gateway(const std::string& host, int port,
                           const std::filesystem::path& state_dir, bool say_hello_first,
                           const std::vector<std::uint8_t>& bytes,
                           std::chrono::seconds timeout = std::chrono::seconds(15),
                           bool read_replies = true);

}  // namespace riposte::testing
