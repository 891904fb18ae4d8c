// How many concurrent agent sessions the gateway holds, and how fast they arrive, with the
// controller's thread count fixed (no thread per connection). N real mutual-TLS 1.3 sessions from
// N distinct enrolled identities, each doing Hello and one heartbeat round trip, over loopback.

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <thread>

#include "controller/gateway/agent_gateway.h"
#include "controller/gateway/enrollment.h"
#include "controller/store/sqlite_store.h"
#include "protocol/crypto.h"
#include "protocol/envelope_channel.h"
#include "protocol/tls.h"
#include "protocol/version.h"
#include "tests/test_dir.h"

namespace asio = boost::asio;
using namespace riposte;
using namespace riposte::controller;

namespace {

long proc_status_value(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key + ":")) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

struct Identity {
  std::unique_ptr<asio::ssl::context> tls;
};

// Real fleets arrive spread out by jittered backoff; this many handshakes are in flight at once.
constexpr int kConcurrentHandshakes = 256;

struct Progress {
  int in_flight = 0;  // touched only on the client io thread
  std::atomic<int> accepted{0};
  std::atomic<int> heartbeats{0};
  std::atomic<int> failed{0};
  std::atomic<bool> release{false};
};

asio::awaitable<void> fake_agent(asio::ip::tcp::endpoint gateway, asio::ssl::context& tls,
                                 Progress& progress) {
  boost::system::error_code ec;
  TlsStream stream(co_await asio::this_coro::executor, tls);
  co_await stream.lowest_layer().async_connect(gateway,
                                               asio::redirect_error(asio::use_awaitable, ec));
  if (!ec)
    co_await stream.async_handshake(asio::ssl::stream_base::client,
                                    asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    --progress.in_flight;
    ++progress.failed;
    co_return;
  }
  EnvelopeChannel channel(stream, kDefaultMaxFrameSize);
  proto::Envelope hello;
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  hello.mutable_hello()->mutable_os()->set_hostname("bench");
  (void)co_await channel.write(hello);
  auto ack = co_await channel.read();
  --progress.in_flight;
  if (!ack || !ack->has_hello_ack() || !ack->hello_ack().accepted()) {
    ++progress.failed;
    co_return;
  }
  ++progress.accepted;
  proto::Envelope beat;
  beat.mutable_heartbeat()->set_sequence(1);
  (void)co_await channel.write(beat);
  auto beat_ack = co_await channel.read();
  if (beat_ack && beat_ack->has_heartbeat_ack()) ++progress.heartbeats;
  // Hold the session open until every agent is connected, as a real fleet would.
  asio::steady_timer hold(co_await asio::this_coro::executor);
  while (!progress.release) {
    hold.expires_after(std::chrono::milliseconds(50));
    co_await hold.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  boost::system::error_code ignored;
  stream.lowest_layer().close(ignored);
}

asio::awaitable<void> launch_fleet(asio::ip::tcp::endpoint gateway,
                                   std::vector<Identity>& identities, Progress& progress) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer pause(executor);
  boost::system::error_code ec;
  for (auto& id : identities) {
    while (progress.in_flight >= kConcurrentHandshakes) {
      pause.expires_after(std::chrono::milliseconds(1));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    ++progress.in_flight;
    asio::co_spawn(executor, fake_agent(gateway, *id.tls, progress), asio::detached);
  }
}

void BM_ConcurrentAgentSessions(benchmark::State& state) {
  spdlog::set_level(spdlog::level::err);  // per-session log lines would dominate the measurement
  const int agents = static_cast<int>(state.range(0));
  testing::TempDir dir;
  SystemClock clock;
  auto pki = Pki::load_or_create(dir.path(), {}, clock).value();
  auto store = SqliteStore::open(dir.path() / "riposte.db").value();
  Enrollment enrollment(*store, pki, clock);
  const auto token = enrollment.create_token(agents, 3'600'000, "bench").value();

  std::vector<Identity> identities(agents);
  for (auto& id : identities) {
    auto key = crypto::generate_ec_p256().value();
    auto grant = enrollment.enroll(
        {token.secret, crypto::csr_pem(crypto::make_csr(key.get(), "bench")->get()), "bench"});
    id.tls = std::make_unique<asio::ssl::context>(tls::make_tls13_context());
    (void)tls::use_identity(*id.tls, grant->certificate_pem, crypto::private_key_pem(key.get()));
    (void)tls::trust_only(*id.tls, grant->ca_certificate_pem);
  }

  asio::io_context server_io;
  GatewayOptions options;
  options.listen = {asio::ip::make_address("127.0.0.1"), 0};
  // Every simulated agent connects from 127.0.0.1: the per-address limits (which a real fleet
  // spreads over its addresses) would measure themselves, not the gateway.
  options.connection_limits = {};
  AgentGateway gateway(server_io, *store, pki, clock, options);
  if (!gateway.start()) {
    state.SkipWithError("gateway did not start");
    return;
  }
  // The controller's own threading: a fixed pool, here the two cores of the machine.
  auto work = asio::make_work_guard(server_io);
  std::vector<std::thread> server_threads;
  for (int i = 0; i < 2; ++i) server_threads.emplace_back([&] { server_io.run(); });

  for (auto _ : state) {
    Progress progress;
    asio::io_context client_io;
    asio::co_spawn(client_io, launch_fleet(gateway.local_endpoint(), identities, progress),
                   asio::detached);
    std::thread clients([&] { client_io.run(); });
    const auto start = std::chrono::steady_clock::now();
    while (progress.accepted + progress.failed < agents &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(300)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    while (progress.heartbeats + progress.failed < agents &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(300)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    state.SetIterationTime(seconds);
    state.counters["sessions_live"] = static_cast<double>(gateway.session_count());
    state.counters["accepted"] = progress.accepted.load();
    state.counters["heartbeat_acks"] = progress.heartbeats.load();
    state.counters["failed"] = progress.failed.load();
    state.counters["sessions_per_s"] = progress.accepted / seconds;
    state.counters["process_threads"] = static_cast<double>(proc_status_value("Threads"));
    state.counters["controller_threads"] = static_cast<double>(server_threads.size());
    state.counters["rss_MiB"] = proc_status_value("VmRSS") / 1024.0;
    progress.release = true;
    clients.join();
  }
  gateway.stop();
  work.reset();
  server_io.stop();
  for (auto& t : server_threads) t.join();
}

}  // namespace

BENCHMARK(BM_ConcurrentAgentSessions)
    ->Arg(1000)
    ->Arg(5000)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
