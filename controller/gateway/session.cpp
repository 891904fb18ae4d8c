#include "controller/gateway/session.h"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/utf8.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/gateway/agent_gateway.h"
#include "controller/observables/observable.h"
#include "protocol/action_kinds.h"
#include "protocol/crypto.h"
#include "protocol/tls.h"
#include "protocol/version.h"
#include "protocol/wire_text.h"

namespace riposte::controller {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::string not_logged(std::uint64_t held_back) {
  return LogBudget::held_back_note(held_back, "refused connections");
}

// `text` with control characters (newlines among them) shown as spaces: one log line stays one.
std::string printable(std::string text) {
  for (auto& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return text;
}

AgentFactsRecord facts_from(const proto::OsFacts& os,
                            const google::protobuf::RepeatedPtrField<std::string>& caps) {
  AgentFactsRecord f;
  f.hostname = os.hostname();
  f.os_name = os.os_name();
  f.os_version = os.os_version();
  f.kernel = os.kernel();
  f.arch = os.arch();
  // Stored in the one form alerts' addresses are read in (observable.h canonical_observable:
  // IPv4-mapped IPv6 as IPv4, IPv6 compressed and lower case; a link-local zone dropped), so a
  // host's `::FFFF:10.0.0.5` and an alert's `10.0.0.5` are the same address everywhere they are
  // compared: host resolution, validation, assets.
  for (const auto& ip : os.ip_addresses()) {
    auto canonical = canonical_observable(observable_type::kIp, ip.substr(0, ip.find('%')));
    auto value = canonical ? std::move(*canonical) : ip;
    if (std::find(f.ip_addresses.begin(), f.ip_addresses.end(), value) == f.ip_addresses.end())
      f.ip_addresses.push_back(std::move(value));
  }
  f.mac_addresses.assign(os.mac_addresses().begin(), os.mac_addresses().end());
  f.capabilities.assign(caps.begin(), caps.end());
  return f;
}

// What an agent says about its host is data, and hostile data reaches the store, the API, logs,
// the asset map and `target: host`: each field is checked for size and shape, and the first
// problem is named. (An agent can still claim another host's name or addresses within these
// shapes: docs/architecture.md says what that can and cannot get it.)
Status check_facts(const proto::OsFacts& os,
                   const google::protobuf::RepeatedPtrField<std::string>& capabilities) {
  const auto printable = [](const std::string& s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u < 0x20 || u == 0x7f;
    });
  };
  // RFC 1123 host names (and the underscore real hosts use): letters, digits, '-', '.', '_'.
  if (os.hostname().size() > 253 ||
      !std::all_of(os.hostname().begin(), os.hostname().end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
      }))
    return Error{"hostname is not a host name (at most 253 letters, digits, '-', '.', '_')"};
  for (const auto& [name, value] : {std::pair{"os_name", &os.os_name()},
                                    {"os_id", &os.os_id()},
                                    {"os_version", &os.os_version()},
                                    {"kernel", &os.kernel()},
                                    {"arch", &os.arch()}}) {
    if (value->size() > 256 || !printable(*value))
      return Error{fmt::format("{} is over 256 bytes or holds control characters", name)};
  }
  if (os.ip_addresses_size() > 256 || os.mac_addresses_size() > 256 || capabilities.size() > 64)
    return Error{"more than 256 addresses or 64 capabilities"};
  for (const auto& ip : os.ip_addresses()) {
    boost::system::error_code ec;
    const auto bare = ip.substr(0, ip.find('%'));  // fe80::1%eth0
    if (ip.size() > 64 || (asio::ip::make_address(bare, ec), ec))
      return Error{fmt::format("ip_addresses holds '{}', not an IP address", utf8_prefix(ip, 64))};
  }
  for (const auto& mac : os.mac_addresses()) {
    const bool shaped =
        mac.size() <= 59 && mac.size() % 3 == 2 && std::all_of(mac.begin(), mac.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':';
        });
    if (!shaped)
      return Error{
          fmt::format("mac_addresses holds '{}', not a MAC address", utf8_prefix(mac, 64))};
  }
  for (const auto& capability : capabilities) {
    if (capability.empty() || capability.size() > 64 ||
        !std::all_of(capability.begin(), capability.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
        }))
      return Error{"capabilities hold a name that is not an action kind"};
  }
  return ok_status();
}

}  // namespace

GatewaySession::GatewaySession(AgentGateway& gateway, TlsSocket stream, std::string remote_address,
                               ConnectionLimiter::Ticket handshaking)
    : gateway_(gateway),
      stream_(std::move(stream)),
      channel_(stream_, gateway.options().max_frame_size),
      remote_address_(std::move(remote_address)),
      handshaking_(std::move(handshaking)),
      outbox_signal_(stream_.get_executor()),
      deadline_(stream_.get_executor()) {
  outbox_signal_.expires_at(asio::steady_timer::time_point::max());
}

void GatewaySession::extend_deadline(std::chrono::seconds from_now) {
  deadline_.expires_after(from_now);
}

void GatewaySession::shutdown_socket() {
  boost::system::error_code ignored;
  stream_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.lowest_layer().close(ignored);
}

asio::awaitable<void> GatewaySession::watchdog(std::shared_ptr<GatewaySession> /*self*/) {
  while (open_) {
    boost::system::error_code ec;
    co_await deadline_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (open_ && deadline_.expiry() <= asio::steady_timer::clock_type::now()) {
      if (close_reason_.empty()) close_reason_ = "timed out waiting for the agent";
      shutdown_socket();
      co_return;
    }
  }
}

asio::awaitable<void> GatewaySession::run(std::shared_ptr<GatewaySession> self) {
  const auto& options = gateway_.options();
  extend_deadline(std::chrono::seconds(options.handshake_timeout_seconds));
  asio::co_spawn(stream_.get_executor(), watchdog(self), asio::detached);

  boost::system::error_code ec;
  co_await stream_.async_server_handshake(asio::redirect_error(asio::use_awaitable, ec));
  Status outcome = ok_status();
  if (ec) {
    if (std::uint64_t held_back = 0; gateway_.log_refusal(held_back))
      spdlog::warn("gateway: TLS handshake from {} failed: {}{}", remote_address_,
                   describe_error(ec), not_logged(held_back));
  } else {
    SSL* ssl = stream_.native_handle();
    crypto::X509Ptr peer(SSL_get1_peer_certificate(ssl));
    auto id = peer ? crypto::agent_id_from_certificate(peer.get())
                   : Result<std::string>(Error{"no client certificate"});
    // A resumed session's chain was verified at its full handshake; its certificate may have
    // expired since. Revocation and enrollment are checked for every session, in serve().
    const bool resumed = SSL_session_reused(ssl) == 1;
    gateway_.count_handshake(resumed);
    if (id && resumed) {
      if (auto usable = tls::resumed_certificate_usable(peer.get(), std::time(nullptr)); !usable)
        id = usable.error();
      else if (gateway_.is_revoked(*id))
        id = Error{fmt::format("agent {} is revoked (resumed session refused)", *id)};
    }
    if (!id) {
      if (std::uint64_t held_back = 0; gateway_.log_refusal(held_back))
        spdlog::warn("gateway: refusing {}: {}{}", remote_address_, id.error().message,
                     not_logged(held_back));
    } else {
      agent_id_ = *id;
      outcome = co_await serve(crypto::certificate_fingerprint(peer.get()));
      // A session refused at Hello is the agent's doing (reconnecting in a loop, say): its
      // line is within the agents' warning budget; an accepted session's end is always said.
      if (!outcome && registered_)
        spdlog::warn("gateway: agent {} from {}: session ended: {}", agent_id_, remote_address_,
                     outcome.error().message);
      else if (!outcome)
        warn_budgeted("gateway: agent {} from {}: session ended: {}", agent_id_, remote_address_,
                      outcome.error().message);
    }
  }

  open_ = false;
  deadline_.cancel();
  outbox_signal_.cancel();
  // An accepted agent resumes its TLS session when it comes back, however this connection
  // ended; a refused one never does.
  if (!ec) {
    if (registered_)
      tls::keep_session_resumable(stream_.native_handle());
    else
      tls::forget_session(stream_.native_handle());
  }
  shutdown_socket();
  if (registered_) {
    gateway_.unregister_session(agent_id_, this, outcome ? "closed" : outcome.error().message);
  }
}

asio::awaitable<Status> GatewaySession::serve(const std::string& peer_fingerprint) {
  const auto& options = gateway_.options();
  auto first = co_await channel_.read();
  if (!first) co_return Error{"before Hello: " + first.error().message};
  if (!first->has_hello()) co_return Error{"first message was not Hello"};
  const auto& hello = first->hello();

  proto::Envelope reply;
  auto* ack = reply.mutable_hello_ack();
  ack->set_protocol_version(kProtocolVersion);
  ack->set_agent_id(agent_id_);
  ack->set_heartbeat_interval_seconds(options.heartbeat_interval_seconds);

  auto refuse = [&](std::string reason) -> asio::awaitable<Status> {
    ack->set_accepted(false);
    ack->set_reason(reason);
    (void)co_await channel_.write(reply);  // best effort: the session ends either way
    co_return Error{std::move(reason)};
  };
  if (hello.protocol_version() < kMinProtocolVersion ||
      hello.protocol_version() > kProtocolVersion) {
    co_return co_await refuse(
        fmt::format("protocol version {} is not supported (controller serves {}..{})",
                    hello.protocol_version(), kMinProtocolVersion, kProtocolVersion));
  }
  if (auto s = check_facts(hello.os(), hello.capabilities()); !s) {
    co_return co_await refuse("Hello refused: " + s.error().message);
  }
  auto agent = gateway_.store().find_agent(agent_id_);
  if (!agent) co_return co_await refuse("controller store error");
  if (!agent->has_value())
    co_return co_await refuse("agent id is not enrolled with this controller");
  if ((*agent)->revoked_at_ms) co_return co_await refuse("agent is revoked");
  if (peer_fingerprint != (*agent)->cert_fingerprint) {
    co_return co_await refuse("certificate is not the one issued to this agent");
  }

  if (!gateway_.admit_session(agent_id_, gateway_.clock().now_unix_ms())) {
    co_return co_await refuse(
        fmt::format("more than {} sessions in a minute from this agent; reconnect later",
                    AgentGateway::kSessionsPerMinute));
  }
  auto facts = facts_from(hello.os(), hello.capabilities());
  facts.agent_version = utf8_prefix(hello.agent_version(), 64);
  facts.protocol_version = hello.protocol_version();
  if (auto s = gateway_.store().record_agent_connected(agent_id_, facts, remote_address_,
                                                       gateway_.clock().now_unix_ms());
      !s) {
    co_return co_await refuse("controller store error");
  }
  gateway_.register_session(agent_id_, shared_from_this());
  registered_ = true;
  gateway_.hold_resumable_session(agent_id_, stream_.native_handle());
  // Counted against the address until here, not just through the TLS handshake: a stolen
  // certificate's connections that never say Hello are as many handshakes; a registered one
  // replaces the agent's previous session, so an agent holds one.
  handshaking_.release();
  ack->set_accepted(true);
  if (auto s = co_await channel_.write(reply); !s) co_return s;
  spdlog::info("gateway: agent {} ({}) connected from {}, agent version {}", agent_id_,
               facts.hostname, remote_address_, facts.agent_version);
  asio::co_spawn(stream_.get_executor(), write_loop(shared_from_this()), asio::detached);
  // Actions that waited for this agent go out now, behind the HelloAck.
  if (auto* dispatcher = gateway_.dispatcher()) dispatcher->agent_connected(agent_id_);

  const auto idle = std::chrono::seconds(options.heartbeat_interval_seconds *
                                         options.missed_heartbeats_before_close);
  for (;;) {
    extend_deadline(idle);
    auto envelope = co_await channel_.read();
    if (!envelope) {
      co_return Error{close_reason_.empty() ? envelope.error().message : close_reason_};
    }
    co_await pace(*envelope);
    // Every text an agent sends is bounded before anything reads it (an evidence name of 3.9 MB
    // once went into the database and the audit chain 200 times over).
    bound_text_fields(*envelope, kMaxAgentTextBytes);
    if (auto s = handle(*envelope); !s) co_return s;
  }
}

asio::awaitable<void> GatewaySession::pace(const proto::Envelope& envelope) {
  if (envelope.body_case() == proto::Envelope::kEvidenceChunk) co_return;
  const auto wait = gateway_.message_wait(agent_id_);
  if (wait.count() <= 0) co_return;
  if (!paced_logged_) {
    spdlog::warn("gateway: agent {} sends more than {} messages a second; reading it slower",
                 agent_id_, AgentGateway::kMessagesPerSecond);
    paced_logged_ = true;
  }
  asio::steady_timer timer(stream_.get_executor());
  timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

Status GatewaySession::handle(proto::Envelope& envelope) {
  auto& store = gateway_.store();
  const auto now = gateway_.clock().now_unix_ms();
  switch (envelope.body_case()) {
    case proto::Envelope::kHeartbeat: {
      gateway_.note_heartbeat(agent_id_, now);  // written with others' at the next flush
      proto::Envelope ack;
      ack.mutable_heartbeat_ack()->set_sequence(envelope.heartbeat().sequence());
      send(std::move(ack));
      return ok_status();
    }
    case proto::Envelope::kInventory: {
      const auto& inventory = envelope.inventory();
      if (auto s = check_facts(inventory.os(), inventory.capabilities()); !s) {
        return Error{"inventory refused: " + s.error().message};
      }
      if (auto s = store.record_agent_facts(
              agent_id_, facts_from(inventory.os(), inventory.capabilities()), now);
          !s) {
        spdlog::error("gateway: agent {}: cannot record inventory: {}", agent_id_,
                      s.error().message);
      }
      return ok_status();
    }
    case proto::Envelope::kGoodbye:
      return Error{
          fmt::format("agent said goodbye: {}", utf8_prefix(envelope.goodbye().reason(), 200))};
    case proto::Envelope::kHello:
      return Error{"second Hello on one session"};
    case proto::Envelope::kActionResult:
      if (auto* dispatcher = gateway_.dispatcher()) {
        dispatcher->handle_result_grouped(
            agent_id_, std::move(*envelope.mutable_action_result()),
            [self = shared_from_this()](std::optional<proto::Envelope> ack) {
              if (ack) self->send(std::move(*ack));
            });
      }
      return ok_status();
    case proto::Envelope::kActionProgress:
      if (auto* dispatcher = gateway_.dispatcher())
        dispatcher->handle_progress(agent_id_, envelope.action_progress());
      return ok_status();
    case proto::Envelope::kEvidenceOffer:
      if (auto* evidence = gateway_.evidence()) {
        proto::Envelope reply;
        *reply.mutable_evidence_ack() = evidence->offer(agent_id_, envelope.evidence_offer());
        send(std::move(reply));
      }
      return ok_status();
    case proto::Envelope::kEvidenceChunk:
      if (auto* evidence = gateway_.evidence()) {
        // The chunk's bytes move to the writer thread; the ack comes back once they are on disk.
        evidence->append(agent_id_, std::move(*envelope.mutable_evidence_chunk()),
                         [self = shared_from_this()](proto::EvidenceAck ack) {
                           proto::Envelope reply;
                           *reply.mutable_evidence_ack() = std::move(ack);
                           self->send(std::move(reply));
                         });
      }
      return ok_status();
    case proto::Envelope::kAgentEvent:
      record_event(envelope.agent_event(), now);
      return ok_status();
    case proto::Envelope::kObjectRequest:
      if (!answer_object_request(envelope.object_request()))
        return Error{"object requests faster than the agent reads the answers"};
      return ok_status();
    default:
      warn_budgeted("gateway: agent {}: ignoring unexpected message type {}", agent_id_,
                    static_cast<int>(envelope.body_case()));
      return ok_status();
  }
}

template <typename... Args>
void GatewaySession::warn_budgeted(fmt::format_string<Args...> format, Args&&... args) {
  std::uint64_t held_back = 0;
  if (!gateway_.log_agent_warning(held_back)) return;
  spdlog::warn("{}{}", fmt::format(format, std::forward<Args>(args)...),
               LogBudget::held_back_note(held_back, "agent warnings"));
}

void GatewaySession::record_event(const proto::AgentEvent& event, std::int64_t now_ms) {
  // What an agent says is data: bounded in number (per agent, across reconnects), in size, and
  // stripped of control characters before it reaches a log line or a case note.
  if (event.kind() != "quarantine.tampered") {
    if (!events_over_budget_logged_) {
      spdlog::warn("gateway: agent {}: ignoring events of unknown kind '{}'", agent_id_,
                   printable(utf8_prefix(event.kind(), 64)));
      events_over_budget_logged_ = true;
    }
    return;
  }
  if (!gateway_.admit_event(agent_id_, now_ms)) {
    if (!events_over_budget_logged_) {
      spdlog::warn("gateway: agent {}: more than 10 events a minute; dropping the excess",
                   agent_id_);
      events_over_budget_logged_ = true;
    }
    return;
  }
  auto& store = gateway_.store();
  const std::string detail = printable(utf8_prefix(event.detail(), 1000));
  // The case is taken from the controller's own record of the action, and only when that
  // action is a quarantine sent to this agent.
  std::string case_id;
  std::string action_id;
  if (!event.action_id().empty()) {
    auto action = store.find_action(utf8_prefix(event.action_id(), 64));
    if (action && *action && (*action)->agent_id == agent_id_ &&
        (*action)->kind == action_kind::kNetworkQuarantine) {
      action_id = (*action)->id;
      case_id = (*action)->case_id;
    }
  }
  const std::string actor = "agent:" + agent_id_;
  const AuditEvent audit{actor, "agent.quarantine_tampered", agent_id_,
                         nlohmann::json{{"detail", detail},
                                        {"action_id", action_id},
                                        {"case_id", case_id},
                                        {"seen_at_ms", event.at_unix_ms()}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  spdlog::error("gateway: agent {}: quarantine tampered with{}: {}", agent_id_,
                case_id.empty() ? "" : " (case " + case_id + ")", detail);
  Status stored = ok_status();
  if (!case_id.empty()) {
    CaseChange change;
    change.note =
        fmt::format("Agent {}: quarantine tampered with on the host: {}", agent_id_, detail);
    stored = store.update_case(case_id, change, actor, audit, now_ms);
  } else {
    stored = store.append_audit(audit, now_ms);
  }
  if (!stored) {
    spdlog::error("gateway: agent {}: cannot record the tamper event: {}", agent_id_,
                  stored.error().message);
  }
}

bool GatewaySession::answer_object_request(const proto::ObjectRequest& request) {
  // An honest agent asks for the next chunk of an object once the last arrived, one request
  // per object it fetches at once (one per running yara.scan, at most a handful).
  constexpr int kMaxUnwritten = 8;
  if (object_chunks_unwritten_ >= kMaxUnwritten) return false;
  constexpr std::size_t kChunkBytes = 1 << 20;  // well under the 4 MiB frame limit
  proto::Envelope reply;
  auto* chunk = reply.mutable_object_chunk();
  const std::string sha = utf8_prefix(request.sha256(), 64);
  chunk->set_sha256(sha);
  chunk->set_offset(request.offset());
  auto& store = gateway_.store();
  // Only what an unfinished action addressed to this agent names: a certificate is not a key to
  // every rule set on the controller.
  auto allowed = store.object_named_for_agent(agent_id_, sha);
  auto object = allowed && *allowed ? store.find_object(sha)
                                    : Result<std::optional<ContentObjectRecord>>(std::nullopt);
  if (!allowed || !object) {
    chunk->set_error("controller store error");
  } else if (!*allowed || !*object) {
    warn_budgeted("gateway: agent {} asked for object {} that no unfinished action of it names",
                  agent_id_, printable(sha));
    chunk->set_error("no unfinished action for this agent names that object");
  } else {
    chunk->set_size((*object)->size);
    auto bytes = store.read_object(sha, request.offset(), kChunkBytes);
    if (!bytes) {
      chunk->set_error("controller store error");
    } else {
      chunk->set_data(std::move(*bytes));
    }
  }
  ++object_chunks_unwritten_;
  send(std::move(reply));
  return true;
}

asio::awaitable<void> GatewaySession::write_loop(std::shared_ptr<GatewaySession> /*self*/) {
  while (open_) {
    if (outbox_.empty()) {
      boost::system::error_code ec;
      co_await outbox_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto next = std::move(outbox_.front());
    outbox_.pop_front();
    const bool goodbye = next.has_goodbye();
    auto written = co_await channel_.write(next);
    if (next.has_object_chunk()) --object_chunks_unwritten_;
    if (!written && close_reason_.empty())
      close_reason_ = "send failed: " + written.error().message;
    if (!written || goodbye) {
      shutdown_socket();
      co_return;
    }
  }
}

void GatewaySession::send(proto::Envelope envelope) {
  const auto* strand =
      stream_.get_executor().target<asio::strand<asio::io_context::executor_type>>();
  if (strand != nullptr && strand->running_in_this_thread()) {  // from handle(): no hop needed
    queue(std::move(envelope));
    return;
  }
  asio::post(stream_.get_executor(),
             [self = shared_from_this(), envelope = std::move(envelope)]() mutable {
               self->queue(std::move(envelope));
             });
}

void GatewaySession::queue(proto::Envelope envelope) {
  if (!open_) return;
  // An agent that sends and never reads would grow this without bound (acks for its chunks):
  // past kMaxOutbox messages it is not a working agent, and its session ends.
  if (outbox_.size() >= kMaxOutbox) {
    spdlog::warn("gateway: agent {} does not read what it is sent ({} messages queued); closing",
                 agent_id_, outbox_.size());
    if (close_reason_.empty()) close_reason_ = "the agent stopped reading its messages";
    shutdown_socket();  // the read loop ends the session
    return;
  }
  outbox_.push_back(std::move(envelope));
  outbox_signal_.cancel();
}

void GatewaySession::close(std::string reason) {
  asio::post(stream_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
    if (!self->open_) return;
    spdlog::info("gateway: closing session of agent {}: {}", self->agent_id_, reason);
    self->close_reason_ = reason;
    proto::Envelope goodbye;
    goodbye.mutable_goodbye()->set_reason(reason);
    self->outbox_.push_back(std::move(goodbye));
    self->outbox_signal_.cancel();
    // If the agent stops reading, the Goodbye never drains; do not wait for it for long.
    self->extend_deadline(5s);
  });
}

}  // namespace riposte::controller
