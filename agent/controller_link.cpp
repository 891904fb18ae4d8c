#include "agent/controller_link.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>

#include "agent/action_service.h"
#include "agent/os_facts.h"
#include "protocol/crypto.h"
#include "protocol/tls.h"
#include "protocol/version.h"

namespace riposte::agent {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t random_seed() {
  const auto bytes = crypto::random_bytes(8);
  std::uint64_t seed = 0;
  for (auto b : bytes) seed = (seed << 8) | b;
  return seed;
}

// Closes the stream's socket if `timer` fires before it is cancelled: a timeout for whatever
// operation is pending on the stream.
void arm_timeout(asio::steady_timer& timer, std::chrono::steady_clock::duration after,
                 TlsStream& stream) {
  timer.expires_after(after);
  timer.async_wait([&stream](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the operation finished in time
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
  });
}

}  // namespace

struct ControllerLink::LiveSession {
  LiveSession(asio::io_context& io, asio::ssl::context& tls, std::uint32_t max_frame_size)
      : stream(io, tls), channel(stream, max_frame_size), heartbeat_timer(io), outbox_signal(io) {
    outbox_signal.expires_at(asio::steady_timer::time_point::max());
  }
  void push(proto::Envelope envelope) {
    outbox.push_back(std::move(envelope));
    outbox_signal.cancel();
  }
  void close() {
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
  }
  TlsStream stream;
  EnvelopeChannel channel;
  asio::steady_timer heartbeat_timer;
  asio::steady_timer outbox_signal;
  std::deque<proto::Envelope> outbox;  // drained by write_loop once established
  bool established = false;            // Hello accepted; write_loop owns writing
  bool alive = true;
};

ControllerLink::ControllerLink(asio::io_context& io, AgentState state, LinkOptions options,
                               platform::SystemFactsSource& facts)
    : io_(io),
      state_(std::move(state)),
      options_(std::move(options)),
      facts_(facts),
      tls_(tls::make_tls13_context()),
      backoff_(options_.reconnect_initial, options_.reconnect_max, random_seed()),
      wait_(io) {
  gateways_.push_back(state_.gateway);
  for (const auto& g : options_.fallback_gateways)
    if (!(g.host == state_.gateway.host && g.port == state_.gateway.port)) gateways_.push_back(g);
}

bool ControllerLink::send(proto::Envelope envelope) {
  if (!live_ || !live_->established || !live_->alive) return false;
  live_->push(std::move(envelope));
  return true;
}

void ControllerLink::report_event(proto::AgentEvent event) {
  asio::post(io_, [this, event = std::move(event)]() mutable {
    proto::Envelope envelope;
    *envelope.mutable_agent_event() = event;
    if (send(std::move(envelope))) return;
    if (pending_events_.size() >= 64) pending_events_.pop_front();
    pending_events_.push_back(std::move(event));
  });
}

Status ControllerLink::start() {
  if (auto s = tls::use_identity(tls_, state_.certificate_pem, state_.key_pem); !s) return s;
  if (auto s = tls::trust_only(tls_, state_.ca_certificate_pem); !s) return s;
  tls::keep_session_tickets(tls_);
  asio::co_spawn(io_, run(), asio::detached);
  return ok_status();
}

void ControllerLink::stop() {
  if (stopping_) return;
  stopping_ = true;
  wait_.cancel();
  if (!live_) return;
  if (live_->established) {
    live_->heartbeat_timer.cancel();  // the heartbeat writer sends Goodbye and closes
  } else {
    live_->close();
  }
}

proto::OsFacts ControllerLink::os_facts() { return to_proto(facts_.collect()); }

proto::Envelope ControllerLink::inventory_message() {
  proto::Envelope envelope;
  auto* inventory = envelope.mutable_inventory();
  *inventory->mutable_os() = os_facts();
  for (const auto& c : capabilities_) inventory->add_capabilities(c);
  inventory->set_collected_at_unix_ms(unix_ms_now());
  return envelope;
}

asio::awaitable<void> ControllerLink::run() {
  while (!stopping_) {
    established_ = false;
    const std::string reason = co_await session();
    if (observer_) observer_(false, reason);
    if (stopping_) break;
    const auto delay = backoff_.next();
    const auto tried = gateway().to_string();
    if (!established_ && gateways_.size() > 1) current_ = (current_ + 1) % gateways_.size();
    spdlog::warn("agent: connection to controller {} ended: {}; retrying {}in {:.1f} s (attempt {})",
                 tried, reason,
                 gateway().to_string() == tried ? "" : "with " + gateway().to_string() + " ",
                 delay.count() / 1000.0, backoff_.attempt());
    wait_.expires_after(delay);
    boost::system::error_code ec;
    co_await wait_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  spdlog::info("agent: stopped");
}

asio::awaitable<std::string> ControllerLink::session() {
  boost::system::error_code ec;
  close_reason_.clear();
  tcp::resolver resolver(io_);
  auto endpoints =
      co_await resolver.async_resolve(gateway().host, std::to_string(gateway().port),
                                      asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fmt::format("cannot resolve {}: {}", gateway().host, ec.message());
  // stop() may have come while resolving, before there was a session for it to close.
  if (stopping_) co_return "stopping";

  live_ = std::make_shared<LiveSession>(io_, tls_, options_.max_frame_size);
  auto live = live_;
  struct ClearOnExit {
    std::shared_ptr<LiveSession>& ref;
    ~ClearOnExit() { ref.reset(); }
  } clear{live_};
  TlsStream& stream = live->stream;
  EnvelopeChannel& channel = live->channel;

  asio::steady_timer guard(io_);
  arm_timeout(guard, options_.connect_timeout, stream);
  co_await asio::async_connect(stream.lowest_layer(), endpoints,
                               asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fmt::format("cannot connect: {}", describe_error(ec));
  stream.lowest_layer().set_option(tcp::no_delay(true), ec);
  resumption_.attach(stream.native_handle());
  // Until the controller accepts the Hello, a failure forgets the ticket: a session the
  // controller refused is not offered again (after a re-enrollment it names the old identity).
  // Not when the attempt timed out: an overloaded gateway in a reconnect storm is when the
  // ticket saves most.
  struct ForgetUnlessAccepted {
    tls::SessionSlot& slot;
    const asio::steady_timer& guard;
    bool accepted = false;
    ~ForgetUnlessAccepted() {
      const bool timed_out = guard.expiry() <= asio::steady_timer::clock_type::now();
      if (!accepted && !timed_out) slot.forget();
    }
  } forget_unless_accepted{resumption_, guard};
  co_await stream.async_handshake(asio::ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return fmt::format(
        "TLS handshake failed: {}{}", describe_error(ec),
        describe_error(ec).find("certificate verify failed") != std::string::npos
            ? " (the gateway's certificate is not from the CA this agent enrolled with)"
            : "");
  }

  proto::Envelope hello;
  auto* h = hello.mutable_hello();
  h->set_protocol_version(kProtocolVersion);
  h->set_agent_id(state_.agent_id);
  h->set_agent_version(std::string(kRiposteVersion));
  *h->mutable_os() = os_facts();
  for (const auto& c : capabilities_) h->add_capabilities(c);
  if (auto s = co_await channel.write(hello); !s)
    co_return "sending Hello failed: " + s.error().message;
  auto answer = co_await channel.read();
  guard.cancel();
  if (!answer) {
    // In TLS 1.3 the server checks our certificate after the client finished its handshake, so
    // a refused certificate (revoked, unknown CA) shows up here as an alert.
    co_return "no answer to Hello: " + answer.error().message;
  }
  if (answer->has_goodbye())
    co_return "controller closed the session: " + answer->goodbye().reason();
  if (!answer->has_hello_ack()) co_return "controller answered Hello with something else";
  const auto& ack = answer->hello_ack();
  if (!ack.accepted()) co_return "controller refused this agent: " + ack.reason();

  forget_unless_accepted.accepted = true;
  {
    // Only now, with the controller proven by its certificate and its answer, do its name's
    // records and this peer become addresses a quarantine keeps open: a name redirected to
    // another server never gets that far.
    std::vector<std::string> addresses;
    for (const auto& e : endpoints) {
      auto text = e.endpoint().address().to_string();
      if (std::find(addresses.begin(), addresses.end(), text) == addresses.end())
        addresses.push_back(std::move(text));
    }
    std::lock_guard lock(addresses_mutex_);
    resolved_[gateway().host] = std::move(addresses);
    if (const auto peer = stream.lowest_layer().remote_endpoint(ec); !ec)
      peer_address_ = peer.address().to_string();
  }
  backoff_.reset();
  heartbeat_sequence_ = 0;
  last_acked_ = 0;
  const auto interval = options_.heartbeat_interval.value_or(
      std::chrono::seconds(std::max<std::uint32_t>(1, ack.heartbeat_interval_seconds())));
  spdlog::info("agent: connected to controller {} as agent {} (heartbeat every {} s)",
               gateway().to_string(), state_.agent_id, interval.count());

  if (auto s = co_await channel.write(inventory_message()); !s)
    co_return "sending inventory failed: " + s.error().message;

  // From here write_loop is the only writer; this coroutine only reads.
  live->established = true;
  established_ = true;
  if (observer_) observer_(true, gateway().to_string());
  if (stopping_) live->heartbeat_timer.cancel();
  asio::co_spawn(io_, write_loop(live), asio::detached);
  asio::co_spawn(io_, heartbeats(live, interval), asio::detached);
  if (actions_ != nullptr) actions_->session_started();
  for (; !pending_events_.empty(); pending_events_.pop_front()) {
    proto::Envelope envelope;
    *envelope.mutable_agent_event() = pending_events_.front();
    live->push(std::move(envelope));
  }
  std::string reason;
  for (;;) {
    auto message = co_await channel.read();
    if (!message) {
      reason = close_reason_.empty() ? message.error().message : close_reason_;
      break;
    }
    if (message->has_goodbye()) {
      reason = "controller closed the session: " + message->goodbye().reason();
      break;
    }
    handle(*message);
  }
  live->alive = false;
  live->heartbeat_timer.cancel();
  live->outbox_signal.cancel();
  live->close();
  for (auto& [sequence, probe] : probes_) probe->set_value(false);
  probes_.clear();
  if (actions_ != nullptr) actions_->session_ended();
  co_return reason;
}

std::vector<std::string> ControllerLink::controller_addresses() const {
  std::lock_guard lock(addresses_mutex_);
  std::vector<std::string> out;
  const auto add = [&](const std::string& a) {
    if (!a.empty() && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  };
  add(peer_address_);
  for (const auto& [host, addresses] : resolved_)
    for (const auto& a : addresses) add(a);
  return out;
}

bool ControllerLink::round_trip(std::chrono::milliseconds timeout) {
  auto probe = std::make_shared<std::promise<bool>>();
  auto answered = probe->get_future();
  asio::post(io_, [this, probe] {
    if (!live_ || !live_->established || !live_->alive) {
      probe->set_value(false);
      return;
    }
    // Probes count apart from the heartbeats (high bit set), so that they never use up the
    // "three unanswered heartbeats" a live session is allowed.
    const auto sequence = kProbeBit | ++probe_sequence_;
    probes_[sequence] = probe;
    proto::Envelope beat;
    beat.mutable_heartbeat()->set_sequence(sequence);
    beat.mutable_heartbeat()->set_sent_at_unix_ms(unix_ms_now());
    live_->push(std::move(beat));
  });
  if (answered.wait_for(timeout) != std::future_status::ready) return false;
  try {
    return answered.get();
  } catch (const std::future_error&) {  // the link went away with the probe unanswered
    return false;
  }
}

void ControllerLink::handle(const proto::Envelope& message) {
  switch (message.body_case()) {
    case proto::Envelope::kHeartbeatAck: {
      const auto sequence = message.heartbeat_ack().sequence();
      if ((sequence & kProbeBit) == 0) {
        last_acked_ = std::max(last_acked_, sequence);
        return;
      }
      while (!probes_.empty() && probes_.begin()->first <= sequence) {
        probes_.begin()->second->set_value(true);
        probes_.erase(probes_.begin());
      }
      return;
    }
    case proto::Envelope::kActionRequest:
      if (actions_ != nullptr) actions_->submit(message.action_request());
      return;
    case proto::Envelope::kActionResultAck:
      if (actions_ != nullptr)
        actions_->result_acknowledged(message.action_result_ack().action_id());
      return;
    case proto::Envelope::kEvidenceAck:
      if (actions_ != nullptr) actions_->evidence_acknowledged(message.evidence_ack());
      return;
    case proto::Envelope::kObjectChunk:
      if (actions_ != nullptr) actions_->object_chunk(message.object_chunk());
      return;
    default:
      spdlog::debug("agent: ignoring message type {}", static_cast<int>(message.body_case()));
  }
}

asio::awaitable<void> ControllerLink::write_loop(std::shared_ptr<LiveSession> live) {
  while (live->alive) {
    if (live->outbox.empty()) {
      boost::system::error_code ec;
      co_await live->outbox_signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto next = std::move(live->outbox.front());
    live->outbox.pop_front();
    const bool goodbye = next.has_goodbye();
    if (auto s = co_await live->channel.write(next); !s || goodbye) {
      live->close();
      co_return;
    }
  }
}

asio::awaitable<void> ControllerLink::heartbeats(std::shared_ptr<LiveSession> live,
                                                 std::chrono::seconds interval) {
  auto& timer = live->heartbeat_timer;
  auto last_inventory = std::chrono::steady_clock::now();
  boost::system::error_code ec;
  while (live->alive) {
    if (stopping_) {
      proto::Envelope goodbye;
      goodbye.mutable_goodbye()->set_reason("agent stopping");
      close_reason_ = "agent stopping";
      live->push(std::move(goodbye));  // write_loop closes the stream after sending it
      break;
    }
    // Three unanswered heartbeats: the controller (or the path to it) is gone even if TCP is not.
    if (heartbeat_sequence_ >= last_acked_ + 3) {
      close_reason_ =
          fmt::format("controller answered no heartbeat for {} s", 3 * interval.count());
      live->close();
      break;
    }
    proto::Envelope beat;
    beat.mutable_heartbeat()->set_sequence(++heartbeat_sequence_);
    beat.mutable_heartbeat()->set_sent_at_unix_ms(unix_ms_now());
    live->push(std::move(beat));
    if (std::chrono::steady_clock::now() - last_inventory > options_.inventory_interval) {
      live->push(inventory_message());
      last_inventory = std::chrono::steady_clock::now();
    }
    if (!live->alive || stopping_) continue;
    timer.expires_after(interval);
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace riposte::agent
