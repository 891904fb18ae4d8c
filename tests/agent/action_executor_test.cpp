// The executor with the real platform implementations: kinds and typed parameters in, typed
// results out, local policy first.

#include "agent/action_executor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/secure_file.h"
#include "common/utf8.h"
#include "protocol/action_kinds.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "tests/agent/real_platform.h"
#include "tests/netns.h"

namespace riposte::agent {
namespace {

namespace ak = action_kind;

class ExecutorTest : public ::testing::Test, protected RealPlatform {
 protected:
  void SetUp() override { executor = std::make_unique<ActionExecutor>(context()); }

  template <typename Params>
  proto::ActionResult run(std::string_view kind, const Params& params) {
    return executor->execute("act-" + std::to_string(++counter), std::string(kind),
                             params.SerializeAsString());
  }

  proto::ActionResult restore_from_vault(const std::string& vault_id) {
    proto::FileRestoreParams restore;
    restore.set_vault_id(vault_id);
    return run(ak::kFileRestore, restore);
  }

  pid_t spawn_sleep() {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::execlp("sleep", "sleep", "30", nullptr);
      ::_exit(127);
    }
    children.push_back(pid);
    ::usleep(50'000);
    return pid;
  }

  void TearDown() override {
    for (pid_t pid : children) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  std::unique_ptr<ActionExecutor> executor;
  std::vector<pid_t> children;
  int counter = 0;
};

// Whether `pid` runs `exe` (its exec done) within a few seconds.
bool wait_until_exec(pid_t pid, const std::filesystem::path& exe) {
  for (int i = 0; i < 200; ++i) {
    std::error_code ec;
    if (std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec) == exe)
      return true;
    ::usleep(10'000);
  }
  return false;
}

proto::ProcessRef ref(platform::ProcessControl& processes, pid_t pid) {
  proto::ProcessRef r;
  r.set_pid(pid);
  r.set_start_ticks(processes.inspect(pid)->start_ticks);
  return r;
}

TEST_F(ExecutorTest, UnknownKindIsRejectedAndBadParametersFail) {
  auto unknown = executor->execute("a1", "process.explode", "");
  EXPECT_EQ(unknown.status(), proto::ActionResult::STATUS_REJECTED);
  EXPECT_NE(unknown.message().find("unknown action kind"), std::string::npos);
  auto garbage = executor->execute("a2", std::string(ak::kProcessKill), "\xff\xff\xff");
  EXPECT_EQ(garbage.status(), proto::ActionResult::STATUS_FAILED);
  EXPECT_NE(garbage.message().find("ProcessKillParams"), std::string::npos) << garbage.message();
}

TEST_F(ExecutorTest, KillsARealProcessAndReportsWhatHappened) {
  const pid_t pid = spawn_sleep();
  proto::ProcessKillParams params;
  *params.mutable_target() = ref(*processes, pid);
  auto result = run(ak::kProcessKill, params);
  ASSERT_EQ(result.status(), proto::ActionResult::STATUS_SUCCEEDED) << result.message();
  proto::ProcessKillResult killed;
  ASSERT_TRUE(killed.ParseFromString(result.output()));
  ASSERT_EQ(killed.processes_size(), 1);
  EXPECT_EQ(killed.processes(0).outcome(), "terminated");
  EXPECT_EQ(killed.processes(0).pid(), pid);
  EXPECT_LE(result.started_at_unix_ms(), result.finished_at_unix_ms());
}

TEST_F(ExecutorTest, LocalPolicyRefusesInitAndTheAgentItself) {
  for (pid_t pid : {1, ::getpid()}) {
    proto::ProcessKillParams params;
    *params.mutable_target() = ref(*processes, pid);
    auto result = run(ak::kProcessKill, params);
    EXPECT_EQ(result.status(), proto::ActionResult::STATUS_REJECTED) << pid;
    EXPECT_NE(result.message().find("local policy"), std::string::npos) << result.message();
  }
}

// An alert names a thread id (a JVM worker): the kill acts on the process it belongs to and the
// result says which thread of which process was meant. A thread of the agent itself is still the
// agent: refused by the local policy, not slipped past it by its thread id.
TEST_F(ExecutorTest, AThreadIdActsOnItsProcessAndSaysSo) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execlp("python3", "python3", "-c",
             "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"
             "time.sleep(60)\n",
             nullptr);
    ::_exit(127);
  }
  children.push_back(pid);
  pid_t thread = 0;
  for (int i = 0; i < 300 && thread == 0; ++i) {
    ::usleep(10'000);
    std::error_code ec;
    for (const auto& t :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
      if (t.path().filename() != std::to_string(pid))
        thread = static_cast<pid_t>(std::stol(t.path().filename().string()));
    }
  }
  ASSERT_NE(thread, 0);
  proto::ProcessKillParams params;
  params.mutable_target()->set_pid(thread);
  params.mutable_target()->set_start_ticks(processes->inspect(pid)->start_ticks);
  auto result = run(ak::kProcessKill, params);
  ASSERT_EQ(result.status(), proto::ActionResult::STATUS_SUCCEEDED) << result.message();
  EXPECT_NE(result.message().find("thread " + std::to_string(thread)), std::string::npos)
      << result.message();
  EXPECT_NE(result.message().find("acted on process " + std::to_string(pid)), std::string::npos)
      << result.message();
  proto::ProcessKillResult killed;
  ASSERT_TRUE(killed.ParseFromString(result.output()));
  ASSERT_EQ(killed.processes_size(), 1);
  EXPECT_EQ(killed.processes(0).pid(), pid);

  std::thread agent_thread([] { ::usleep(500'000); });
  pid_t own = 0;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const auto id = static_cast<pid_t>(std::stol(t.path().filename().string()));
    if (id != ::getpid()) own = id;
  }
  ASSERT_NE(own, 0);
  proto::ProcessSignalParams suspend;
  suspend.mutable_target()->set_pid(own);
  suspend.mutable_target()->set_start_ticks(processes->inspect(::getpid())->start_ticks);
  auto refused = run(ak::kProcessSuspend, suspend);
  agent_thread.join();
  EXPECT_EQ(refused.status(), proto::ActionResult::STATUS_REJECTED) << refused.message();
  EXPECT_NE(refused.message().find("does not signal itself"), std::string::npos)
      << refused.message();
}

// A kernel thread has no image or script to hash or collect: file.hash and file.collect by
// process refuse it with the reason, as every process action does, rather than fail.
TEST_F(ExecutorTest, FileActionsOnAKernelThreadAreRefusedWithTheReason) {
  pid_t kernel_thread = 0;
  for (const auto& p : processes->list().value())
    if (p.kernel_thread && p.pid != 2) kernel_thread = p.pid;
  if (kernel_thread == 0) GTEST_SKIP() << "no kernel thread visible (a pid namespace)";
  proto::FileParams params;
  params.mutable_process()->set_pid(kernel_thread);
  params.mutable_process()->set_start_ticks(processes->inspect(kernel_thread)->start_ticks);
  for (std::string_view kind : {ak::kFileHash, ak::kFileCollect}) {
    auto result = run(kind, params);
    EXPECT_EQ(result.status(), proto::ActionResult::STATUS_REJECTED)
        << kind << ": " << result.message();
    EXPECT_NE(result.message().find("kernel thread"), std::string::npos) << result.message();
  }
}

// The quarantine keeps every address the controller may answer at (all A and AAAA records the
// link resolved, the live session's peer), then proves the controller still answers over the
// session. Without an answer it undoes itself: a host cut off from every controller could never
// be released by one. Real nftables rules, in a network namespace made for the test.
TEST_F(ExecutorTest, AQuarantineThatCutsTheControllerOffIsRolledBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  const auto ns = "riposte-exec-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("ip netns add " + ns).c_str()), 0);
  struct Cleanup {
    std::string ns;
    ~Cleanup() {
      if (std::system(("ip netns del " + ns).c_str()) != 0)
        ADD_FAILURE() << "netns " << ns << " left";
    }
  } cleanup{ns};
  bool answers = false;
  int asked = 0;
  auto ctx = context(7443);
  ctx.controller_addresses = [] {
    return std::vector<std::string>{"127.0.0.1", "192.0.2.10", "2001:db8::10"};
  };
  ctx.controller_round_trip = [&](std::chrono::milliseconds) {
    ++asked;
    return answers;
  };
  ActionExecutor in_quarantine(ctx);
  proto::QuarantineParams params;
  const auto apply = [&] {
    return in_quarantine.execute("q-" + std::to_string(++counter),
                                 std::string(ak::kNetworkQuarantine), params.SerializeAsString());
  };
  const auto table = [&] {
    FILE* p = ::popen(("ip netns exec " + ns + " nft list ruleset 2>&1").c_str(), "r");
    std::string out;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof(buffer), p)) > 0;) out.append(buffer, n);
    ::pclose(p);
    return out;
  };

  const auto cut_off = testing::in_netns(ns, apply);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(cut_off.status(), proto::ActionResult::STATUS_FAILED);
  EXPECT_NE(cut_off.message().find("quarantine reverted: controller unreachable"),
            std::string::npos)
      << cut_off.message();
  EXPECT_EQ(table().find("riposte_quarantine"), std::string::npos) << "rolled back: " << table();
  EXPECT_FALSE(RealPlatform::quarantine.current().has_value()) << "no intent left to restore";

  answers = true;
  const auto held = testing::in_netns(ns, apply);
  ASSERT_EQ(held.status(), proto::ActionResult::STATUS_SUCCEEDED) << held.message();
  const auto rules = table();
  for (const auto* address : {"127.0.0.1", "192.0.2.10", "2001:db8::10"})
    EXPECT_NE(rules.find(address), std::string::npos) << address << " kept reachable:\n" << rules;
  EXPECT_TRUE(testing::in_netns(ns, [&] { return RealPlatform::quarantine.release().ok(); }));
  EXPECT_EQ(table().find("riposte_quarantine"), std::string::npos);
}

TEST_F(ExecutorTest, CollectsAndQuarantinesAFileThenRestoresIt) {
  const auto path = dir.path() / "dropper.sh";
  std::ofstream(path) << "#!/bin/sh\necho pwned\n";
  proto::FileParams params;
  params.set_path(path.string());

  auto collected = run(ak::kFileCollect, params);
  ASSERT_EQ(collected.status(), proto::ActionResult::STATUS_SUCCEEDED) << collected.message();
  proto::FileResult c;
  ASSERT_TRUE(c.ParseFromString(collected.output()));
  EXPECT_EQ(c.sha256(), crypto::sha256_hex("#!/bin/sh\necho pwned\n"));
  EXPECT_EQ(read_file(c.evidence_path()).value(), "#!/bin/sh\necho pwned\n");

  auto vaulted = run(ak::kFileQuarantine, params);
  ASSERT_EQ(vaulted.status(), proto::ActionResult::STATUS_SUCCEEDED) << vaulted.message();
  proto::FileResult v;
  ASSERT_TRUE(v.ParseFromString(vaulted.output()));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(v.sha256(), c.sha256());

  const auto restored = restore_from_vault(v.vault_id());
  ASSERT_EQ(restored.status(), proto::ActionResult::STATUS_SUCCEEDED) << restored.message();
  EXPECT_EQ(read_file(path).value(), "#!/bin/sh\necho pwned\n");
}

TEST_F(ExecutorTest, MemoryCaptureWritesEvidenceWithItsHash) {
  const pid_t pid = spawn_sleep();
  proto::MemoryCaptureParams params;
  *params.mutable_target() = ref(*processes, pid);
  auto result = run(ak::kMemoryCapture, params);
  ASSERT_EQ(result.status(), proto::ActionResult::STATUS_SUCCEEDED) << result.message();
  proto::MemoryCaptureResult capture;
  ASSERT_TRUE(capture.ParseFromString(result.output()));
  EXPECT_EQ(capture.sha256(), crypto::sha256_hex(read_file(capture.evidence_path()).value()));
  EXPECT_GT(capture.mappings(), 0);
}

TEST_F(ExecutorTest, QuarantineWithABadAllowListIsRejectedBeforeAnyRuleChanges) {
  proto::QuarantineParams params;
  auto* peer = params.add_allow();
  peer->set_address("8.8.8.8; flush ruleset");
  peer->set_protocol("any");
  auto result = run(ak::kNetworkQuarantine, params);
  EXPECT_EQ(result.status(), proto::ActionResult::STATUS_REJECTED);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "quarantine.json"));
  auto status = run(ak::kNetworkStatus, proto::Empty{});
  proto::NetworkStatusResult s;
  ASSERT_TRUE(s.ParseFromString(status.output()));
  EXPECT_FALSE(s.quarantined());
}

TEST_F(ExecutorTest, YaraCompileErrorsComeBackWithTheLine) {
  proto::YaraScanParams params;
  params.set_rules("rule a {\n condition: $nope\n}\n");
  params.add_paths(dir.path().string());
  auto result = run(ak::kYaraScan, params);
  EXPECT_EQ(result.status(), proto::ActionResult::STATUS_FAILED);
  EXPECT_NE(result.message().find("line "), std::string::npos) << result.message();
}

// Any unprivileged user can name a process, or a file, with bytes that are not UTF-8. Every result
// still parses as Protobuf requires (the controller would otherwise see nothing at all), names
// them in wire text, and a path in wire text sent back reaches the same file.
TEST_F(ExecutorTest, NamesThatAreNotUtf8ComeBackAsWireTextAndPathsWorkBothWays) {
  const std::string kFffd = "\xEF\xBF\xBD";
  testing::TempDir world;  // readable by nobody's process, as /tmp is
  std::filesystem::permissions(world.path(), std::filesystem::perms(0755));
  const auto exe = world.path() /
                   "sl\xff"
                   "eep";
  std::filesystem::copy_file("/bin/sleep", exe);
  std::filesystem::permissions(exe, std::filesystem::perms(0755));
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);  // nobody
    ::execl(exe.c_str(), "\xfe-miner", "30", nullptr);
    ::_exit(127);
  }
  children.push_back(pid);
  ASSERT_TRUE(wait_until_exec(pid, exe));

  // process.list: the whole list, the odd process in it.
  auto listed = run(ak::kProcessList, proto::ProcessListParams{});
  ASSERT_EQ(listed.status(), proto::ActionResult::STATUS_SUCCEEDED) << listed.message();
  proto::ProcessListResult list;
  ASSERT_TRUE(list.ParseFromString(listed.output())) << "a strict parse, as the controller's";
  const proto::ProcessEntry* odd = nullptr;
  for (const auto& p : list.processes())
    if (p.pid() == pid) odd = &p;
  ASSERT_NE(odd, nullptr) << list.processes_size() << " processes, not the odd one";
  EXPECT_EQ(odd->name(), "sl" + kFffd + "ffeep");
  EXPECT_EQ(odd->exe(), world.path().string() + "/sl" + kFffd + "ffeep");
  EXPECT_TRUE(odd->cmdline().starts_with(kFffd + "fe-miner 30")) << odd->cmdline();
  EXPECT_EQ(odd->uid(), 65534u);
  EXPECT_GT(list.processes_size(), 3);

  // file.hash of the path as listed: the same bytes as /bin/sleep.
  proto::FileParams by_path;
  by_path.set_path(odd->exe());
  auto hashed = run(ak::kFileHash, by_path);
  ASSERT_EQ(hashed.status(), proto::ActionResult::STATUS_SUCCEEDED) << hashed.message();
  proto::FileResult h;
  ASSERT_TRUE(h.ParseFromString(hashed.output()));
  EXPECT_EQ(h.sha256(), crypto::sha256_hex(read_file("/bin/sleep").value()));
  EXPECT_EQ(h.path(), odd->exe());
  // ...and of the process's executable, named by the process.
  proto::FileParams by_process;
  *by_process.mutable_process() = ref(*processes, pid);
  auto image = run(ak::kFileHash, by_process);
  ASSERT_EQ(image.status(), proto::ActionResult::STATUS_SUCCEEDED) << image.message();
  proto::FileResult i;
  ASSERT_TRUE(i.ParseFromString(image.output()));
  EXPECT_EQ(i.sha256(), h.sha256());

  // A file named bad\xff\xfe.txt: collected, quarantined and restored by its wire-text path.
  const auto bad = world.path() / "bad\xff\xfe.txt";
  std::ofstream(bad) << "MALWARE-MARKER-7f3a\n";
  proto::FileParams file;
  file.set_path(to_wire_text(bad.string()));
  EXPECT_EQ(file.path(), world.path().string() + "/bad" + kFffd + "ff" + kFffd + "fe.txt");
  auto collected = run(ak::kFileCollect, file);
  ASSERT_EQ(collected.status(), proto::ActionResult::STATUS_SUCCEEDED) << collected.message();
  auto vaulted = run(ak::kFileQuarantine, file);
  ASSERT_EQ(vaulted.status(), proto::ActionResult::STATUS_SUCCEEDED) << vaulted.message();
  EXPECT_FALSE(std::filesystem::exists(bad));
  proto::FileResult v;
  ASSERT_TRUE(v.ParseFromString(vaulted.output()));
  EXPECT_EQ(v.path(), file.path());
  const auto restored = restore_from_vault(v.vault_id());
  ASSERT_EQ(restored.status(), proto::ActionResult::STATUS_SUCCEEDED) << restored.message();
  EXPECT_EQ(read_file(bad).value(), "MALWARE-MARKER-7f3a\n");

  // yara.scan of the directory: the match names the file in wire text.
  proto::YaraScanParams scan;
  scan.set_rules("rule Marker { strings: $m = \"MALWARE-MARKER-7f3a\" condition: $m }");
  scan.add_paths(world.path().string());
  auto scanned = run(ak::kYaraScan, scan);
  ASSERT_EQ(scanned.status(), proto::ActionResult::STATUS_SUCCEEDED) << scanned.message();
  proto::YaraScanResult matches;
  ASSERT_TRUE(matches.ParseFromString(scanned.output()));
  ASSERT_EQ(matches.matches_size(), 1);
  EXPECT_EQ(matches.matches(0).target(), file.path());

  // An error quoting such a path is wire text too, and an escape typed wrong is refused.
  proto::FileParams missing;
  missing.set_path(to_wire_text((world.path() / "gone\xff").string()));
  auto failed = run(ak::kFileHash, missing);
  EXPECT_EQ(failed.status(), proto::ActionResult::STATUS_FAILED);
  proto::ActionResult reparsed;
  ASSERT_TRUE(reparsed.ParseFromString(failed.SerializeAsString()));
  EXPECT_NE(failed.message().find("gone" + kFffd), std::string::npos) << failed.message();
  proto::FileParams broken;
  broken.set_path(world.path().string() + "/x" + kFffd + "zz");
  auto refused = run(ak::kFileHash, broken);
  EXPECT_EQ(refused.status(), proto::ActionResult::STATUS_FAILED);
  EXPECT_NE(refused.message().find("not wire text"), std::string::npos) << refused.message();
  // The error quotes the name as sent, not escaped once more.
  EXPECT_NE(refused.message().find("/x" + kFffd + "zz"), std::string::npos) << refused.message();
  // A decoy really named "x\uFFFDff" beside "x\xff": each name reaches its own file.
  std::ofstream(world.path() / "x\xff") << "the real one";
  std::ofstream(world.path() / ("x" + kFffd + "ff")) << "the decoy";
  for (const auto& [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"x\xff", "the real one"}, {"x" + kFffd + "ff", "the decoy"}}) {
    proto::FileParams p;
    p.set_path(to_wire_text((world.path() / name).string()));
    auto r = run(ak::kFileHash, p);
    ASSERT_EQ(r.status(), proto::ActionResult::STATUS_SUCCEEDED) << r.message();
    proto::FileResult f;
    ASSERT_TRUE(f.ParseFromString(r.output()));
    EXPECT_EQ(f.sha256(), crypto::sha256_hex(content)) << name;
  }
  proto::FileParams nul;
  nul.set_path(world.path().string() + "/x" + kFffd + "ff" + kFffd + "00junk");
  auto no_nul = run(ak::kFileHash, nul);
  EXPECT_EQ(no_nul.status(), proto::ActionResult::STATUS_FAILED);
  EXPECT_NE(no_nul.message().find("NUL"), std::string::npos) << no_nul.message();
}

// A process whose command line is 1 MB of bytes that are not UTF-8 (5.5 MB as wire text, over a
// frame) once made a process.list the agent could never deliver: it sent it again at every
// reconnect, offline for good. Each text is now cut, and the list arrives.
TEST_F(ExecutorTest, AHugeCommandLineIsCutSoTheResultFitsInAFrame) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    static std::string huge(100'000, '\xff');
    // A shell that waits on a child keeps its own command line: "sh -c 'sleep 30' sh \xff...".
    std::vector<char*> argv{const_cast<char*>("sh"), const_cast<char*>("-c"),
                            const_cast<char*>("sleep 30"), const_cast<char*>("sh")};
    for (int i = 0; i < 10; ++i) argv.push_back(huge.data());
    argv.push_back(nullptr);
    ::execv("/bin/sh", argv.data());
    ::_exit(127);
  }
  children.push_back(pid);
  ::usleep(100'000);
  auto listed = run(ak::kProcessList, proto::ProcessListParams{});
  ASSERT_EQ(listed.status(), proto::ActionResult::STATUS_SUCCEEDED) << listed.message();
  EXPECT_LT(listed.ByteSizeLong(), 3u << 20);
  proto::ProcessListResult list;
  ASSERT_TRUE(list.ParseFromString(listed.output()));
  bool found = false;
  for (const auto& p : list.processes()) {
    if (p.pid() != pid) continue;
    found = true;
    EXPECT_LE(p.cmdline().size(), 32u << 10);
    EXPECT_TRUE(
        p.cmdline().starts_with("sh -c sleep 30 sh \xEF\xBF\xBD"
                                "ff"))
        << p.cmdline().substr(0, 40);
  }
  EXPECT_TRUE(found);
}

TEST_F(ExecutorTest, EveryDeclaredKindHasAHandler) {
  for (auto kind : ak::kAll) {
    auto result = executor->execute("probe", std::string(kind), "\xff");
    EXPECT_EQ(result.message().find("unknown action kind"), std::string::npos) << kind;
  }
}

}  // namespace
}  // namespace riposte::agent
