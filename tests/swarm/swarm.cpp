#include "tests/swarm/swarm.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "protocol/action_signing.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "protocol/envelope_channel.h"
#include "protocol/tls.h"
#include "protocol/version.h"

namespace riposte::swarm {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(30);  // TCP, TLS and HelloAck together
constexpr std::uint32_t kMaxFrame = 1 << 20;

// 127.0.1.1, 127.0.1.2, ... 127.0.1.254, 127.0.2.1, ...: never 127.0.0.1, which the tests' own
// clients (the CLI, the bench's API calls) use.
asio::ip::address_v4 source_address(int index) {
  const std::uint32_t host = 1u + static_cast<std::uint32_t>(index % 254);
  const std::uint32_t net = 1u + static_cast<std::uint32_t>(index / 254);
  return asio::ip::address_v4((127u << 24) | (net << 8) | host);
}

// Binds to a source address without picking the port yet: the kernel then chooses a port unique
// for the whole 4-tuple at connect, not one unique per source address.
using bind_address_no_port = asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>;

template <typename Socket>
void bind_source(Socket& socket, const asio::ip::address_v4& address,
                 boost::system::error_code& ec) {
  socket.open(tcp::v4(), ec);
  if (ec) return;
  socket.set_option(bind_address_no_port(true), ec);
  socket.bind({address, 0}, ec);
}

// "Equal jitter", as agent/backoff.h: uniform in [d/2, d], d = min(max, initial * 2^attempt).
// Not the Backoff class itself: its generator state is 2.5 KB, times 50,000 agents.
std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max, std::mt19937_64& rng) {
  auto d = initial;
  for (unsigned i = 0; i < attempt && d < max; ++i) d *= 2;
  d = std::min(d, max);
  std::uniform_int_distribution<long> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(rng));
}

struct Identity {
  std::string agent_id;
  std::string certificate_pem;
  std::string key_pem;
};

// identities.jsonl: a header line {"ca_pin", "ca_certificate_pem", "action_public_key_pem"},
// then one {"agent_id", "certificate_pem", "key_pem"} per line.
struct IdentityCache {
  std::filesystem::path path;
  std::string ca_pin;
  std::string ca_pem;
  std::string action_key_pem;
  std::vector<Identity> identities;

  Status load() {
    std::ifstream in(path);
    if (!in) return ok_status();
    std::string line;
    if (!std::getline(in, line)) return ok_status();
    auto header = json::parse(line, nullptr, false);
    if (!header.is_object()) return Error{path.string() + " is not an identity cache"};
    if (header.value("ca_pin", "") != ca_pin) {
      // Another controller (or a mistyped pin): its keys are not ours to throw away.
      return Error{fmt::format("{} holds identities enrolled with the controller whose CA is {}, "
                               "not {}: use another --identities folder (or remove that one)",
                               path.string(), header.value("ca_pin", "?"), ca_pin)};
    }
    ca_pem = header.value("ca_certificate_pem", "");
    action_key_pem = header.value("action_public_key_pem", "");
    while (std::getline(in, line)) {
      auto item = json::parse(line, nullptr, false);
      if (!item.is_object()) break;  // a line cut short by a crash: enroll from here again
      identities.push_back({item.value("agent_id", ""), item.value("certificate_pem", ""),
                            item.value("key_pem", "")});
    }
    return ok_status();
  }

  Status append(const Identity& id) {
    const bool fresh = !std::filesystem::exists(path);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return Error{fmt::format("cannot write {}: {}", path.string(), strerror(errno))};
    ::fchmod(fd, 0600);  // private keys: whatever mode the file was given since
    std::string text;
    if (fresh)
      text = json{{"ca_pin", ca_pin}, {"ca_certificate_pem", ca_pem},
                  {"action_public_key_pem", action_key_pem}}
                 .dump() +
             "\n";
    text += json{{"agent_id", id.agent_id},
                 {"certificate_pem", id.certificate_pem},
                 {"key_pem", id.key_pem}}
                .dump() +
            "\n";
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!ok) return Error{"cannot write " + path.string()};
    identities.push_back(id);
    return ok_status();
  }
};

// Bulk enrollment through the real API: a few keep-alive HTTPS connections, each posting one
// CSR after another.
class Enroller {
 public:
  Enroller(const SwarmOptions& options, IdentityCache& cache)
      : options_(options), cache_(cache), tls_(tls::make_tls13_context()) {}

  Status run() {
    auto pin = crypto::normalize_fingerprint(options_.ca_pin);
    if (!pin) return pin.error();
    auto pinned = std::make_shared<std::string>();
    if (auto s = tls::trust_pinned_ca(tls_, *pin, pinned); !s) return s;
    next_ = static_cast<int>(cache_.identities.size());
    started_ = Clock::now();
    for (int c = 0; c < options_.enroll_connections; ++c)
      asio::co_spawn(io_, connection(c), asio::detached);
    io_.run();
    return error_ ? Status{*error_} : ok_status();
  }

 private:
  asio::awaitable<void> connection(int index) {
    auto executor = co_await asio::this_coro::executor;
    tcp::endpoint api(asio::ip::make_address(options_.api.host), options_.api.port);
    int fruitless = 0;  // connections in a row that enrolled nobody
    while (!error_ && next_ < options_.agents) {
      if (fruitless > 0) {
        if (fruitless >= 5) {
          co_return fail(fmt::format("{} connections in a row to {} enrolled nobody (is it the "
                                     "controller's API address?): {}",
                                     fruitless, options_.api.to_string(), last_failure_));
        }
        asio::steady_timer pause(executor, std::chrono::milliseconds(200 * fruitless));
        boost::system::error_code ignored;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
      ++fruitless;
      beast::ssl_stream<beast::tcp_stream> stream(executor, tls_);
      boost::system::error_code ec;
      bind_source(beast::get_lowest_layer(stream).socket(), source_address(1000 + index), ec);
      if (!ec)
        co_await beast::get_lowest_layer(stream).async_connect(
            api, asio::redirect_error(asio::use_awaitable, ec));
      if (!ec)
        co_await stream.async_handshake(asio::ssl::stream_base::client,
                                        asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        fail(fmt::format("cannot reach the controller's API at {}: {}", options_.api.to_string(),
                         describe_error(ec)));
        co_return;
      }
      beast::flat_buffer buffer;
      while (!error_ && next_ < options_.agents) {
        const int n = next_++;
        auto key = crypto::generate_ec_p256();
        if (!key) co_return fail(key.error().message);
        const std::string hostname = fmt::format("swarm-{:05}", n);
        auto csr = crypto::make_csr(key->get(), hostname);
        if (!csr) co_return fail(csr.error().message);
        http::request<http::string_body> request{http::verb::post, "/api/v1/enroll", 11};
        request.set(http::field::host, options_.api.to_string());
        request.set(http::field::content_type, "application/json");
        request.keep_alive(true);
        request.body() = json{{"token", options_.enroll_token},
                              {"csr_pem", crypto::csr_pem(csr->get())},
                              {"hostname", hostname}}
                             .dump();
        request.prepare_payload();
        co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
        http::response<http::string_body> response;
        if (!ec)
          co_await http::async_read(stream, buffer, response,
                                    asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          --next_;  // not enrolled: the next connection takes it again
          last_failure_ = describe_error(ec);
          break;    // the server closed the keep-alive connection: open another
        }
        auto body = json::parse(response.body(), nullptr, false);
        if (response.result_int() == 429) {
          --next_;
          asio::steady_timer pause(executor, std::chrono::seconds(1));
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        if (response.result_int() != 201 || !body.is_object()) {
          co_return fail(fmt::format(
              "controller refused enrollment of agent {}: HTTP {} {}", n, response.result_int(),
              body.is_object() ? body.value("error", "") : response.body().substr(0, 200)));
        }
        if (cache_.ca_pem.empty()) {
          cache_.ca_pem = body.value("ca_certificate_pem", "");
          cache_.action_key_pem = body.value("action_public_key_pem", "");
        }
        if (auto s = cache_.append({body.value("agent_id", ""), body.value("certificate_pem", ""),
                                    crypto::private_key_pem(key->get())});
            !s)
          co_return fail(s.error().message);
        report();
        fruitless = 0;
        if (!response.keep_alive()) break;
      }
      beast::get_lowest_layer(stream).close();
    }
  }

  void fail(std::string message) {
    if (!error_) error_ = Error{std::move(message)};
  }

  void report() {
    const auto done = cache_.identities.size();
    if (!options_.progress || (done % 1000 != 0 && static_cast<int>(done) != options_.agents))
      return;
    const double s = std::chrono::duration<double>(Clock::now() - started_).count();
    options_.progress(fmt::format("enrolled {} of {} identities ({:.0f}/s)", done, options_.agents,
                                  s > 0 ? static_cast<double>(done) / s : 0.0));
  }

  const SwarmOptions& options_;
  IdentityCache& cache_;
  asio::ssl::context tls_;
  asio::io_context io_;
  int next_ = 0;
  std::optional<Error> error_;
  std::string last_failure_;
  Clock::time_point started_;
};

}  // namespace

// One open session of one agent. Shared by its reader, writer and heartbeat coroutines.
struct Live {
  Live(asio::any_io_executor executor, asio::ssl::context& tls)
      : stream(executor, tls), channel(stream, kMaxFrame), beat(executor) {}
  TlsStream stream;
  EnvelopeChannel channel;
  asio::steady_timer beat;
  std::deque<proto::Envelope> outbox;
  bool writing = false;
  bool open = true;
};

struct SimAgent {
  std::string id;
  crypto::X509Ptr certificate;
  crypto::PkeyPtr key;
  int shard = 0;
  int source = 0;
  std::shared_ptr<Live> live;  // while a session is open
  std::unique_ptr<tls::SessionSlot> resumption = std::make_unique<tls::SessionSlot>();
  Clock::time_point last_result_ack{};
};

struct Shard {
  std::mt19937_64 rng;
  int in_flight = 0;  // connection attempts not yet answered by a HelloAck
  int max_in_flight = 1;
  // Agents waiting for a slot, woken one at a time (their timer cancelled) as slots free up:
  // tens of thousands of waiters polling a timer would cost the swarm more CPU than its TLS.
  std::deque<asio::steady_timer*> waiting;
  bool closing = false;  // set by stop(): frames being destroyed must not wake each other
  std::thread thread;
  // Last, so destroyed first: the coroutines it still holds touch the members above as they go.
  asio::io_context io{1};
};

struct Swarm::Impl {
  SwarmOptions options;
  tcp::endpoint gateway;
  asio::ssl::context tls{tls::make_tls13_context()};
  crypto::PkeyPtr action_key;
  std::vector<SimAgent> agents;
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<Shard>> shards;
  SwarmCounters counters;
  std::atomic<bool> stopping{false};
  mutable std::mutex times_mutex;  // result times are read from other threads
  // The first failure of each kind is said with its reason (then only counted).
  std::atomic<bool> told_connect{false}, told_handshake{false}, told_refused{false};
  void tell_once(std::atomic<bool>& told, const std::string& what) {
    if (!told.exchange(true) && options.progress) options.progress(what + " (told once; counted)");
  }

  asio::awaitable<void> keep_connected(SimAgent& agent, Shard& shard);
  asio::awaitable<bool> session(SimAgent& agent, Shard& shard);
  asio::awaitable<void> read_loop(SimAgent& agent, std::shared_ptr<Live> live);
  asio::awaitable<void> heartbeats(std::shared_ptr<Live> live, std::chrono::seconds interval);
  void send(const std::shared_ptr<Live>& live, proto::Envelope envelope);
  asio::awaitable<void> write_loop(std::shared_ptr<Live> live);
  static void close(Live& live);
};

void Swarm::Impl::close(Live& live) {
  live.open = false;
  live.beat.cancel();
  boost::system::error_code ignored;
  live.stream.lowest_layer().close(ignored);
}

asio::awaitable<void> Swarm::Impl::keep_connected(SimAgent& agent, Shard& shard) {
  asio::steady_timer wait(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  unsigned attempt = 0;
  while (!stopping) {
    while (shard.in_flight >= shard.max_in_flight && !stopping) {
      wait.expires_at(asio::steady_timer::time_point::max());
      shard.waiting.push_back(&wait);
      co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (stopping) break;
    ++shard.in_flight;
    const bool was_open = co_await session(agent, shard);
    if (stopping) break;
    if (was_open) attempt = 0;  // as a real agent: the backoff restarts after a good session
    wait.expires_after(
        backoff_delay(attempt++, options.reconnect_initial, options.reconnect_max, shard.rng));
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// Returns whether a session was established (HelloAck accepted) before it ended.
asio::awaitable<bool> Swarm::Impl::session(SimAgent& agent, Shard& shard) {
  auto executor = co_await asio::this_coro::executor;
  auto live = std::make_shared<Live>(executor, tls);
  struct Admission {  // releases the shard's in-flight slot exactly once, waking one waiter
    Shard& shard;
    bool held = true;
    void release() {
      if (!held) return;
      held = false;
      --shard.in_flight;
      if (!shard.closing && !shard.waiting.empty()) {
        shard.waiting.front()->cancel();
        shard.waiting.pop_front();
      }
    }
    ~Admission() { release(); }
  } admission{shard};

  // One certificate and key per agent on a shared context: the trust store is not copied 50,000
  // times.
  SSL* ssl = live->stream.native_handle();
  if (SSL_use_certificate(ssl, agent.certificate.get()) != 1 ||
      SSL_use_PrivateKey(ssl, agent.key.get()) != 1) {
    ++counters.handshake_failures;
    co_return false;
  }
  if (options.resume_sessions) agent.resumption->attach(ssl);
  auto& socket = live->stream.lowest_layer();
  asio::steady_timer guard(executor, kConnectTimeout);
  guard.async_wait([&socket](boost::system::error_code ec) {
    if (!ec) socket.close(ec);  // only when the timer fired, not when cancelled
  });
  boost::system::error_code ec;
  bind_source(socket, source_address(agent.source), ec);
  if (!ec) co_await socket.async_connect(gateway, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    ++counters.connect_failures;
    tell_once(told_connect, fmt::format("cannot connect to the gateway {}:{}: {}",
                                        gateway.address().to_string(), gateway.port(),
                                        describe_error(ec)));
    co_return false;
  }
  socket.set_option(tcp::no_delay(true), ec);
  co_await live->stream.async_handshake(asio::ssl::stream_base::client,
                                        asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    ++counters.handshake_failures;
    agent.resumption->forget();
    tell_once(told_handshake, "TLS handshake with the gateway failed: " + describe_error(ec));
    co_return false;
  }
  if (SSL_session_reused(ssl) == 1) ++counters.resumed;
  proto::Envelope hello;
  auto* h = hello.mutable_hello();
  h->set_protocol_version(kProtocolVersion);
  h->set_agent_id(agent.id);
  h->set_agent_version(std::string(kRiposteVersion) + "-swarm");
  auto* os = h->mutable_os();
  os->set_hostname(fmt::format("swarm-{}", agent.id.substr(0, 8)));
  os->set_os_id("debian");
  os->set_os_version("12");
  os->set_arch("x86_64");
  os->add_ip_addresses(source_address(agent.source).to_string());
  h->add_capabilities("network.status");
  // Not one conditional expression with two co_awaits: GCC 12 destroys its temporaries twice.
  Result<proto::Envelope> ack = Error{"Hello not sent"};
  const auto sent = co_await live->channel.write(hello);
  if (sent) ack = co_await live->channel.read();
  guard.cancel();
  admission.release();
  if (!ack) {
    // TLS 1.3: a refused client certificate shows up after the handshake, as an alert here.
    ++counters.handshake_failures;
    agent.resumption->forget();
    tell_once(told_handshake, "no answer to Hello: " + ack.error().message);
    co_return false;
  }
  if (!ack->has_hello_ack() || !ack->hello_ack().accepted()) {
    ++counters.refused;
    agent.resumption->forget();
    tell_once(told_refused, "the controller refused an agent: " + ack->hello_ack().reason());
    co_return false;
  }
  ++counters.accepted;
  ++counters.sessions;
  agent.live = live;
  const auto interval =
      std::chrono::seconds(std::max<std::uint32_t>(1, ack->hello_ack().heartbeat_interval_seconds()));
  asio::co_spawn(executor, heartbeats(live, interval), asio::detached);
  co_await read_loop(agent, live);
  close(*live);
  agent.live.reset();
  --counters.sessions;
  ++counters.sessions_lost;
  co_return true;
}

asio::awaitable<void> Swarm::Impl::read_loop(SimAgent& agent, std::shared_ptr<Live> live) {
  while (live->open && !stopping) {
    auto message = co_await live->channel.read();
    if (!message) co_return;
    switch (message->body_case()) {
      case proto::Envelope::kHeartbeatAck:
        ++counters.heartbeats;
        break;
      case proto::Envelope::kActionRequest: {
        ++counters.actions;
        // As the real agent: the signature first, then that the action is this agent's.
        auto spec = verify_action(message->action_request(), action_key.get());
        if (!spec || spec->target_agent_id() != agent.id) {
          ++counters.bad_actions;
          break;
        }
        proto::Envelope reply;
        auto* result = reply.mutable_action_result();
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        result->set_action_id(spec->action_id());
        result->set_status(proto::ActionResult::STATUS_SUCCEEDED);
        result->set_output(proto::NetworkStatusResult{}.SerializeAsString());
        result->set_started_at_unix_ms(now);
        result->set_finished_at_unix_ms(now);
        send(live, std::move(reply));
        break;
      }
      case proto::Envelope::kActionResultAck: {
        ++counters.results_acked;
        std::lock_guard lock(times_mutex);
        agent.last_result_ack = Clock::now();
        break;
      }
      case proto::Envelope::kGoodbye:
        co_return;
      default:
        break;
    }
  }
}

asio::awaitable<void> Swarm::Impl::heartbeats(std::shared_ptr<Live> live,
                                              std::chrono::seconds interval) {
  std::uint64_t sequence = 0;
  boost::system::error_code ec;
  while (live->open) {
    live->beat.expires_after(interval);
    co_await live->beat.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!live->open) co_return;
    proto::Envelope beat;
    beat.mutable_heartbeat()->set_sequence(++sequence);
    beat.mutable_heartbeat()->set_sent_at_unix_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    send(live, std::move(beat));
  }
}

void Swarm::Impl::send(const std::shared_ptr<Live>& live, proto::Envelope envelope) {
  live->outbox.push_back(std::move(envelope));
  if (live->writing) return;
  live->writing = true;
  asio::co_spawn(live->stream.get_executor(), write_loop(live), asio::detached);
}

asio::awaitable<void> Swarm::Impl::write_loop(std::shared_ptr<Live> live) {
  while (live->open && !live->outbox.empty()) {
    auto envelope = std::move(live->outbox.front());
    live->outbox.pop_front();
    if (!co_await live->channel.write(envelope)) {
      close(*live);
      break;
    }
  }
  live->outbox.clear();
  live->writing = false;
}

Result<std::unique_ptr<Swarm>> Swarm::prepare(const SwarmOptions& options) {
  if (options.agents <= 0) return Error{"the swarm needs at least one agent"};
  if (options.threads <= 0 || options.source_addresses <= 0 || options.max_handshakes <= 0)
    return Error{"threads, source addresses and handshakes must be positive"};
  auto pin = crypto::normalize_fingerprint(options.ca_pin);
  if (!pin) return pin.error();
  for (const auto* address : {&options.api, &options.gateway}) {
    boost::system::error_code bad;
    asio::ip::make_address(address->host, bad);
    if (bad) return Error{fmt::format("{}: give an IP address and port", address->to_string())};
  }
  std::error_code fs_error;
  std::filesystem::create_directories(options.identities_dir, fs_error);
  if (!fs_error)
    std::filesystem::permissions(options.identities_dir, std::filesystem::perms::owner_all,
                                 fs_error);
  if (fs_error)
    return Error{fmt::format("cannot create {}: {}", options.identities_dir.string(),
                             fs_error.message())};
  IdentityCache cache{options.identities_dir / "identities.jsonl", *pin};
  if (auto s = cache.load(); !s) return s.error();
  if (static_cast<int>(cache.identities.size()) < options.agents) {
    if (options.enroll_token.empty())
      return Error{fmt::format("{} holds {} identities for this controller, {} needed: give an "
                               "enrollment token",
                               cache.path.string(), cache.identities.size(), options.agents)};
    Enroller enroller(options, cache);
    if (auto s = enroller.run(); !s) return s.error();
  }

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->gateway = tcp::endpoint(asio::ip::make_address(options.gateway.host), options.gateway.port);
  if (auto s = tls::trust_only(impl->tls, cache.ca_pem); !s) return s.error();
  SSL_CTX_set_mode(impl->tls.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (options.resume_sessions) tls::keep_session_tickets(impl->tls);
  auto action_key = crypto::load_public_key_pem(cache.action_key_pem);
  if (!action_key) return Error{"the cached action key does not load: " + action_key.error().message};
  impl->action_key = std::move(*action_key);
  impl->agents.resize(static_cast<std::size_t>(options.agents));
  for (int i = 0; i < options.agents; ++i) {
    auto& agent = impl->agents[static_cast<std::size_t>(i)];
    const auto& id = cache.identities[static_cast<std::size_t>(i)];
    auto certificate = crypto::load_certificate_pem(id.certificate_pem);
    auto key = crypto::load_private_key_pem(id.key_pem);
    if (!certificate || !key) return Error{fmt::format("identity {} in the cache does not load", i)};
    agent.id = id.agent_id;
    agent.certificate = std::move(*certificate);
    agent.key = std::move(*key);
    agent.shard = i % options.threads;
    agent.source = i % options.source_addresses;
    impl->ids.push_back(id.agent_id);
  }
  for (int t = 0; t < options.threads; ++t) {
    auto shard = std::make_unique<Shard>();
    shard->rng.seed(static_cast<std::uint64_t>(::getpid()) * 7919u + static_cast<unsigned>(t));
    shard->max_in_flight = std::max(1, options.max_handshakes / options.threads);
    impl->shards.push_back(std::move(shard));
  }
  return std::unique_ptr<Swarm>(new Swarm(std::move(impl)));
}

Swarm::Swarm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Swarm::~Swarm() { stop(); }

void Swarm::start() {
  auto& impl = *impl_;
  for (auto& agent : impl.agents) {
    auto& shard = *impl.shards[static_cast<std::size_t>(agent.shard)];
    asio::co_spawn(shard.io, impl.keep_connected(agent, shard), asio::detached);
  }
  for (auto& shard : impl.shards) {
    shard->thread = std::thread([io = &shard->io] {
      auto work = asio::make_work_guard(*io);
      io->run();
    });
  }
}

void Swarm::drop_all() {
  auto& impl = *impl_;
  for (std::size_t s = 0; s < impl.shards.size(); ++s) {
    asio::post(impl.shards[s]->io, [&impl, s] {
      for (auto& agent : impl.agents)
        if (static_cast<std::size_t>(agent.shard) == s && agent.live) Impl::close(*agent.live);
    });
  }
}

void Swarm::stop() {
  auto& impl = *impl_;
  if (impl.stopping.exchange(true)) return;
  drop_all();
  for (auto& shard : impl.shards) {
    if (!shard->thread.joinable()) continue;
    // Let the closes run, then end the loop; coroutines still suspended are destroyed with it.
    asio::post(shard->io, [s = shard.get()] {
      s->closing = true;
      s->waiting.clear();
      s->io.stop();
    });
    shard->thread.join();
  }
  // Sessions hold I/O objects of the shards' io_contexts: gone before those are.
  for (auto& agent : impl.agents) agent.live.reset();
  impl.shards.clear();
}

Snapshot Swarm::snapshot() const {
  const auto& c = impl_->counters;
  return {c.sessions.load(),        c.accepted.load(), c.connect_failures.load(),
          c.handshake_failures.load(), c.refused.load(),  c.sessions_lost.load(),
          c.heartbeats.load(),      c.actions.load(),  c.bad_actions.load(),
          c.results_acked.load(),   c.resumed.load()};
}

const std::vector<std::string>& Swarm::agent_ids() const { return impl_->ids; }

std::vector<Clock::time_point> Swarm::result_times() const {
  std::lock_guard lock(impl_->times_mutex);
  std::vector<Clock::time_point> out;
  out.reserve(impl_->agents.size());
  for (const auto& agent : impl_->agents) out.push_back(agent.last_result_ack);
  return out;
}

void Swarm::clear_result_times() {
  std::lock_guard lock(impl_->times_mutex);
  for (auto& agent : impl_->agents) agent.last_result_ack = {};
}

std::uint64_t raise_file_limit(std::uint64_t wanted) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_max < wanted) {
    std::uint64_t nr_open = wanted;
    std::ifstream("/proc/sys/fs/nr_open") >> nr_open;
    rlimit raised{std::min<rlim_t>(wanted, nr_open), std::min<rlim_t>(wanted, nr_open)};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;  // needs CAP_SYS_RESOURCE
  }
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min<rlim_t>(wanted, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

}  // namespace riposte::swarm
