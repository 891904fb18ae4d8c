#pragma once

// The agent's side of the channel: keeps one mutual-TLS session to the controller's gateway,
// re-connecting with exponential backoff and jitter after any failure, and sends Hello, Inventory
// and heartbeats. Actions, their acknowledgements and evidence acks go to the ActionService.
// Once a session is established one writer coroutine drains an outbox, so heartbeats, results and
// evidence chunks never interleave on the stream. Single-threaded: everything runs on the
// io_context given.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/agent_state.h"
#include "agent/backoff.h"
#include "platform/system_facts.h"
#include "protocol/envelope_channel.h"
#include "protocol/tls.h"

namespace riposte::agent {

struct LinkOptions {
  std::chrono::milliseconds reconnect_initial{1000};
  std::chrono::milliseconds reconnect_max{60'000};
  std::chrono::seconds connect_timeout{10};
  std::uint32_t max_frame_size = kDefaultMaxFrameSize;
  // The controller states the heartbeat interval in HelloAck; this overrides it when set (tests).
  std::optional<std::chrono::seconds> heartbeat_interval;
  // How often the inventory is re-sent on a long-lived session.
  std::chrono::seconds inventory_interval{3600};
  // Gateways of other controllers sharing the store: when an attempt cannot reach the gateway in
  // use (no connection, no TLS, no answer to Hello), the next attempt tries the next one, round
  // the list. A session that was established and ended is retried where it was.
  std::vector<HostPort> fallback_gateways;
};

class ActionService;

class ControllerLink {
 public:
  ControllerLink(boost::asio::io_context& io, AgentState state, LinkOptions options,
                 platform::SystemFactsSource& facts);

  Status start();
  // Sends Goodbye on the live session (if any) and stops re-connecting.
  void stop();

  // Set before start(): where actions go, and the kinds advertised in Hello and Inventory.
  void set_action_service(ActionService* service, std::vector<std::string> capabilities) {
    actions_ = service;
    capabilities_ = std::move(capabilities);
  }

  // Called on the io thread when a session is established (true, controller address) and when one
  // ends or an attempt fails (false, why). The agent mirrors it into its status file.
  using StateObserver = std::function<void(bool connected, const std::string& detail)>;
  void set_state_observer(StateObserver observer) { observer_ = std::move(observer); }

  // Queues a message on the established session; false when there is none. io thread only.
  bool send(proto::Envelope envelope);

  // Every address a controller may be reached at, for a quarantine's allow list: each address
  // (A and AAAA alike) a gateway name resolved to for the last session the controller accepted
  // on it, and that session's peer. Recorded only once the controller answered Hello with its
  // certificate checked: a name pointed elsewhere adds nothing. Thread-safe.
  std::vector<std::string> controller_addresses() const;
  // From any thread but the io thread: sends a heartbeat on the live session and waits up to
  // `timeout` for its answer. False when no session is up or no answer came in time.
  bool round_trip(std::chrono::milliseconds timeout);

  // Reports an event to the controller: sent now when a session is up, else held (up to 64,
  // oldest dropped first) and sent once the next session is established. Any thread.
  void report_event(proto::AgentEvent event);

 private:
  boost::asio::awaitable<void> run();
  // One session from connect to close; returns why it ended.
  boost::asio::awaitable<std::string> session();
  struct LiveSession;
  // The only writer once the session is established; owns its share of the session so it may
  // outlive the reader by a moment.
  boost::asio::awaitable<void> heartbeats(std::shared_ptr<LiveSession> live,
                                          std::chrono::seconds interval);
  boost::asio::awaitable<void> write_loop(std::shared_ptr<LiveSession> live);
  void handle(const proto::Envelope& message);
  proto::OsFacts os_facts();
  proto::Envelope inventory_message();  // facts, capabilities, when collected
  const HostPort& gateway() const { return gateways_[current_]; }

  boost::asio::io_context& io_;
  AgentState state_;
  LinkOptions options_;
  std::vector<HostPort> gateways_;  // state_.gateway, then options_.fallback_gateways
  std::size_t current_ = 0;         // the one in use
  bool established_ = false;        // the last session got as far as HelloAck
  platform::SystemFactsSource& facts_;
  boost::asio::ssl::context tls_;
  // The gateway's newest session ticket: the next connection resumes instead of a full
  // handshake (cheaper for both ends; what makes a fleet's reconnect storm short). Forgotten
  // when a session is refused, so the next attempt is a full handshake.
  tls::SessionSlot resumption_;
  Backoff backoff_;
  boost::asio::steady_timer wait_;
  bool stopping_ = false;
  std::shared_ptr<LiveSession> live_;
  std::uint64_t heartbeat_sequence_ = 0;
  std::uint64_t last_acked_ = 0;
  std::string close_reason_;
  // Round trips waiting for the HeartbeatAck of their sequence (io thread only). Their sequences
  // have kProbeBit set; the controller echoes any sequence.
  static constexpr std::uint64_t kProbeBit = 1ULL << 63;
  std::uint64_t probe_sequence_ = 0;
  std::map<std::uint64_t, std::shared_ptr<std::promise<bool>>> probes_;
  mutable std::mutex addresses_mutex_;
  std::map<std::string, std::vector<std::string>> resolved_;  // gateway host -> its addresses
  std::string peer_address_;                                  // the live session's, "" if none
  ActionService* actions_ = nullptr;
  std::deque<proto::AgentEvent> pending_events_;  // io thread only
  std::vector<std::string> capabilities_;
  StateObserver observer_;
};

}  // namespace riposte::agent
