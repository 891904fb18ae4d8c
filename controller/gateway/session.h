#pragma once

// One agent's session on the gateway: TLS handshake, Hello, then inventory and heartbeats until
// either side closes. Reader and writer are separate coroutines on the session's strand; anything
// that wants to send queues an Envelope with send().

#include <fmt/format.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <string>

#include "controller/gateway/connection_limiter.h"
#include "protocol/agent_channel.pb.h"
#include "protocol/envelope_channel.h"

namespace riposte::controller {

class AgentGateway;

class GatewaySession : public std::enable_shared_from_this<GatewaySession> {
 public:
  // `handshaking` counts this connection against its address's handshake limit until the session
  // is registered (TLS handshake, certificate and Hello accepted) or ends.
  GatewaySession(AgentGateway& gateway, TlsSocket stream, std::string remote_address,
                 ConnectionLimiter::Ticket handshaking);

  // Runs the session to its end. Spawn on the socket's strand. Asio coroutines start lazily, so
  // each coroutine takes `self` as a parameter: the frame owns the session until it finishes.
  boost::asio::awaitable<void> run(std::shared_ptr<GatewaySession> self);

  // Thread-safe: queue a message for the agent.
  void send(proto::Envelope envelope);
  // Thread-safe: end the session, telling the agent why.
  void close(std::string reason);

  const std::string& agent_id() const { return agent_id_; }

 private:
  boost::asio::awaitable<void> write_loop(std::shared_ptr<GatewaySession> self);
  // On the strand: appends to the outbox, or ends the session when it is over kMaxOutbox.
  void queue(proto::Envelope envelope);
  static constexpr std::size_t kMaxOutbox = 4096;
  boost::asio::awaitable<void> watchdog(std::shared_ptr<GatewaySession> self);
  // Hello, then messages until the session ends; `peer_fingerprint` is of the verified client cert.
  boost::asio::awaitable<Status> serve(const std::string& peer_fingerprint);
  Status handle(proto::Envelope& envelope);  // may move bytes out of `envelope`
  // An AgentEvent: audited, and noted on the case of the action it concerns when that action is
  // this agent's own. Bounded: what an agent says is data, never authority.
  void record_event(const proto::AgentEvent& event, std::int64_t now_ms);
  // An ObjectRequest: one chunk of a content object an action of this agent names, or a refusal.
  // False when the agent has more chunks unread than it could honestly need (a flood).
  bool answer_object_request(const proto::ObjectRequest& request);
  void extend_deadline(std::chrono::seconds from_now);
  // Bounds how fast one agent's messages are handled (AgentGateway::message_wait, per agent
  // across its sessions): over it, reading pauses, so TCP slows the agent down instead of its
  // messages taking the controller's threads and store from everyone else. Evidence chunks are
  // not counted: their acknowledgements pace them, and the outbox bound ends a session that
  // sends chunks without reading the acks.
  boost::asio::awaitable<void> pace(const proto::Envelope& envelope);
  void shutdown_socket();
  // A warning this agent's messages cause, within the gateway's budget for such lines
  // (AgentGateway::log_agent_warning): repeated, they are counted, not written.
  template <typename... Args>
  void warn_budgeted(fmt::format_string<Args...> format, Args&&... args);
  // The longest text any field of an agent's message may hold (bound_text_fields).
  static constexpr std::size_t kMaxAgentTextBytes = 4096;

  AgentGateway& gateway_;
  TlsSocket stream_;  // not asio::ssl::stream: 68 KiB less per session (tls_socket.h)
  BasicEnvelopeChannel<TlsSocket> channel_;
  std::string remote_address_;
  ConnectionLimiter::Ticket handshaking_;
  std::string agent_id_;
  std::string close_reason_;
  bool open_ = true;
  bool registered_ = false;
  std::deque<proto::Envelope> outbox_;
  boost::asio::steady_timer outbox_signal_;
  boost::asio::steady_timer deadline_;
  bool events_over_budget_logged_ = false;  // one warning per session, not one per event
  int object_chunks_unwritten_ = 0;         // queued ObjectChunks not yet written to the agent
  bool paced_logged_ = false;
};

}  // namespace riposte::controller
