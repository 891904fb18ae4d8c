// Alert intake throughput: realistic ECS alerts posted to a real controller (in this process,
// its own io threads) over HTTPS with keep-alive, in batches, each normalized, linked to assets,
// scored against intel feeds holding a million indicators, stored with case grouping, and handed
// to validation. Reports alerts stored per second. Target (issue 5): at least 20,000 alerts/s on
// a 2-core machine.

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/secure_file.h"
#include "controller/alerts/intake.h"
#include "controller/alerts/normalizer.h"
#include "controller/controller_service.h"
#include "controller/store/sqlite_store.h"
#include "protocol/tls.h"
#include "tests/bench/bench_store.h"
#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace riposte;
using namespace riposte::controller;
using nlohmann::json;

namespace {

constexpr int kIndicators = 1'000'000;

// One controller for every run, with a million-indicator feed plus the test fixtures' feeds.
struct Controller {
  testing::TempDir dir;
  std::unique_ptr<ControllerService> service;
  std::thread io;
  std::string token;
  std::string ca_pem;
  unsigned short port = 0;

  Controller() {
    spdlog::set_level(std::getenv("BENCH_DEBUG") ? spdlog::level::debug : spdlog::level::warn);
    {
      std::ofstream big(dir.path() / "big.txt");
      for (int i = 0; i < kIndicators; ++i)
        big << (11 + i / 65536 % 200) << "." << (i / 256 % 256) << "." << (i % 256) << ".9\n";
    }
    const std::filesystem::path fixtures =
        std::filesystem::path(::riposte::testing::source_dir()) / "tests/fixtures";
    ControllerConfig config;
    config.data_dir = dir.path() / "data";
    config.agent_listen = "127.0.0.1:0";
    config.api_listen = "127.0.0.1:0";
    config.assets_file = fixtures / "assets.yaml";
    config.intel_feeds = {{"big", dir.path() / "big.txt", "list", 1, ""},
                          {"feodo", fixtures / "intel/feodo.csv", "csv", 1, "dst_ip"},
                          {"misp", fixtures / "intel/misp", "misp", 1, ""},
                          {"stix", fixtures / "intel/stix", "stix", 1, ""}};
    SystemClock clock;
    auto init = initialize_data_dir(config, clock);
    if (!init) throw std::runtime_error(init.error().message);
    token = *init->admin_token;
    ca_pem = read_file(init->ca_certificate).value();
    service = std::make_unique<ControllerService>(config);
    if (auto s = service->start(); !s) throw std::runtime_error(s.error().message);
    io = std::thread([this] { service->run(); });
    const auto runtime =
        json::parse(read_file(config.data_dir / ControllerService::kRuntimeFile).value());
    const std::string api = runtime["api"];
    port = static_cast<unsigned short>(std::stoi(api.substr(api.rfind(':') + 1)));
  }
  ~Controller() {
    service->stop();
    io.join();
  }
};

Controller& controller() {
  static Controller instance;
  return instance;
}

// A batch of distinct ECS alerts shaped like Elastic Security's: flat and nested keys, several
// observables, 200 hosts, destination IPs of which some are in the feeds.
std::string make_batch(int batch_index, int size) {
  json batch = json::array();
  for (int i = 0; i < size; ++i) {
    const int n = batch_index * size + i;
    batch.push_back({
        {"@timestamp", "2026-11-20T09:14:03.512Z"},
        {"kibana.alert.uuid", fmt::format("bench-{:08}-{:04}", batch_index, i)},
        {"kibana.alert.rule.name", "Connection to Known Malicious IP"},
        {"kibana.alert.rule.rule_id", "b1f6c8a2-5d3e-4f7a-9c1b-2e3d4f5a6b7c"},
        {"kibana.alert.severity", n % 3 == 0 ? "high" : "medium"},
        {"kibana.alert.risk_score", 73},
        {"event",
         {{"kind", "signal"}, {"category", {"network"}}, {"type", {"connection", "start"}}}},
        {"host",
         {{"name", fmt::format("web-{:03}", n % 200)},
          {"ip", {fmt::format("10.20.{}.{}", n % 200 / 250, n % 250 + 1)}}}},
        {"source",
         {{"ip", fmt::format("10.20.{}.{}", n % 200 / 250, n % 250 + 1)},
          {"port", 40000 + n % 20000}}},
        {"destination",
         {{"ip", fmt::format("{}.{}.{}.9", 11 + n % 230, n / 7 % 256, n % 256)}, {"port", 443}}},
        {"process",
         {{"pid", 1000 + n % 30000},
          {"name", "curl"},
          {"executable", "/usr/bin/curl"},
          {"hash",
           {{"sha256", "b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2"}}}}},
        {"user", {{"name", "www-data"}}},
    });
  }
  return batch.dump();
}

void BM_AlertIntakeOverHttps(benchmark::State& state) {
  auto& c = controller();
  const int batch_size = static_cast<int>(state.range(0));
  asio::io_context io;
  auto tls = tls::make_tls13_context();
  if (auto s = tls::trust_only(tls, c.ca_pem); !s) {
    state.SkipWithError(s.error().message.c_str());
    return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(io, tls);
  beast::get_lowest_layer(stream).connect({asio::ip::make_address("127.0.0.1"), c.port});
  beast::get_lowest_layer(stream).socket().set_option(asio::ip::tcp::no_delay(true));
  stream.handshake(asio::ssl::stream_base::client);
  // Bodies are built before timing: the client's JSON work is not the controller's.
  static std::atomic<int> next_batch{0};
  std::vector<std::string> bodies;
  for (int i = 0; i < 64; ++i) bodies.push_back(make_batch(next_batch++, batch_size));
  std::size_t sent = 0, stored = 0;
  beast::flat_buffer buffer;
  for (auto _ : state) {
    if (sent == bodies.size()) {
      state.PauseTiming();
      for (auto& b : bodies) b = make_batch(next_batch++, batch_size);
      sent = 0;
      state.ResumeTiming();
    }
    http::request<http::string_body> request{http::verb::post, "/api/v1/alerts", 11};
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::authorization, "Bearer " + c.token);
    request.set(http::field::content_type, "application/json");
    request.keep_alive(true);
    request.body() = bodies[sent++];
    request.prepare_payload();
    http::write(stream, request);
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    if (response.result_int() != 201) {
      state.SkipWithError(
          ("controller answered " + std::to_string(response.result_int()) + ": " + response.body())
              .c_str());
      return;
    }
    stored += json::parse(response.body())["stored"].get<std::size_t>();
  }
  state.counters["alerts_per_s"] =
      benchmark::Counter(static_cast<double>(stored), benchmark::Counter::kIsRate);
  state.counters["batch"] = batch_size;
  beast::error_code ignored;
  stream.shutdown(ignored);
}
// Alert intake without HTTP or the validation pipeline (parse, normalize, score, store) on the
// store a benchmark names, with the fixtures' intel feed and asset map.
struct DirectIntake {
  // Null (the benchmark skipped with why) when the store cannot be had.
  static std::unique_ptr<DirectIntake> open(benchmark::State& state, int store_kind,
                                            std::size_t connections) {
    auto out = std::make_unique<DirectIntake>();
    out->bench_store = testing::BenchStore::open(state, store_kind, out->dir.path(), connections);
    if (!out->bench_store) return nullptr;
    const std::filesystem::path fixtures =
        std::filesystem::path(::riposte::testing::source_dir()) / "tests/fixtures";
    (void)out->intel.load({{"feodo", fixtures / "intel/feodo.csv", "csv", 1, "dst_ip"}}, 0);
    (void)out->assets.load(fixtures / "assets.yaml");
    out->intake.emplace(*out->bench_store->store, out->intel, out->assets, out->clock);
    return out;
  }
  IntakeReport submit(const std::string& body) {
    return intake->submit(body, std::nullopt, {"bench", "ingest", "simulate"});
  }
  testing::TempDir dir;
  std::unique_ptr<testing::BenchStore> bench_store;
  ThreatIntel intel;
  AssetCatalog assets;
  SystemClock clock;
  std::optional<AlertIntake> intake;
};

// The same work as over HTTPS without HTTP or the validation pipeline.
void BM_AlertIntakeDirect(benchmark::State& state) {
  auto direct = DirectIntake::open(state, static_cast<int>(state.range(1)),
                                   controller::kDefaultDatabaseConnections);
  if (!direct) return;
  static int next_batch = 100'000'000;
  const int batch_size = static_cast<int>(state.range(0));
  std::size_t stored = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const auto body = make_batch(next_batch++, batch_size);
    state.ResumeTiming();
    stored += direct->submit(body).alerts.size();
  }
  state.counters["alerts_per_s"] =
      benchmark::Counter(static_cast<double>(stored), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AlertIntakeDirect)->Args({1000, 0})->Args({1000, 1})->UseRealTime()->MinTime(3);

// Two shippers at once into one controller (batches of 1000, no HTTP). Batches take turns in
// either store (SQLite: one writer; PostgreSQL: the intake lock), so this measures what two
// shippers get in total, not the pool.
void BM_AlertIntakeTwoShippers(benchmark::State& state) {
  auto direct = DirectIntake::open(state, static_cast<int>(state.range(0)),
                                   static_cast<std::size_t>(state.range(1)));
  if (!direct) return;
  state.SetLabel(fmt::format("{}, {} connection(s)", state.range(0) == 0 ? "sqlite" : "postgresql",
                             state.range(1)));
  static int next_batch = 200'000'000;
  std::atomic<std::size_t> stored{0};
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::string> bodies;
    for (int i = 0; i < 8; ++i) bodies.push_back(make_batch(next_batch++, 1000));
    state.ResumeTiming();
    std::vector<std::thread> shippers;
    for (int t = 0; t < 2; ++t) {
      shippers.emplace_back([&, t] {
        for (std::size_t i = static_cast<std::size_t>(t); i < bodies.size(); i += 2)
          stored += direct->submit(bodies[i]).alerts.size();
      });
    }
    for (auto& s : shippers) s.join();
  }
  state.counters["alerts_per_s"] =
      benchmark::Counter(static_cast<double>(stored.load()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AlertIntakeTwoShippers)->Args({0, 1})->Args({1, 4})->UseRealTime()->MinTime(3);

// What the connection pool is for: a small store call (a lookup the gateway or the API makes)
// while a shipper keeps the store busy with batches of 1000 alerts. Args: store (0 SQLite,
// 1 PostgreSQL), PostgreSQL connections. With one connection the call waits for the batch.
void BM_StoreLookupDuringIntake(benchmark::State& state) {
  auto direct = DirectIntake::open(state, static_cast<int>(state.range(0)),
                                   static_cast<std::size_t>(state.range(1)));
  if (!direct) return;
  state.SetLabel(fmt::format("{}, {} connection(s)", state.range(0) == 0 ? "sqlite" : "postgresql",
                             state.range(1)));
  auto& store = *direct->bench_store->store;
  std::atomic<bool> stop{false};
  std::thread shipper([&] {
    for (int batch = 300'000'000; !stop; ++batch)
      (void)direct->submit(make_batch(batch, 1000));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the shipper is under way
  std::vector<double> ms;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    if (!store.find_agent("agent-that-is-not-there")) state.SkipWithError("lookup failed");
    const auto took =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ms.push_back(took);
    state.SetIterationTime(took / 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // as the gateway's calls arrive
  }
  stop = true;
  shipper.join();
  std::sort(ms.begin(), ms.end());
  state.counters["median_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[ms.size() * 99 / 100];
}
BENCHMARK(BM_StoreLookupDuringIntake)
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({1, 4})
    ->Iterations(200)
    ->UseManualTime();

// Each benchmark thread is one keep-alive connection, as a shipper with several workers would use.
BENCHMARK(BM_AlertIntakeOverHttps)
    ->Arg(100)
    ->Arg(1000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->MinTime(5);

}  // namespace

BENCHMARK_MAIN();
namespace {
void BM_NormalizeOnly(benchmark::State& state) {
  const auto body = make_batch(7, 1000);
  std::size_t n = 0;
  for (auto _ : state) {
    auto parsed = json::parse(body);
    for (const auto& d : parsed) n += normalize_alert(d, std::nullopt, 0).ok();
  }
  state.counters["alerts_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_NormalizeOnly)->UseRealTime();
}  // namespace
