#pragma once

// A swarm of simulated agents for scale tests and benchmarks (riposte-swarm, scale_bench).
//
// Each simulated agent is a real enrolled identity (its own key and certificate from the
// controller's real enrollment API) holding a real mutual-TLS 1.3 session to the gateway and
// speaking the real agent protocol: Hello, heartbeats at the interval the HelloAck gives, and an
// answer to every action whose Ed25519 signature verifies and whose spec names this agent (a
// `network.status` result, the cheapest real one). A lost session is retried after the same
// jittered exponential backoff real agents use (agent/backoff.h). What is simulated is only the
// endpoint: no process, no facts collection, no journal.
//
// Connections are spread over several loopback source addresses (127.0.0.0/8) so that the
// ephemeral port range of one address does not bound the swarm, and so that the gateway's
// per-address limits see something like a fleet rather than one host.
//
// Identities are cached in `identities_dir` (identities.jsonl, 0600): a later run against the same
// controller (same CA) reuses them and enrolls only what is missing.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/address.h"
#include "common/result.h"

namespace riposte::swarm {

struct SwarmOptions {
  HostPort api;              // the controller's API, for enrollment
  HostPort gateway;          // the agent gateway (an IP address and port)
  std::string ca_pin;        // sha256:HEX of the controller's CA (as `riposte-agent enroll`)
  std::string enroll_token;  // needed only when identities must be enrolled
  std::filesystem::path identities_dir;
  int agents = 100;
  int source_addresses = 64;     // 127.0.1.1, 127.0.1.2, ... (wraps into 127.0.2.x)
  int threads = 1;               // io threads; each owns a share of the agents
  int max_handshakes = 256;      // connection attempts in flight at once, whole swarm
  int enroll_connections = 4;    // keep-alive HTTPS connections used to enroll in bulk
  // As riposte-agent: offer the gateway's last session ticket when reconnecting (a resumed
  // handshake; tls.h SessionSlot). Off: every handshake is a full one.
  bool resume_sessions = true;
  std::chrono::milliseconds reconnect_initial{1000};  // as riposte-agent's defaults
  std::chrono::milliseconds reconnect_max{60000};
  // Called with a line of progress on long phases (enrollment, connecting); may be empty.
  std::function<void(const std::string&)> progress;
};

// Monotonic counts since start(), read without locks.
struct SwarmCounters {
  std::atomic<int> sessions{0};           // sessions open now (HelloAck accepted)
  std::atomic<long> accepted{0};          // HelloAcks accepted, all time
  std::atomic<long> connect_failures{0};  // TCP connect failed or timed out
  std::atomic<long> handshake_failures{0};
  std::atomic<long> refused{0};        // HelloAck accepted=false
  std::atomic<long> sessions_lost{0};  // open sessions that ended
  std::atomic<long> heartbeats{0};     // HeartbeatAcks received
  std::atomic<long> actions{0};        // ActionRequests received
  std::atomic<long> bad_actions{0};    // signature or target agent wrong: not answered
  std::atomic<long> results_acked{0};  // ActionResultAcks received (result stored)
  std::atomic<long> resumed{0};        // handshakes that resumed a session from a ticket
};

struct Snapshot {
  int sessions = 0;
  long accepted = 0, connect_failures = 0, handshake_failures = 0, refused = 0,
       sessions_lost = 0, heartbeats = 0, actions = 0, bad_actions = 0, results_acked = 0,
       resumed = 0;
};

class Swarm {
 public:
  // Loads cached identities and enrolls the missing ones. Errors name what failed (the
  // controller's answer to enrollment, an unreadable cache).
  static Result<std::unique_ptr<Swarm>> prepare(const SwarmOptions& options);
  ~Swarm();

  // Connects every agent (at most max_handshakes at once) and keeps them connected.
  void start();
  // Closes every open session at once from the agents' side; each agent reconnects after its
  // backoff, as after a network outage.
  void drop_all();
  // Closes everything and joins the threads.
  void stop();

  Snapshot snapshot() const;
  const std::vector<std::string>& agent_ids() const;
  // When each agent's latest ActionResultAck arrived (steady clock), per agent in agent_ids()
  // order; time_point{} when none arrived since clear_result_times().
  std::vector<std::chrono::steady_clock::time_point> result_times() const;
  void clear_result_times();

  struct Impl;

 private:
  explicit Swarm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Raises this process's open-file limit as far as it may (soft to hard; as root, the hard limit
// too, up to fs.nr_open). Returns the soft limit now in force.
std::uint64_t raise_file_limit(std::uint64_t wanted);

}  // namespace riposte::swarm
