// Response-action performance against the standard tool for the same job, measured side by side
// in one run on the same process or namespace:
//   memory capture (ELF core + SHA-256) vs `gcore`, on a ~512 MiB process; also against what
//   bounds it (SHA-256 alone over as many bytes, one core) and against the same evidence made
//   by hand (`gcore`, then `openssl dgst -sha256` of its core);
//   quarantine apply+release through libnftables vs `nft -f` with the same rules.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/evidence_file.h"
#include "platform/firewall.h"
#include "platform/memory_capture.h"
#include "platform/yara_scanner.h"
#include "protocol/crypto.h"
#include "tests/integration/harness.h"
#include "tests/platform/capture_target_process.h"

using namespace riposte;
using namespace riposte::platform;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void BM_MemoryCaptureVsGcore(benchmark::State& state) {
  const int megabytes = static_cast<int>(state.range(0));
  const riposte::testing::CaptureTarget target(megabytes);
  const pid_t pid = target.pid();
  riposte::testing::TempDir dir;
  const ProcessRef ref = target.ref();
  std::vector<double> ours_s, gcore_s, by_hand_s;
  double bytes = 0;
  for (auto _ : state) {
    const auto core = dir.path() / "riposte.core";
    std::filesystem::remove(core);
    auto start = Clock::now();
    auto sink = agent::EvidenceFile::create(core).value();
    auto report = make_memory_capture()->capture(ref, *sink, {});
    auto sha = sink->finish();
    const double ours = seconds_since(start);
    ours_s.push_back(ours);
    if (!report || !sha) {
      state.SkipWithError("capture failed");
      break;
    }
    bytes = static_cast<double>(report->memory_bytes);

    start = Clock::now();
    const auto gcore_run = riposte::testing::run_command(
        {"gcore", "-o", (dir.path() / "gcore").string(), std::to_string(pid)},
        std::chrono::seconds(600));
    gcore_s.push_back(seconds_since(start));
    if (gcore_run.exit_code != 0) {
      state.SkipWithError("gcore failed");
      break;
    }
    const auto gcore_file = dir.path() / ("gcore." + std::to_string(pid));
    const auto dgst = riposte::testing::run_command({"openssl", "dgst", "-sha256", gcore_file.string()},
                                                    std::chrono::seconds(600));
    by_hand_s.push_back(seconds_since(start));
    std::filesystem::remove(gcore_file);
    if (dgst.exit_code != 0) {
      state.SkipWithError("openssl dgst failed");
      break;
    }
    state.SetIterationTime(ours);
  }
  // The floor for any capture that hashes as it goes: SHA-256 of as many bytes from memory.
  crypto::Sha256 sha;
  const std::vector<std::uint8_t> chunk(1 << 20, 0x5a);
  const auto hash_start = Clock::now();
  for (double done = 0; done < bytes; done += static_cast<double>(chunk.size()))
    sha.update(chunk.data(), chunk.size());
  benchmark::DoNotOptimize(sha.hex_digest());
  const double hash_s = seconds_since(hash_start);

  state.counters["riposte_MBps"] = bytes / median(ours_s) / 1e6;
  state.counters["gcore_MBps"] = bytes / median(gcore_s) / 1e6;
  state.counters["speedup_vs_gcore"] = median(gcore_s) / median(ours_s);
  state.counters["sha256_only_MBps"] = bytes / hash_s / 1e6;
  state.counters["speedup_vs_gcore_and_sha256"] = median(by_hand_s) / median(ours_s);
}

// The real 274-rule ReversingLabs YARA set (public), as RIPOSTE_CORPUS/yara/reversinglabs-all.yara.
// The corpus is data kept outside the repository; empty when RIPOSTE_CORPUS is not set.
std::string corpus_rules() {
  const char* dir = std::getenv("RIPOSTE_CORPUS");
  if (dir == nullptr || *dir == '\0') return {};
  return (std::filesystem::path(dir) / "yara" / "reversinglabs-all.yara").string();
}

using riposte::testing::YaraMatchSet;

YaraMatchSet our_matches(const YaraScanReport& report) {
  YaraMatchSet out;
  for (const auto& m : report.matches)
    for (const auto& str : m.strings) out.insert({m.rule + str.identifier, str.offset});
  return out;
}

void BM_YaraProcessScanVsCli(benchmark::State& state) {
  const auto rules_path = corpus_rules();
  if (rules_path.empty()) {
    state.SkipWithError("set RIPOSTE_CORPUS to the folder holding yara/reversinglabs-all.yara");
    return;
  }
  std::ifstream in(rules_path);
  if (!in) {
    state.SkipWithError(("rule corpus not found: " + rules_path).c_str());
    return;
  }
  const std::string source((std::istreambuf_iterator<char>(in)), {});
  auto rules = YaraRules::compile(source);
  if (!rules) {
    state.SkipWithError(rules.error().message.c_str());
    return;
  }
  const riposte::testing::CaptureTarget target(static_cast<int>(state.range(0)));
  const pid_t pid = target.pid();
  const ProcessRef ref = target.ref();
  std::vector<double> ours_s, cli_s;
  double bytes = 0;
  YaraMatchSet ours, theirs;
  for (auto _ : state) {
    auto start = Clock::now();
    auto report = make_yara_scanner()->scan_process(**rules, ref, {.timeout_seconds = 600});
    ours_s.push_back(seconds_since(start));
    if (!report) {
      state.SkipWithError(report.error().message.c_str());
      break;
    }
    bytes = static_cast<double>(report->bytes_scanned);
    ours = our_matches(*report);
    state.SetIterationTime(ours_s.back());

    start = Clock::now();
    const auto cli = riposte::testing::run_command({"yara", "-s", rules_path, std::to_string(pid)},
                                                   std::chrono::seconds(600));
    cli_s.push_back(seconds_since(start));
    theirs = riposte::testing::parse_yara_cli_matches(cli.out);
  }
  state.counters["rules"] = (*rules)->rule_count();
  state.counters["riposte_MBps"] = bytes / median(ours_s) / 1e6;
  state.counters["yara_cli_MBps"] = bytes / median(cli_s) / 1e6;
  state.counters["speedup_vs_yara_cli"] = median(cli_s) / median(ours_s);
  state.counters["string_matches"] = static_cast<double>(ours.size());
  state.counters["same_matches_as_cli"] = ours == theirs ? 1 : 0;
}

// A throwaway network namespace; the calling thread works inside it until destruction.
class ScratchNetns {
 public:
  ScratchNetns() : name_("rbench-" + std::to_string(::getpid())) {
    riposte::testing::run_command({"ip", "netns", "add", name_});
    original_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int fd = ::open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = fd >= 0 && ::setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) ::close(fd);
  }
  ~ScratchNetns() {
    if (original_ >= 0) {
      (void)::setns(original_, CLONE_NEWNET);
      ::close(original_);
    }
    riposte::testing::run_command({"ip", "netns", "del", name_});
  }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  int original_ = -1;
  bool ok_ = false;
};

void BM_QuarantineApplyVsNftCli(benchmark::State& state) {
  if (::geteuid() != 0) {
    state.SkipWithError("needs root for a network namespace");
    return;
  }
  std::vector<double> apply_ms, cycle_ms, cli_cycle_ms;
  {
    ScratchNetns ns;
    if (!ns.ok()) {
      state.SkipWithError("cannot enter a network namespace");
      return;
    }
    const QuarantineSpec spec{{"192.0.2.10", 7443, "tcp"}, {{"192.0.2.53", 53, "udp"}}};
    auto firewall = make_firewall();
    riposte::testing::TempDir dir;
    const auto script = dir.path() / "quarantine.nft";
    std::ofstream(script) << "table inet riposte_quarantine {\n"
                             "  chain input { type filter hook input priority -10; policy drop;\n"
                             "    iif lo accept\n    ip saddr 192.0.2.10 tcp sport 7443 accept\n"
                             "    ip saddr 192.0.2.53 udp sport 53 accept\n  }\n"
                             "  chain output { type filter hook output priority -10; policy drop;\n"
                             "    oif lo accept\n    ip daddr 192.0.2.10 tcp dport 7443 accept\n"
                             "    ip daddr 192.0.2.53 udp dport 53 accept\n  }\n}\n";
    for (auto _ : state) {
      auto start = Clock::now();
      if (!firewall->quarantine(spec)) {
        state.SkipWithError("quarantine failed");
        break;
      }
      const double applied = seconds_since(start) * 1e3;
      (void)firewall->release();
      const double cycle = seconds_since(start) * 1e3;
      apply_ms.push_back(applied);
      cycle_ms.push_back(cycle);
      state.SetIterationTime(applied / 1e3);

      // The CLI path: `nft -f` to apply, `nft delete table` to release, as a shell-out would.
      start = Clock::now();
      riposte::testing::run_command({"nft", "-f", script.string()});
      riposte::testing::run_command({"nft", "delete", "table", "inet", "riposte_quarantine"});
      cli_cycle_ms.push_back(seconds_since(start) * 1e3);
    }
  }
  state.counters["apply_median_ms"] = median(apply_ms);
  state.counters["apply_release_median_ms"] = median(cycle_ms);
  state.counters["nft_cli_apply_release_median_ms"] = median(cli_cycle_ms);
  state.counters["speedup_vs_nft_cli"] = median(cli_cycle_ms) / median(cycle_ms);
}

}  // namespace

BENCHMARK(BM_MemoryCaptureVsGcore)
    ->Arg(512)
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_YaraProcessScanVsCli)
    ->Arg(512)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_QuarantineApplyVsNftCli)
    ->Iterations(51)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
