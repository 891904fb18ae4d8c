#pragma once

// The agent gateway: a mutual-TLS 1.3 listener where enrolled agents keep one session each.
// One io_context serves every connection (coroutines, no thread per connection); each session runs
// on its own strand. Identity comes only from the verified client certificate.

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/clock.h"
#include "common/log_budget.h"
#include "controller/gateway/connection_limiter.h"
#include "controller/gateway/pki.h"
#include "controller/store/store.h"
#include "protocol/agent_channel.pb.h"
#include "protocol/framing.h"

namespace riposte::controller {

class ActionDispatcher;
class EvidenceStore;
class GatewaySession;

struct GatewayOptions {
  boost::asio::ip::tcp::endpoint listen;
  std::uint32_t max_frame_size = kDefaultMaxFrameSize;
  std::uint32_t heartbeat_interval_seconds = 30;
  // A session with no message for this many heartbeat intervals is considered dead.
  std::uint32_t missed_heartbeats_before_close = 3;
  std::uint32_t handshake_timeout_seconds = 10;
  // Per source address: connections still in their TLS handshake at once, and new connections a
  // second (connection_limiter.h). Authenticated sessions are not counted: a fleet behind one NAT
  // address holds thousands. A reconnect storm over the burst is refused and retried by the
  // agents' jittered backoff.
  ConnectionLimits connection_limits = kAgentListenerLimits;
};

class AgentGateway {
 public:
  AgentGateway(boost::asio::io_context& io, Store& store, const Pki& pki, const Clock& clock,
               GatewayOptions options);
  ~AgentGateway();

  // Loads the revocation list, binds and starts accepting.
  Status start();
  // Stops accepting and closes every session.
  void stop();

  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // Refuses the agent's future handshakes and closes its current session, if any.
  void revoke(const std::string& agent_id);
  // Revocations made through another controller sharing the store: each agent revoked there
  // and not yet here is revoked here (its live session closed). Returns how many.
  Result<int> refresh_revocations();
  // One session per agent across controllers sharing the store: each session held here of an
  // agent that has since connected to another controller (Store::agents_connected_elsewhere,
  // since `since_ms`) is closed, as a newer session here replaces an older one. A copied agent
  // identity cannot keep two sessions, and a session left half-open by an agent that failed over
  // ends within a check. Returns how many were closed.
  Result<int> close_sessions_held_elsewhere(std::int64_t since_ms);

  std::size_t session_count() const;
  // Thread-safe: the agents whose live session is on this controller.
  std::vector<std::string> held_agent_ids() const;
  // Once an agent's session is accepted: the TLS session its new ticket names becomes the one
  // it may resume, and the one it had before (the session it may just have resumed) leaves the
  // cache. OpenSSL 3.0 keeps a resumed stateful session cached; this makes each ticket resume
  // once and bounds the cache to one session per agent, however often an agent reconnects.
  void hold_resumable_session(const std::string& agent_id, SSL* ssl);
  // TLS sessions in the gateway's cache now (resumable ones, and those of handshakes underway).
  std::size_t cached_tls_sessions() {
    return static_cast<std::size_t>(SSL_CTX_sess_number(tls_.native_handle()));
  }
  // Whether to log one more refused connection now (a failed TLS handshake, a certificate
  // refused): at most kRefusalLinesPerMinute a minute; `held_back` is how many were not logged
  // since the last that was.
  bool log_refusal(std::uint64_t& held_back) {
    return refusal_log_.take(clock_.now_unix_ms(), held_back);
  }
  static constexpr int kRefusalLinesPerMinute = 30;
  // The same for warnings an enrolled agent's messages cause (an unexpected message type, an
  // object no action names, an event of unknown kind): an agent's certificate is not a licence
  // to write the controller's log at its message rate.
  bool log_agent_warning(std::uint64_t& held_back) {
    return agent_warning_log_.take(clock_.now_unix_ms(), held_back);
  }
  static constexpr int kAgentWarningLinesPerMinute = 60;
  // TLS handshakes completed on the gateway: full ones and resumed ones (session tickets).
  void count_handshake(bool resumed) { ++(resumed ? handshakes_resumed_ : handshakes_full_); }
  std::uint64_t handshakes(bool resumed) const {
    return (resumed ? handshakes_resumed_ : handshakes_full_).load();
  }
  // How long a session ticket lets an agent resume: RFC 8446's maximum, so that sessions that
  // lived for days still resume after a network outage. Each resumption gets a fresh ticket.
  static constexpr std::chrono::seconds kTicketLifetime{7 * 24 * 3600};
  // Sessions held for resumption, one per agent that connected (a few KiB each): a fleet of this
  // size resumes after an outage; beyond it, the oldest agents take full handshakes.
  static constexpr std::size_t kMaxResumableSessions = 100'000;
  // Connections refused by the per-address limits since start.
  std::uint64_t connections_refused() const { return limiter_->refused(); }

  // Where sessions hand action results, progress and evidence; set before start(). Either may be
  // null (a gateway without dispatch, as in the session benchmark): such messages are ignored.
  void set_handlers(ActionDispatcher* dispatcher, EvidenceStore* evidence) {
    dispatcher_ = dispatcher;
    evidence_ = evidence;
  }
  ActionDispatcher* dispatcher() const { return dispatcher_; }
  EvidenceStore* evidence() const { return evidence_; }
  // Thread-safe: queues `envelope` on the agent's live session; false when it has none.
  bool send_to(const std::string& agent_id, proto::Envelope envelope);

  // Used by sessions.
  const GatewayOptions& options() const { return options_; }
  Store& store() { return store_; }
  const Clock& clock() const { return clock_; }
  bool is_revoked(const std::string& agent_id) const;
  // Thread-safe: whether one more AgentEvent from `agent_id` is within its budget (10 a minute,
  // across all its sessions: reconnecting does not reset it). Counts it when it is.
  bool admit_event(const std::string& agent_id, std::int64_t now_ms);
  // Thread-safe: whether `agent_id` may open one more session now: at most kSessionsPerMinute a
  // minute. Each accepted session writes the agent's row twice and logs two lines; a certificate
  // looping connect, Hello, Goodbye made 7,464 lines and a 67 MB WAL in 10 s. Counts it when so.
  bool admit_session(const std::string& agent_id, std::int64_t now_ms);
  static constexpr std::size_t kSessionsPerMinute = 30;
  // How long one more message of `agent_id` must wait to stay within kMessagesPerSecond (bursts
  // up to kMessageBurst); the message's place is reserved. Per agent, across its sessions, so
  // reconnecting does not buy a fresh burst.
  std::chrono::duration<double> message_wait(const std::string& agent_id);
  static constexpr double kMessagesPerSecond = 200;
  static constexpr double kMessageBurst = 2000;
  // Registers a session as the live one for its agent; an older session of the same agent is
  // closed.
  void register_session(const std::string& agent_id,
                        const std::shared_ptr<GatewaySession>& session);
  // Records the disconnect, unless a newer session of the same agent has replaced this one.
  void unregister_session(const std::string& agent_id, const GatewaySession* session,
                          const std::string& reason);
  // Thread-safe: an agent's heartbeat, written to the store with others at the next flush
  // (every kHeartbeatFlush, or the heartbeat interval when shorter).
  void note_heartbeat(const std::string& agent_id, std::int64_t now_ms);
  static constexpr std::chrono::seconds kHeartbeatFlush{5};

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> heartbeat_flush_loop();
  void flush_heartbeats();

  boost::asio::io_context& io_;
  Store& store_;
  const Pki& pki_;
  const Clock& clock_;
  GatewayOptions options_;
  std::shared_ptr<ConnectionLimiter> limiter_;
  boost::asio::ssl::context tls_;
  boost::asio::ip::tcp::acceptor acceptor_;

  mutable std::mutex mutex_;
  std::set<std::string> revoked_;
  struct HeldSession {
    std::weak_ptr<GatewaySession> session;
    std::chrono::steady_clock::time_point registered_at;
  };
  std::map<std::string, HeldSession> sessions_;
  std::map<std::string, std::deque<std::int64_t>> recent_events_;  // per agent, last minute
  struct MessageBudget {
    double tokens = kMessageBurst;
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  };
  std::map<std::string, MessageBudget> message_budgets_;  // per agent
  std::map<std::string, std::deque<std::int64_t>> recent_sessions_;  // per agent, for admit_session
  std::mutex heartbeats_mutex_;
  std::map<std::string, std::int64_t> heartbeats_;  // since the last flush, latest per agent
  boost::asio::steady_timer heartbeat_flush_timer_;
  std::atomic<bool> stopped_{false};
  LogBudget refusal_log_{kRefusalLinesPerMinute};
  LogBudget agent_warning_log_{kAgentWarningLinesPerMinute};
  // Each agent's resumable TLS session (one reference each), under mutex_.
  std::map<std::string, SSL_SESSION*> resumable_;
  void drop_resumable_session_locked(const std::string& agent_id);
  std::atomic<std::uint64_t> handshakes_full_{0};
  std::atomic<std::uint64_t> handshakes_resumed_{0};
  ActionDispatcher* dispatcher_ = nullptr;
  EvidenceStore* evidence_ = nullptr;
};

}  // namespace riposte::controller
