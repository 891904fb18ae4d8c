// Dispatch figures, in one process over loopback with real mutual TLS 1.3:
// - round trip: the controller signs and stores an action, the real agent stack (link, verifier,
//   journal, executor) verifies and runs a trivial action, the result is stored;
// - fan-out: one action to 1,000 connected agents (simulated clients that verify the Ed25519
//   signature and answer over their own TLS session) until all results are stored;
// - evidence: a 1 GiB file.collect streamed to the controller, against this machine's own
//   `openssl speed` figures for AES-128-GCM and SHA-256 on 16 KiB blocks.

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "agent/action_service.h"
#include "agent/controller_link.h"
#include "common/allocator_tuning.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/gateway/agent_gateway.h"
#include "controller/gateway/enrollment.h"
#include "controller/store/sqlite_store.h"
#include "protocol/action_signing.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "protocol/envelope_channel.h"
#include "protocol/tls.h"
#include "protocol/version.h"
#include "tests/agent/real_platform.h"
#include "tests/bench/bench_store.h"
#include "tests/test_dir.h"

namespace asio = boost::asio;
using namespace riposte;
using namespace riposte::controller;
using namespace std::chrono_literals;

namespace {

// The controller side: store, PKI, gateway on two threads, dispatcher and evidence store, with
// an observer that wakes waiters when actions end.
struct Controller {
  Controller() : Controller(nullptr, 0) {}
  // On the store `kind` names (tests/bench/bench_store.h); `store` is null, and the benchmark
  // skipped, when that store is not available.
  Controller(benchmark::State* state, int kind) {
    if (state == nullptr) {
      store_owner = std::make_unique<testing::BenchStore>();
      store_owner->store = SqliteStore::open(dir.path() / "riposte.db").value();
    } else {
      store_owner = testing::BenchStore::open(*state, kind, dir.path());
      if (!store_owner) return;
    }
    store = store_owner->store.get();
    pki.emplace(Pki::load_or_create(dir.path(), {}, clock).value());
    enrollment = std::make_unique<Enrollment>(*store, *pki, clock);
    evidence = std::make_unique<EvidenceStore>(dir.path() / "evidence", *store, clock);
    (void)evidence->open();
    dispatcher = std::make_unique<ActionDispatcher>(*store, pki->action_key(), clock);
    GatewayOptions options;
    options.listen = {asio::ip::make_address("127.0.0.1"), 0};
    // Every simulated agent connects from 127.0.0.1: the per-address limits (which a real fleet
    // spreads over its addresses) would measure themselves, not the gateway.
    options.connection_limits = {};
    gateway = std::make_unique<AgentGateway>(io, *store, *pki, clock, options);
    gateway->set_handlers(dispatcher.get(), evidence.get());
    dispatcher->set_sender([this](const std::string& id, proto::Envelope e) {
      return gateway->send_to(id, std::move(e));
    });
    dispatcher->add_observer([this](const std::string&, ActionState) {
      std::lock_guard lock(mutex);
      ++finished;
      changed.notify_all();
    });
    (void)gateway->start();
    for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~Controller() {
    if (gateway) gateway->stop();
    work.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }
  bool wait_finished(int count, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return finished >= count; });
  }

  testing::TempDir dir;
  SystemClock clock;
  std::unique_ptr<testing::BenchStore> store_owner;
  Store* store = nullptr;
  std::optional<Pki> pki;
  std::unique_ptr<Enrollment> enrollment;
  std::unique_ptr<EvidenceStore> evidence;
  std::unique_ptr<ActionDispatcher> dispatcher;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::unique_ptr<AgentGateway> gateway;
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::condition_variable changed;
  int finished = 0;
};

// One real agent: the same classes riposte-agent assembles, on its own io thread.
struct Agent : agent::RealPlatform {
  explicit Agent(Controller& c) {
    auto key = crypto::generate_ec_p256().value();
    const auto token = c.enrollment->create_token(1, 3'600'000, "bench").value();
    auto grant =
        c.enrollment
            ->enroll({token.secret, crypto::csr_pem(crypto::make_csr(key.get(), "bench")->get()),
                      "bench"})
            .value();
    id = grant.agent_id;
    agent::AgentState state{dir.path(),
                            grant.agent_id,
                            {"127.0.0.1", c.gateway->local_endpoint().port()},
                            "",
                            "",
                            crypto::private_key_pem(key.get()),
                            grant.certificate_pem,
                            grant.ca_certificate_pem,
                            grant.action_public_key_pem};
    journal = agent::ActionJournal::open(dir.path() / "actions.db").value();
    verifier =
        agent::ActionVerifier::create({id, grant.action_public_key_pem, 30s, {}}, *journal, clock)
            .value();
    executor = std::make_unique<agent::ActionExecutor>(context(state.gateway.port));
    service = std::make_unique<agent::ActionService>(io, *verifier, *journal, *executor, clock,
                                                     agent::ActionServiceOptions{});
    link = std::make_unique<agent::ControllerLink>(io, state, agent::LinkOptions{}, *facts);
    link->set_action_service(service.get(), {"network.status", "file.collect"});
    service->set_sender([this](proto::Envelope e) { return link->send(std::move(e)); });
    (void)link->start();
    thread = std::thread([this] { io.run(); });
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (c.gateway->session_count() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
  }
  ~Agent() {
    asio::post(io, [this] { link->stop(); });
    std::this_thread::sleep_for(100ms);
    io.stop();
    thread.join();
  }

  std::string id;
  std::unique_ptr<agent::ActionJournal> journal;
  std::unique_ptr<agent::ActionVerifier> verifier;
  std::unique_ptr<agent::ConnectionHistory> history;
  std::unique_ptr<agent::ActionExecutor> executor;
  asio::io_context io;
  std::unique_ptr<agent::ActionService> service;
  std::unique_ptr<agent::ControllerLink> link;
  std::thread thread;
};

void BM_DispatchRoundTrip(benchmark::State& state) {
  spdlog::set_level(spdlog::level::err);
  Controller controller(&state, static_cast<int>(state.range(0)));
  if (controller.store == nullptr) return;
  Agent agent(controller);
  std::vector<double> ms;
  for (auto _ : state) {
    const int before = controller.finished;
    const auto t0 = std::chrono::steady_clock::now();
    ActionSubmission s;
    s.agent_ids = {agent.id};
    s.kind = "network.status";
    s.requester = "bench";
    if (!controller.dispatcher->submit(s) || !controller.wait_finished(before + 1, 10s)) {
      state.SkipWithError("round trip did not complete");
      return;
    }
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  state.counters["median_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  state.counters["max_ms"] = ms.back();
}

// A simulated agent: its own TLS identity and session; verifies each action's signature with
// the controller's action key and answers with a result.
asio::awaitable<void> simulated_agent(asio::ip::tcp::endpoint gateway, asio::ssl::context& tls,
                                      EVP_PKEY* action_key, std::atomic<int>& ready,
                                      std::atomic<bool>& stop) {
  boost::system::error_code ec;
  TlsStream stream(co_await asio::this_coro::executor, tls);
  co_await stream.lowest_layer().async_connect(gateway,
                                               asio::redirect_error(asio::use_awaitable, ec));
  if (!ec)
    co_await stream.async_handshake(asio::ssl::stream_base::client,
                                    asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  stream.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ec);
  EnvelopeChannel channel(stream, kDefaultMaxFrameSize);
  proto::Envelope hello;
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  hello.mutable_hello()->mutable_os()->set_hostname("sim");
  (void)co_await channel.write(hello);
  auto ack = co_await channel.read();
  if (!ack || !ack->has_hello_ack() || !ack->hello_ack().accepted()) co_return;
  ++ready;
  while (!stop) {
    auto message = co_await channel.read();
    if (!message) co_return;
    if (!message->has_action_request()) continue;
    auto spec = verify_action(message->action_request(), action_key);
    if (!spec) continue;
    proto::Envelope reply;
    auto* result = reply.mutable_action_result();
    result->set_action_id(spec->action_id());
    result->set_status(proto::ActionResult::STATUS_SUCCEEDED);
    result->set_output(proto::NetworkStatusResult{}.SerializeAsString());
    (void)co_await channel.write(reply);
  }
}

void BM_FanOutToAgents(benchmark::State& state) {
  spdlog::set_level(spdlog::level::err);
  const int agents = static_cast<int>(state.range(0));
  Controller controller(&state, static_cast<int>(state.range(1)));
  if (controller.store == nullptr) return;
  auto pub = crypto::load_public_key_pem(controller.pki->action_public_key_pem()).value();
  const auto token = controller.enrollment->create_token(agents, 3'600'000, "bench").value();
  std::vector<std::unique_ptr<asio::ssl::context>> identities;
  std::vector<std::string> ids;
  for (int i = 0; i < agents; ++i) {
    auto key = crypto::generate_ec_p256().value();
    auto grant = controller.enrollment->enroll(
        {token.secret, crypto::csr_pem(crypto::make_csr(key.get(), "sim")->get()), "sim"});
    auto tls = std::make_unique<asio::ssl::context>(tls::make_tls13_context());
    (void)tls::use_identity(*tls, grant->certificate_pem, crypto::private_key_pem(key.get()));
    (void)tls::trust_only(*tls, grant->ca_certificate_pem);
    identities.push_back(std::move(tls));
    ids.push_back(grant->agent_id);
  }
  asio::io_context client_io;
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  for (auto& tls : identities) {
    asio::co_spawn(
        client_io,
        simulated_agent(controller.gateway->local_endpoint(), *tls, pub.get(), ready, stop),
        asio::detached);
  }
  std::thread clients([&] { client_io.run(); });
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (controller.gateway->session_count() < static_cast<std::size_t>(agents) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);

  for (auto _ : state) {
    const int before = controller.finished;
    const auto t0 = std::chrono::steady_clock::now();
    ActionSubmission s;
    s.agent_ids = ids;
    s.kind = "network.status";
    s.requester = "bench";
    if (!controller.dispatcher->submit(s) || !controller.wait_finished(before + agents, 60s)) {
      state.SkipWithError("not every result arrived");
      break;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(seconds);
    state.counters["agents_connected"] = static_cast<double>(controller.gateway->session_count());
    state.counters["all_results_ms"] = seconds * 1000;
  }
  stop = true;
  controller.gateway->stop();
  std::this_thread::sleep_for(200ms);
  client_io.stop();
  clients.join();
}

// A rule set of about `bytes`: the public ReversingLabs set when the corpus is at hand
// (RIPOSTE_CORPUS) and `bytes` is large, else generated rules of that size.
std::string rule_set_of(std::size_t bytes) {
  if (bytes > 1 << 20) {
    if (const char* dir = std::getenv("RIPOSTE_CORPUS"); dir != nullptr && *dir != '\0') {
      std::ifstream in(std::filesystem::path(dir) / "yara" / "reversinglabs-all.yara");
      if (in) return std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  std::string rules;
  for (int i = 0; rules.size() < bytes; ++i)
    rules += "rule bench_" + std::to_string(i) + " { strings: $a = \"bench-marker-" +
             std::to_string(i) + "-aaaaaaaaaaaaaaaaaaaaaaaaaaaa\" condition: $a }\n";
  return rules;
}

std::uint64_t database_bytes(const std::filesystem::path& dir) {
  std::uint64_t total = 0;
  for (const char* name : {"riposte.db", "riposte.db-wal"}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(dir / name, ec);
    if (!ec) total += size;
  }
  return total;
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// One yara.scan to 1,000 agents with a rule set of range(1) bytes: the controller's CPU for the
// whole submit (store the set, sign and store 1,000 specs with their audit entries) and what the
// database grew by. Agents are enrolled records, not connected: delivery and the agents' fetches
// are not part of it (each agent fetches the set once, whatever the fan-out).
void BM_YaraFanOutStoresTheRulesOnce(benchmark::State& state) {
  spdlog::set_level(spdlog::level::err);
  const int agents = static_cast<int>(state.range(0));
  const auto rules = rule_set_of(static_cast<std::size_t>(state.range(1)));
  Controller controller;
  std::vector<std::string> ids;
  for (int i = 0; i < agents; ++i) {
    AgentRecord a;
    a.id = "bench-agent-" + std::to_string(i);
    a.cert_serial = std::to_string(i);
    a.cert_fingerprint = "sha256:" + std::to_string(i);
    a.enrolled_at_ms = 1;
    (void)controller.store->insert_agent(a);
    ids.push_back(a.id);
  }
  for (auto _ : state) {
    const auto disk_before = database_bytes(controller.dir.path());
    const auto cpu_before = thread_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    ActionSubmission s;
    s.agent_ids = ids;
    s.kind = "yara.scan";
    s.requester = "bench";
    s.parameters = nlohmann::json{{"rules", rules}, {"paths", {"/srv"}}};
    auto submitted = controller.dispatcher->submit(s);
    if (!submitted) {
      state.SkipWithError(submitted.error().message.c_str());
      break;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(seconds);
    state.counters["rule_set_bytes"] = static_cast<double>(rules.size());
    state.counters["controller_cpu_ms"] = (thread_cpu_seconds() - cpu_before) * 1000;
    state.counters["db_growth_MB"] =
        static_cast<double>(database_bytes(controller.dir.path()) - disk_before) / 1e6;
    state.counters["objects_stored"] =
        static_cast<double>(controller.store->list_objects("", 10).value().size());
    state.counters["largest_spec_bytes"] = static_cast<double>(
        std::max_element(submitted->begin(), submitted->end(), [](const auto& a, const auto& b) {
          return a.spec.size() < b.spec.size();
        })->spec.size());
  }
}

// `openssl speed -evp ALG` on 16 KiB blocks, in bytes per second.
double openssl_speed(const std::string& algorithm) {
  const std::string command =
      "openssl speed -seconds 2 -bytes 16384 -evp " + algorithm + " 2>/dev/null | tail -1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return 0;
  char line[512] = {};
  const bool got = std::fgets(line, sizeof(line), pipe) != nullptr;
  ::pclose(pipe);
  if (!got) return 0;
  // "AES-128-GCM   2843521.42k": thousands of bytes per second
  const std::string text(line);
  const auto k = text.rfind('k');
  const auto space = text.rfind(' ', k);
  return k == std::string::npos ? 0 : std::stod(text.substr(space + 1, k - space - 1)) * 1000;
}

void BM_EvidenceUpload(benchmark::State& state) {
  spdlog::set_level(spdlog::level::err);
  const std::uint64_t size = static_cast<std::uint64_t>(state.range(0)) << 20;
  Controller controller;
  Agent agent(controller);
  const auto source = agent.dir.path() / "source.bin";
  {
    std::ofstream out(source, std::ios::binary);
    const auto block = crypto::random_bytes(1 << 20);  // incompressible, like a memory image
    for (std::uint64_t written = 0; written < size; written += block.size())
      out.write(reinterpret_cast<const char*>(block.data()), static_cast<long>(block.size()));
  }
  // Agent and controller share this machine's disk here; start each phase with no dirty pages
  // left over from the previous one, as two separate hosts would.
  ::sync();
  const double aes = openssl_speed("aes-128-gcm");
  const double sha = openssl_speed("sha256");
  int round = 0;
  for (auto _ : state) {
    const int before = controller.finished;
    ActionSubmission s;
    s.agent_ids = {agent.id};
    s.kind = "file.collect";
    s.parameters = {{"path", source.string()}, {"max_bytes", std::to_string(size * 2)}};
    s.requester = "bench";
    auto actions = controller.dispatcher->submit(s);
    if (!actions || !controller.wait_finished(before + 1, 60s)) {
      state.SkipWithError("file.collect did not finish");
      return;
    }
    // The result (naming the evidence) is stored; the upload starts now.
    ::sync();
    const auto t0 = std::chrono::steady_clock::now();
    auto action = controller.store->find_action(actions->front().id).value().value();
    if (action.evidence.empty()) {
      state.SkipWithError(("no evidence: " + action.reason).c_str());
      return;
    }
    const auto hash = action.evidence.front().sha256;
    const auto partial = controller.dir.path() / "evidence" / ".partial" / hash;
    std::optional<double> streamed;  // every byte received, written and hashed (before fsync)
    for (;;) {
      std::error_code ec;
      if (!streamed && std::filesystem::file_size(partial, ec) == size && !ec) {
        streamed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      bool stored = false;
      const auto rows = controller.store->find_evidence(hash).value_or({});
      for (const auto& row : rows) stored = stored || (row.action_id == action.id && row.stored);
      if (stored) break;
      if (std::chrono::steady_clock::now() - t0 > 120s) {
        state.SkipWithError("upload did not complete");
        return;
      }
      std::this_thread::sleep_for(1ms);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(seconds);
    const double rate = size / seconds;
    std::fprintf(stderr, "upload %d: %.0f MB/s stored, %.0f MB/s received\n", ++round, rate / 1e6,
                 streamed ? size / *streamed / 1e6 : 0.0);
    state.counters["upload_MB_per_s"] = rate / 1e6;  // until stored: fsynced, hash checked
    state.counters["received_MB_per_s"] = streamed ? size / *streamed / 1e6 : rate / 1e6;
    state.counters["openssl_aes128gcm_MB_per_s"] = aes / 1e6;
    state.counters["openssl_sha256_MB_per_s"] = sha / 1e6;
    state.counters["share_of_slower"] = rate / std::min(aes, sha);
    std::filesystem::remove(controller.evidence->object_path(hash));
  }
}

}  // namespace

BENCHMARK(BM_DispatchRoundTrip)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FanOutToAgents)
    ->Args({1000, 0})
    ->Args({1000, 1})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_YaraFanOutStoresTheRulesOnce)
    ->Args({1000, 1024})
    ->Args({1000, 3 << 20})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EvidenceUpload)
    ->Arg(1024)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();  // as riposte-controller and riposte-agent do
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
}
