#include "controller/gateway/agent_gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "controller/gateway/listener.h"
#include "controller/gateway/session.h"
#include "protocol/crypto.h"
#include "protocol/tls.h"

namespace riposte::controller {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

AgentGateway::AgentGateway(asio::io_context& io, Store& store, const Pki& pki, const Clock& clock,
                           GatewayOptions options)
    : io_(io),
      store_(store),
      pki_(pki),
      clock_(clock),
      options_(std::move(options)),
      limiter_(std::make_shared<ConnectionLimiter>("gateway", options_.connection_limits)),
      tls_(tls::make_tls13_context()),
      acceptor_(io),
      heartbeat_flush_timer_(io) {}

AgentGateway::~AgentGateway() {
  for (auto& [id, session] : resumable_) SSL_SESSION_free(session);
}

void AgentGateway::hold_resumable_session(const std::string& agent_id, SSL* ssl) {
  SSL_SESSION* current = SSL_get1_session(ssl);
  std::lock_guard lock(mutex_);
  drop_resumable_session_locked(agent_id);
  if (current != nullptr) resumable_[agent_id] = current;
}

void AgentGateway::drop_resumable_session_locked(const std::string& agent_id) {
  const auto it = resumable_.find(agent_id);
  if (it == resumable_.end()) return;
  SSL_CTX_remove_session(tls_.native_handle(), it->second);
  SSL_SESSION_free(it->second);
  resumable_.erase(it);
}

Status AgentGateway::start() {
  auto revoked = store_.revoked_agent_ids();
  if (!revoked) return revoked.error();
  {
    std::lock_guard lock(mutex_);
    revoked_.insert(revoked->begin(), revoked->end());
  }
  if (auto s = tls::use_identity(tls_, pki_.server_chain_pem(), pki_.server_key_pem()); !s)
    return s;
  auto check = [this](X509* leaf) -> Status {
    auto id = crypto::agent_id_from_certificate(leaf);
    if (!id) return id.error();
    if (is_revoked(*id)) {
      if (std::uint64_t held_back = 0; log_refusal(held_back))
        spdlog::warn("gateway: refusing handshake of revoked agent {}{}", *id,
                     LogBudget::held_back_note(held_back, "refused connections"));
      return Error{"revoked"};
    }
    return ok_status();
  };
  if (auto s = tls::require_client_certificates(tls_, pki_.ca_certificate_pem(), check); !s)
    return s;
  // Agents that lose their session (a network outage, a reconnect storm) resume it without the
  // certificate work of a full handshake; session.cpp checks expiry and revocation after each.
  tls::issue_session_tickets(tls_, kTicketLifetime, kMaxResumableSessions);

  if (auto s = open_listener(acceptor_, options_.listen, "agent gateway"); !s) return s;
  asio::co_spawn(io_, accept_loop(), asio::detached);
  asio::co_spawn(io_, heartbeat_flush_loop(), asio::detached);
  return ok_status();
}

void AgentGateway::note_heartbeat(const std::string& agent_id, std::int64_t now_ms) {
  std::lock_guard lock(heartbeats_mutex_);
  heartbeats_[agent_id] = now_ms;
}

void AgentGateway::flush_heartbeats() {
  std::map<std::string, std::int64_t> due;
  {
    std::lock_guard lock(heartbeats_mutex_);
    due.swap(heartbeats_);
  }
  if (due.empty()) return;
  const std::vector<std::pair<std::string, std::int64_t>> batch(due.begin(), due.end());
  if (auto s = store_.record_agent_heartbeats(batch); !s)
    spdlog::error("gateway: cannot record {} heartbeats: {}", batch.size(), s.error().message);
}

asio::awaitable<void> AgentGateway::heartbeat_flush_loop() {
  const auto every = std::min<std::chrono::seconds>(
      kHeartbeatFlush, std::chrono::seconds(std::max<std::uint32_t>(1, options_.heartbeat_interval_seconds)));
  while (!stopped_) {
    heartbeat_flush_timer_.expires_after(every);
    boost::system::error_code ec;
    co_await heartbeat_flush_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    flush_heartbeats();
  }
}

asio::awaitable<void> AgentGateway::accept_loop() {
  while (!stopped_) {
    boost::system::error_code ec;
    // Each connection gets its own strand; the acceptor's thread is never blocked by a session.
    tcp::socket socket = co_await acceptor_.async_accept(
        asio::make_strand(io_), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      // Out of file descriptors and similar: the pending connection stays queued, so accepting
      // again at once fails again at once (a log line a microsecond). Back off 100 ms and say
      // so once a second; connections already open keep being served meanwhile.
      co_await accept_backoff("gateway", ec);
      continue;
    }
    boost::system::error_code endpoint_ec;
    const auto peer = socket.remote_endpoint(endpoint_ec);
    if (endpoint_ec) continue;  // already gone
    auto ticket = limiter_->admit(peer.address());
    if (!ticket) continue;  // closed before any TLS work; logged by the limiter
    const std::string remote = fmt::format("{}:{}", peer.address().to_string(), peer.port());
    socket.set_option(tcp::no_delay(true), endpoint_ec);
    auto executor = socket.get_executor();
    auto session = std::make_shared<GatewaySession>(
        *this, TlsSocket(std::move(socket), tls_.native_handle()), remote, std::move(*ticket));
    asio::co_spawn(executor, session->run(session), asio::detached);
  }
}

void AgentGateway::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  heartbeat_flush_timer_.cancel();
  flush_heartbeats();
  std::lock_guard lock(mutex_);
  for (auto& [id, held] : sessions_) {
    if (auto session = held.session.lock()) session->close("controller shutting down");
  }
}

tcp::endpoint AgentGateway::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

bool AgentGateway::is_revoked(const std::string& agent_id) const {
  std::lock_guard lock(mutex_);
  return revoked_.contains(agent_id);
}

void AgentGateway::revoke(const std::string& agent_id) {
  std::shared_ptr<GatewaySession> live;
  {
    std::lock_guard lock(mutex_);
    revoked_.insert(agent_id);
    drop_resumable_session_locked(agent_id);
    if (auto it = sessions_.find(agent_id); it != sessions_.end()) live = it->second.session.lock();
  }
  if (live) live->close("agent revoked");
}

Result<int> AgentGateway::refresh_revocations() {
  auto revoked = store_.revoked_agent_ids();
  if (!revoked) return revoked.error();
  std::vector<std::string> news;
  {
    std::lock_guard lock(mutex_);
    for (auto& id : *revoked)
      if (!revoked_.contains(id)) news.push_back(std::move(id));
  }
  for (const auto& id : news) revoke(id);
  return static_cast<int>(news.size());
}

Result<int> AgentGateway::close_sessions_held_elsewhere(std::int64_t since_ms) {
  // A session registered after the store was read may be the newest: only older ones are closed
  // (a session is recorded in the store before it is registered here).
  const auto read_at = std::chrono::steady_clock::now();
  auto elsewhere = store_.agents_connected_elsewhere(since_ms);
  if (!elsewhere) return elsewhere.error();
  std::vector<std::shared_ptr<GatewaySession>> older;
  {
    std::lock_guard lock(mutex_);
    for (const auto& id : *elsewhere) {
      auto it = sessions_.find(id);
      if (it == sessions_.end() || it->second.registered_at >= read_at) continue;
      if (auto live = it->second.session.lock()) older.push_back(std::move(live));
    }
  }
  for (const auto& session : older)
    session->close("replaced by a newer session of the same agent on another controller");
  return static_cast<int>(older.size());
}

bool AgentGateway::send_to(const std::string& agent_id, proto::Envelope envelope) {
  std::shared_ptr<GatewaySession> live;
  {
    std::lock_guard lock(mutex_);
    if (auto it = sessions_.find(agent_id); it != sessions_.end()) live = it->second.session.lock();
  }
  if (!live) return false;
  live->send(std::move(envelope));
  return true;
}

std::size_t AgentGateway::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::vector<std::string> AgentGateway::held_agent_ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> ids;
  ids.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) ids.push_back(id);
  return ids;
}

void AgentGateway::register_session(const std::string& agent_id,
                                    const std::shared_ptr<GatewaySession>& session) {
  std::shared_ptr<GatewaySession> previous;
  {
    std::lock_guard lock(mutex_);
    auto& slot = sessions_[agent_id];
    previous = slot.session.lock();
    slot = {session, std::chrono::steady_clock::now()};
  }
  if (previous) previous->close("replaced by a newer session of the same agent");
}

void AgentGateway::unregister_session(const std::string& agent_id, const GatewaySession* session,
                                      const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(agent_id);
    if (it == sessions_.end()) return;
    auto current = it->second.session.lock();
    if (current && current.get() != session) return;  // a newer session owns the agent now
    sessions_.erase(it);
  }
  spdlog::info("gateway: agent {} disconnected: {}", agent_id, reason);
  if (auto s = store_.record_agent_disconnected(agent_id, reason, clock_.now_unix_ms()); !s) {
    spdlog::error("gateway: agent {}: cannot record disconnect: {}", agent_id, s.error().message);
  }
}

std::chrono::duration<double> AgentGateway::message_wait(const std::string& agent_id) {
  std::lock_guard lock(mutex_);
  auto& budget = message_budgets_[agent_id];
  const auto now = std::chrono::steady_clock::now();
  budget.tokens = std::min(
      kMessageBurst,
      budget.tokens + kMessagesPerSecond * std::chrono::duration<double>(now - budget.at).count());
  budget.at = now;
  budget.tokens -= 1;  // may go below zero: the wait covers the debt
  if (budget.tokens >= 0) return std::chrono::duration<double>(0);
  return std::chrono::duration<double>(-budget.tokens / kMessagesPerSecond);
}

namespace {

// Whether one more occurrence at `now_ms` keeps `recent` (the last minute's, oldest first) within
// `per_minute`; records it when so.
bool admit_per_minute(std::deque<std::int64_t>& recent, std::size_t per_minute,
                      std::int64_t now_ms) {
  while (!recent.empty() && recent.front() <= now_ms - 60'000) recent.pop_front();
  if (recent.size() >= per_minute) return false;
  recent.push_back(now_ms);
  return true;
}

}  // namespace

bool AgentGateway::admit_session(const std::string& agent_id, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  return admit_per_minute(recent_sessions_[agent_id], kSessionsPerMinute, now_ms);
}

bool AgentGateway::admit_event(const std::string& agent_id, std::int64_t now_ms) {
  constexpr std::size_t kEventsPerMinute = 10;
  std::lock_guard lock(mutex_);
  return admit_per_minute(recent_events_[agent_id], kEventsPerMinute, now_ms);
}

}  // namespace riposte::controller
