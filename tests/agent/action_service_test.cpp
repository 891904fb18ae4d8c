// The agent's checks before anything runs, with real processes as targets: each bad action is
// refused with its own reason and the target process still lives afterwards.

#include "agent/action_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <thread>

#include "protocol/action_kinds.h"
#include "protocol/action_signing.h"
#include "protocol/actions.pb.h"
#include "tests/agent/real_platform.h"

namespace riposte::agent {
namespace {

using namespace std::chrono_literals;
using Refusal = proto::ActionResult;

constexpr const char* kAgentId = "11111111-2222-3333-4444-555555555555";

class ActionServiceTest : public ::testing::Test, protected RealPlatform {
 protected:
  void SetUp() override {
    controller_key = crypto::generate_ed25519().value();
    executor = std::make_unique<ActionExecutor>(context());
    start_service();
  }

  // (Re)opens journal, verifier and service on the same state: a restart of the agent.
  void start_service(std::set<std::string> allowed = {}) {
    service.reset();
    verifier.reset();
    journal.reset();
    journal = ActionJournal::open(dir.path() / "actions.db").value();
    verifier = ActionVerifier::create({kAgentId, crypto::public_key_pem(controller_key.get()), 30s,
                                       std::move(allowed)},
                                      *journal, clock)
                   .value();
    service = std::make_unique<ActionService>(io, *verifier, *journal, *executor, clock,
                                              ActionServiceOptions{});
    service->set_sender([this](proto::Envelope e) {
      if (e.has_action_result()) results.push_back(e.action_result());
      return true;
    });
  }

  void TearDown() override {
    service.reset();
    for (pid_t pid : children) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  pid_t spawn_sleep() {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::execlp("sleep", "sleep", "60", nullptr);
      ::_exit(127);
    }
    children.push_back(pid);
    ::usleep(50'000);
    return pid;
  }

  bool alive(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == 0; }

  proto::ActionSpec kill_spec(pid_t pid) {
    proto::ProcessKillParams params;
    params.mutable_target()->set_pid(pid);
    params.mutable_target()->set_start_ticks(processes->inspect(pid)->start_ticks);
    params.set_grace_ms(500);
    proto::ActionSpec spec;
    spec.set_action_id(crypto::random_uuid());
    spec.set_target_agent_id(kAgentId);
    spec.set_kind(std::string(action_kind::kProcessKill));
    spec.set_parameters(params.SerializeAsString());
    spec.set_issued_at_unix_ms(clock.now_unix_ms());
    spec.set_expires_at_unix_ms(clock.now_unix_ms() + 60'000);
    spec.set_requester("alice");
    return spec;
  }

  proto::ActionRequest signed_by(const proto::ActionSpec& spec, EVP_PKEY* key) {
    return sign_action(spec, key).value();
  }

  // Submits and waits for the one result it produces.
  proto::ActionResult submit(const proto::ActionRequest& request) {
    results.clear();
    service->submit(request);
    // Workers post the result back to the io thread; poll it until it arrives.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (results.empty() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.poll();
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? proto::ActionResult{} : results.back();
  }

  crypto::PkeyPtr controller_key;
  std::unique_ptr<ActionExecutor> executor;
  boost::asio::io_context io;
  std::unique_ptr<ActionJournal> journal;
  std::unique_ptr<ActionVerifier> verifier;
  std::unique_ptr<ActionService> service;
  std::vector<proto::ActionResult> results;
  std::vector<pid_t> children;
};

TEST_F(ActionServiceTest, ValidActionRunsAndKillsTheTarget) {
  const pid_t target = spawn_sleep();
  const auto result = submit(signed_by(kill_spec(target), controller_key.get()));
  EXPECT_EQ(result.status(), proto::ActionResult::STATUS_SUCCEEDED) << result.message();
  EXPECT_FALSE(alive(target));
}

TEST_F(ActionServiceTest, TamperedActionIsRefusedAndNothingRuns) {
  const pid_t target = spawn_sleep();
  auto request = signed_by(kill_spec(target), controller_key.get());
  // One byte of the signed bytes changed: the requester's name.
  auto& bytes = *request.mutable_action_spec();
  const auto at = bytes.find("alice");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'm';
  const auto result = submit(request);
  EXPECT_EQ(result.status(), proto::ActionResult::STATUS_REJECTED);
  EXPECT_EQ(result.refusal(), Refusal::REFUSAL_BAD_SIGNATURE);
  EXPECT_NE(result.message().find("bad signature"), std::string::npos);
  EXPECT_TRUE(alive(target));
}

TEST_F(ActionServiceTest, ActionSignedByAnotherKeyIsRefused) {
  const pid_t target = spawn_sleep();
  auto other = crypto::generate_ed25519().value();
  const auto result = submit(signed_by(kill_spec(target), other.get()));
  EXPECT_EQ(result.refusal(), Refusal::REFUSAL_BAD_SIGNATURE);
  EXPECT_TRUE(alive(target));
}

TEST_F(ActionServiceTest, ExpiredActionIsRefusedBeyondTheClockSkew) {
  const pid_t target = spawn_sleep();
  auto spec = kill_spec(target);
  spec.set_expires_at_unix_ms(clock.now_unix_ms() - 31'000);  // skew allowance is 30 s
  const auto result = submit(signed_by(spec, controller_key.get()));
  EXPECT_EQ(result.refusal(), Refusal::REFUSAL_EXPIRED);
  EXPECT_NE(result.message().find("expired"), std::string::npos);
  EXPECT_TRUE(alive(target));

  // Within the skew allowance it still runs: clocks a few seconds apart must not block response.
  spec = kill_spec(target);
  spec.set_expires_at_unix_ms(clock.now_unix_ms() - 5'000);
  EXPECT_EQ(submit(signed_by(spec, controller_key.get())).status(),
            proto::ActionResult::STATUS_SUCCEEDED);
  EXPECT_FALSE(alive(target));
}

TEST_F(ActionServiceTest, ActionForAnotherAgentIsRefused) {
  const pid_t target = spawn_sleep();
  auto spec = kill_spec(target);
  spec.set_target_agent_id("99999999-2222-3333-4444-555555555555");
  const auto result = submit(signed_by(spec, controller_key.get()));
  EXPECT_EQ(result.refusal(), Refusal::REFUSAL_WRONG_AGENT);
  EXPECT_TRUE(alive(target));
}

TEST_F(ActionServiceTest, ReplayedActionIdIsRefusedEvenAfterARestart) {
  const pid_t first = spawn_sleep();
  const auto spec = kill_spec(first);
  const auto request = signed_by(spec, controller_key.get());
  ASSERT_EQ(submit(request).status(), proto::ActionResult::STATUS_SUCCEEDED);

  // The same bytes again.
  EXPECT_EQ(submit(request).refusal(), Refusal::REFUSAL_REPLAYED);
  // A validly signed action reusing the id, aimed at a live process: refused, and it lives.
  const pid_t second = spawn_sleep();
  auto reuse = kill_spec(second);
  reuse.set_action_id(spec.action_id());
  EXPECT_EQ(submit(signed_by(reuse, controller_key.get())).refusal(), Refusal::REFUSAL_REPLAYED);
  EXPECT_TRUE(alive(second));

  start_service();  // agent restart: the journal remembers
  EXPECT_EQ(submit(signed_by(reuse, controller_key.get())).refusal(), Refusal::REFUSAL_REPLAYED);
  EXPECT_TRUE(alive(second));
}

TEST_F(ActionServiceTest, KindNotAllowedByLocalConfigurationIsRefused) {
  start_service({"process.list", "host.facts"});
  const pid_t target = spawn_sleep();
  const auto result = submit(signed_by(kill_spec(target), controller_key.get()));
  EXPECT_EQ(result.refusal(), Refusal::REFUSAL_KIND_NOT_ALLOWED);
  EXPECT_TRUE(alive(target));
  // This refusal is journaled (the id was admitted) and waits for the controller's ack.
  EXPECT_EQ(journal->unacknowledged_results().value().size(), 1u);
}

TEST_F(ActionServiceTest, SafetyPolicyRefusesKillingInit) {
  auto spec = kill_spec(::getpid());
  proto::ProcessKillParams params;
  params.mutable_target()->set_pid(1);
  params.mutable_target()->set_start_ticks(processes->inspect(1)->start_ticks);
  spec.set_parameters(params.SerializeAsString());
  const auto result = submit(signed_by(spec, controller_key.get()));
  EXPECT_EQ(result.status(), proto::ActionResult::STATUS_REJECTED);
  EXPECT_EQ(result.refusal(), Refusal::REFUSAL_SAFETY_POLICY);
}

TEST_F(ActionServiceTest, ResultsStayInTheSpoolUntilAcknowledgedAndInterruptedActionsFail) {
  const pid_t target = spawn_sleep();
  const auto spec = kill_spec(target);
  ASSERT_EQ(submit(signed_by(spec, controller_key.get())).status(),
            proto::ActionResult::STATUS_SUCCEEDED);
  auto spooled = journal->unacknowledged_results().value();
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_EQ(spooled[0].action_id(), spec.action_id());
  service->result_acknowledged(spec.action_id());
  EXPECT_TRUE(journal->unacknowledged_results().value().empty());

  // An action admitted but never finished (the agent died mid-way) is reported failed, not re-run.
  ASSERT_TRUE(
      journal
          ->admit("interrupted-1", "process.kill", clock.now_unix_ms() + 1000, clock.now_unix_ms())
          .value());
  EXPECT_EQ(journal->recover_interrupted(clock.now_unix_ms()).value(), 1);
  spooled = journal->unacknowledged_results().value();
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_EQ(spooled[0].status(), proto::ActionResult::STATUS_FAILED);
  EXPECT_NE(spooled[0].message().find("not re-run"), std::string::npos);
}

}  // namespace
}  // namespace riposte::agent

namespace riposte::agent {
namespace {

TEST_F(ActionServiceTest, FullEvidenceSpoolRefusesCollectingMoreAndSaysSo) {
  // Evidence of an earlier action still waiting for upload fills most of a 2 MiB spool.
  ActionServiceOptions options;
  options.spool_limit_bytes = 2 << 20;
  service = std::make_unique<ActionService>(io, *verifier, *journal, *executor, clock, options);
  proto::ActionResult earlier;
  earlier.set_action_id("earlier");
  PendingUpload waiting{"earlier", {}, dir.path() / "evidence" / "earlier.core"};
  waiting.evidence.set_sha256(std::string(64, 'a'));
  waiting.evidence.set_size(3 << 19);  // 1.5 MiB
  ASSERT_TRUE(journal->finish(earlier, {waiting}));
  EXPECT_EQ(service->evidence_budget(), 1u << 19);

  ActionExecutor bounded(context(7443, [this] { return service->evidence_budget(); }));
  const auto wanted = dir.path() / "suspicious.bin";
  std::ofstream(wanted) << "evidence";
  proto::FileParams params;
  params.set_path(wanted.string());
  const auto result = bounded.execute("collect-1", "file.collect", params.SerializeAsString());
  EXPECT_EQ(result.status(), proto::ActionResult::STATUS_REJECTED);
  EXPECT_EQ(result.refusal(), proto::ActionResult::REFUSAL_SPOOL_FULL);
  EXPECT_NE(result.message().find("spool is full"), std::string::npos) << result.message();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "evidence" / "collect-1.collected"));

  // Once the earlier upload is done, there is room again.
  ASSERT_TRUE(journal->remove_upload(std::string(64, 'a'), "earlier"));
  const auto after = bounded.execute("collect-2", "file.collect", params.SerializeAsString());
  EXPECT_EQ(after.status(), proto::ActionResult::STATUS_SUCCEEDED) << after.message();
  ASSERT_EQ(after.evidence_size(), 1);
  EXPECT_EQ(after.evidence(0).name(), "collect-2.collected");
}

}  // namespace
}  // namespace riposte::agent
