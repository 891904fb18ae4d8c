// The executor with the real platform implementations: kinds and typed parameters in, typed
// results out, local policy first.

#include "agent/action_executor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "common/secure_file.h"
#include "protocol/action_kinds.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "tests/agent/real_platform.h"

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

  proto::FileRestoreParams restore;
  restore.set_vault_id(v.vault_id());
  auto restored = run(ak::kFileRestore, restore);
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

TEST_F(ExecutorTest, EveryDeclaredKindHasAHandler) {
  for (auto kind : ak::kAll) {
    auto result = executor->execute("probe", std::string(kind), "\xff");
    EXPECT_EQ(result.message().find("unknown action kind"), std::string::npos) << kind;
  }
}

}  // namespace
}  // namespace riposte::agent
