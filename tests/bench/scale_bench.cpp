// How many agents one controller holds on this 2-core machine, and what it costs: a real
// riposte-controller process and the agent swarm (tests/swarm: real enrolled identities, one
// mutual-TLS 1.3 session each, the real protocol), for N agents (RIPOSTE_SCALE_AGENTS, default
// 10000,25000,50000). For each N:
//   connect_s          all N sessions accepted, from the first connection attempt;
//   idle_cpu_pct       controller CPU over RIPOSTE_SCALE_IDLE_S (default 120) of steady state,
//                      30 s heartbeats, in % of one core (client_cpu_pct: the swarm's, same window);
//   controller_rss_mib controller resident memory with N sessions held (and per session);
//   store_write_kib_s  what the controller wrote to disk in that window (heartbeats, presence);
//   fanout_all_s       one signed network.status to every agent (by label), from the CLI call
//                      until the swarm holds every "result stored" acknowledgement; p50/p99 per agent;
//   agents_list_ms     GET /api/v1/agents, a 100-agent page: first, last and online-filtered,
//                      median of 5 each, the slowest of the three;
//   storm_s            every session dropped at once from the swarm side until all N are back
//                      (the swarm reconnects with the agents' own backoff, 0.5-1 s first delay);
//                      storm_controller_cpu_s / storm_client_cpu_s: each end's CPU for it;
//                      storm_resumed: how many of those handshakes resumed a session from its
//                      ticket, as agents do (RIPOSTE_SCALE_RESUME=0: every one a full handshake).
// Both ends share the machine's two cores; client_cpu_pct says how much the swarm took.
//
// Each N has its own controller and identities under RIPOSTE_SCALE_DIR (default
// build/<preset>/scale-bench/N<agents>), kept between runs: enrollment (about 550 agents/s) is
// paid once.

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "protocol/https_client.h"
#include "protocol/tls.h"
#include "tests/build_paths.h"
#include "tests/integration/harness.h"
#include "tests/swarm/swarm.h"

using namespace riposte;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void say(const std::string& line) { std::cerr << "scale_bench: " << line << std::endl; }

// utime + stime of a process, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // fields 3..13
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

long status_kib(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(key + ":")) return std::stol(line.substr(key.size() + 1));
  return -1;
}

double write_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("write_bytes:")) return std::stod(line.substr(12));
  return 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

bool wait_for(swarm::Swarm& s, const std::function<bool(const swarm::Snapshot&)>& done,
              std::chrono::seconds timeout, const std::string& what) {
  const auto start = Clock::now();
  auto last_report = start;
  while (Clock::now() - start < timeout) {
    const auto snap = s.snapshot();
    if (done(snap)) return true;
    if (Clock::now() - last_report > 5s) {
      last_report = Clock::now();
      say(fmt::format("{}: {} sessions, {} accepted, {} failed handshakes, {} connect failures, "
                      "{} results stored ({:.0f} s)",
                      what, snap.sessions, snap.accepted, snap.handshake_failures,
                      snap.connect_failures, snap.results_acked, since(start)));
    }
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<int> sizes() {
  std::vector<int> out;
  const char* env = std::getenv("RIPOSTE_SCALE_AGENTS");
  std::stringstream list(env != nullptr && *env != '\0' ? env : "10000,25000,50000");
  for (std::string item; std::getline(list, item, ',');)
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::stoi(value) : fallback;
}

void BM_ScaleAgents(benchmark::State& state) {
  const int agents = static_cast<int>(state.range(0));
  const char* root_env = std::getenv("RIPOSTE_SCALE_DIR");
  const fs::path root = root_env != nullptr && *root_env != '\0'
                            ? fs::path(root_env)
                            : fs::path(testing::bin_dir()).parent_path() / "scale-bench";
  // Both processes need a descriptor per session (and the controller one per client besides);
  // the controller inherits the raised hard limit and raises its own soft limit to it.
  // Each process (controller, swarm) holds one per session; raising the hard limit needs
  // CAP_SYS_RESOURCE, which some containers do not grant (then ~limit-1000 agents is the most).
  const auto limit = swarm::raise_file_limit(static_cast<std::uint64_t>(agents) + 8192);
  if (limit < static_cast<std::uint64_t>(agents) + 1024) {
    const auto message = fmt::format(
        "{} agents need {} open files per process; this process may have {} (hard limit, and no "
        "CAP_SYS_RESOURCE to raise it)",
        agents, agents + 1024, limit);
    say(message);
    state.SkipWithError(message.c_str());
    return;
  }
  testing::ControllerUnderTest controller(root / ("N" + std::to_string(agents)));
  controller.set_config("log_level: info\nheartbeat_interval: 30s\n");
  controller.start();
  const pid_t pid = controller.process().pid();

  swarm::SwarmOptions options;
  options.api = parse_host_port(controller.api()).value();
  options.gateway = parse_host_port(controller.gateway()).value();
  options.ca_pin = controller.ca_fingerprint();
  options.identities_dir = root / ("N" + std::to_string(agents)) / "identities";
  options.agents = agents;
  options.threads = env_int("RIPOSTE_SWARM_THREADS", 2);
  options.resume_sessions = env_int("RIPOSTE_SCALE_RESUME", 1) != 0;
  options.source_addresses = 64;
  options.progress = say;
  if (!fs::exists(options.identities_dir / "identities.jsonl") ||
      fs::file_size(options.identities_dir / "identities.jsonl") <
          static_cast<std::uintmax_t>(agents) * 1000) {
    options.enroll_token = controller
                               .cli_json({"tokens", "create", "--uses", std::to_string(agents),
                                          "--ttl", "2h", "--label", "swarm"})
                               .at("token")
                               .get<std::string>();
  }
  auto prepared = swarm::Swarm::prepare(options);
  if (!prepared) {
    state.SkipWithError(prepared.error().message.c_str());
    return;
  }
  auto& swarm = **prepared;

  for (auto _ : state) {
    // Connect.
    say(fmt::format("connecting {} agents", agents));
    const double client_cpu_start = own_cpu_seconds();
    const double controller_cpu_start = cpu_seconds(pid);
    auto t0 = Clock::now();
    swarm.start();
    if (!wait_for(swarm, [&](auto& s) { return s.sessions == agents; }, 900s, "connecting")) {
      state.SkipWithError("not every agent connected");
      break;
    }
    const double connect_s = since(t0);
    state.counters["sessions_held"] = swarm.snapshot().sessions;
    state.counters["connect_s"] = connect_s;
    state.counters["sessions_per_s"] = agents / connect_s;
    state.counters["connect_controller_cpu_s"] = cpu_seconds(pid) - controller_cpu_start;
    state.counters["connect_client_cpu_s"] = own_cpu_seconds() - client_cpu_start;
    state.counters["connect_failed_handshakes"] =
        static_cast<double>(swarm.snapshot().handshake_failures);

    // Steady state.
    const int idle_s = env_int("RIPOSTE_SCALE_IDLE_S", 120);
    say(fmt::format("{} sessions held; measuring {} s of steady state", agents, idle_s));
    std::this_thread::sleep_for(5s);  // let connection-time work drain
    const double cpu0 = cpu_seconds(pid), own0 = own_cpu_seconds(), io0 = write_bytes(pid);
    const auto beats0 = swarm.snapshot().heartbeats;
    t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(idle_s));
    const double window = since(t0);
    state.counters["idle_cpu_pct"] = 100 * (cpu_seconds(pid) - cpu0) / window;
    state.counters["client_cpu_pct"] = 100 * (own_cpu_seconds() - own0) / window;
    state.counters["store_write_kib_s"] = (write_bytes(pid) - io0) / 1024 / window;
    state.counters["heartbeats_per_s"] =
        static_cast<double>(swarm.snapshot().heartbeats - beats0) / window;
    const double rss_kib = static_cast<double>(status_kib(pid, "VmRSS"));
    state.counters["controller_rss_mib"] = rss_kib / 1024;
    state.counters["rss_per_session_kib"] = rss_kib / agents;
    state.counters["sessions_lost_idle"] = static_cast<double>(swarm.snapshot().sessions_lost);

    // The agents list through the API.
    {
      auto tls = tls::make_tls13_context();
      (void)tls::trust_only(tls, testing::read_text(controller.ca_cert()));
      const auto api = parse_host_port(controller.api()).value();
      double slowest = 0;
      for (const std::string& query : std::vector<std::string>{
               "?limit=100", "?limit=100&offset=" + std::to_string(agents - 100),
               "?status=online&limit=100"}) {
        std::vector<double> ms;
        for (int i = 0; i < 5; ++i) {
          HttpsRequest request;
          request.host = api.host;
          request.port = api.port;
          request.target = "/api/v1/agents" + query;
          request.bearer_token = controller.admin_token();
          request.verify_host_name = false;
          const auto start = Clock::now();
          auto response = https_request(request, tls);
          ms.push_back(since(start) * 1000);
          if (!response || response->status != 200) {
            state.SkipWithError("agents list failed");
            return;
          }
        }
        slowest = std::max(slowest, percentile(ms, 0.5));
      }
      state.counters["agents_list_ms"] = slowest;
    }

    // Fan-out of one signed action to every agent.
    say("fan-out to every agent");
    swarm.clear_result_times();
    const auto acked0 = swarm.snapshot().results_acked;
    const double fan_cpu0 = cpu_seconds(pid);
    t0 = Clock::now();
    const auto run = controller.cli({"action", "run", "network.status", "--label", "swarm",
                                     "--ttl", "10m", "--json"});
    const double submit_s = since(t0);
    if (run.exit_code != 0) {
      say("action run failed: " + run.err);
      state.SkipWithError("fan-out submit failed");
      break;
    }
    if (!wait_for(swarm, [&](auto& s) { return s.results_acked - acked0 >= agents; }, 600s,
                  "fan-out")) {
      state.SkipWithError("not every result was stored");
      break;
    }
    state.counters["fanout_all_s"] = since(t0);
    state.counters["fanout_submit_s"] = submit_s;
    state.counters["fanout_controller_cpu_s"] = cpu_seconds(pid) - fan_cpu0;
    std::vector<double> per_agent;
    for (const auto& at : swarm.result_times())
      if (at != Clock::time_point{})
        per_agent.push_back(std::chrono::duration<double, std::milli>(at - t0).count());
    state.counters["fanout_p50_ms"] = percentile(per_agent, 0.5);
    state.counters["fanout_p99_ms"] = percentile(per_agent, 0.99);

    // Reconnect storm.
    say("dropping every session at once");
    const auto before = swarm.snapshot();
    const double storm_cpu0 = cpu_seconds(pid);
    const double storm_client_cpu0 = own_cpu_seconds();
    t0 = Clock::now();
    swarm.drop_all();
    if (!wait_for(swarm,
                  [&](auto& s) { return s.accepted >= before.accepted + agents && s.sessions == agents; },
                  600s, "storm")) {
      state.SkipWithError("not every agent came back");
      break;
    }
    const auto after = swarm.snapshot();
    state.counters["storm_s"] = since(t0);
    // Both ends' CPU for the storm: on this machine they share two cores, so storm_s is about
    // (controller + swarm CPU) / 2; a controller with the cores to itself is bound by its own.
    state.counters["storm_controller_cpu_s"] = cpu_seconds(pid) - storm_cpu0;
    state.counters["storm_client_cpu_s"] = own_cpu_seconds() - storm_client_cpu0;
    state.counters["storm_resumed"] = static_cast<double>(after.resumed - before.resumed);
    state.counters["storm_failed_handshakes"] = static_cast<double>(
        after.handshake_failures - before.handshake_failures + after.connect_failures -
        before.connect_failures + after.refused - before.refused);
    state.SetIterationTime(connect_s);
  }
  swarm.stop();
  controller.stop_gracefully();
}

void register_sizes() {
  for (int n : sizes())
    benchmark::RegisterBenchmark("BM_ScaleAgents", BM_ScaleAgents)
        ->Arg(n)
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kSecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_sizes();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
