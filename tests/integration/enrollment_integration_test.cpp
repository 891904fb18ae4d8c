// Real controller, real agents, real CLI over loopback: enrollment and the agents list.

#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;

TEST(EnrollmentIntegration, EnrolledAgentAppearsInAgentsListWithItsFacts) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  const auto id = controller.enroll_agent(state);
  auto agent = controller.start_agent(state, "agent.log");

  ASSERT_TRUE(wait_until([&] { return controller.agent(id)["status"] == "online"; }, 20s))
      << agent->log_text();
  const auto shown = controller.agent(id);
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  utsname uts{};
  ::uname(&uts);
  EXPECT_EQ(shown["hostname"], host);
  EXPECT_EQ(shown["kernel"], uts.release);
  EXPECT_EQ(shown["agent_version"], RIPOSTE_VERSION);
  EXPECT_EQ(shown["protocol_version"], 1);
  EXPECT_FALSE(shown["os"].get<std::string>().empty());
  EXPECT_TRUE(shown["connected_since"].is_string());
  EXPECT_NE(std::find(shown["capabilities"].begin(), shown["capabilities"].end(), "host.facts"),
            shown["capabilities"].end());

  // Heartbeats keep arriving (the test controller asks for one a second).
  const auto first_beat = shown["last_heartbeat"].get<std::string>();
  EXPECT_TRUE(
      wait_until([&] { return controller.agent(id)["last_heartbeat"] != first_beat; }, 10s));

  // The human-readable list names the agent; --json gives the same data.
  const auto table = controller.cli({"agents", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find(id), std::string::npos);
  EXPECT_NE(table.out.find("online"), std::string::npos);
  EXPECT_NE(table.out.find("LAST HEARTBEAT"), std::string::npos);
  const auto list = controller.cli_json({"agents", "list"});
  ASSERT_EQ(list["agents"].size(), 1u);
  EXPECT_EQ(list["agents"][0]["id"], id);

  // The private key stayed on the endpoint, readable only by its owner.
  EXPECT_EQ(
      std::filesystem::status(state / "agent.key").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(EnrollmentIntegration, UsedUpExpiredAndUnknownTokensAreRefused) {
  ControllerUnderTest controller;
  controller.start();
  auto enroll = [&](const std::string& token, const std::string& dir) {
    return run_command({bin("riposte-agent"), "enroll", "--controller", controller.api(), "--token",
                        token, "--ca-pin", controller.ca_fingerprint(), "--state-dir",
                        (controller.dir() / dir).string()});
  };
  const auto once = controller.create_enrollment_token(1, "1h");
  EXPECT_EQ(enroll(once, "a").exit_code, 0);
  const auto reused = enroll(once, "b");
  EXPECT_NE(reused.exit_code, 0);
  EXPECT_NE(reused.err.find("no uses left"), std::string::npos) << reused.err;
  EXPECT_FALSE(std::filesystem::exists(controller.dir() / "b" / "agent.json"));

  const auto short_lived = controller.create_enrollment_token(5, "1s");
  std::this_thread::sleep_for(1500ms);
  const auto late = enroll(short_lived, "c");
  EXPECT_NE(late.exit_code, 0);
  EXPECT_NE(late.err.find("expired"), std::string::npos) << late.err;

  const auto unknown = enroll("rpe_this_token_was_never_issued", "d");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("unknown enrollment token"), std::string::npos) << unknown.err;

  EXPECT_EQ(controller.cli_json({"agents", "list"})["agents"].size(), 1u);
}

TEST(EnrollmentIntegration, WrongCaPinRefusesTheControllerBeforeSendingTheToken) {
  ControllerUnderTest controller;
  controller.start();
  const auto token = controller.create_enrollment_token(1, "1h");
  const auto result = run_command({bin("riposte-agent"), "enroll", "--controller", controller.api(),
                                   "--token", token, "--ca-pin", "sha256:" + std::string(64, '0'),
                                   "--state-dir", (controller.dir() / "a").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("does not match --ca-pin"), std::string::npos) << result.err;
  // The token was not spent: the handshake failed before any request was sent.
  const auto retry = run_command({bin("riposte-agent"), "enroll", "--controller", controller.api(),
                                  "--token", token, "--ca-pin", controller.ca_fingerprint(),
                                  "--state-dir", (controller.dir() / "a").string()});
  EXPECT_EQ(retry.exit_code, 0) << retry.err;
}

TEST(EnrollmentIntegration, InitIsIdempotentAndRunReusesTheSameIdentity) {
  ControllerUnderTest controller;  // ran init once
  const auto again = run_command(
      {bin("riposte-controller"), "init", "--data-dir", controller.data_dir().string(), "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto report = nlohmann::json::parse(again.out);
  EXPECT_EQ(report["ca_fingerprint"], controller.ca_fingerprint());
  EXPECT_TRUE(report["created"].empty());
  EXPECT_FALSE(report.contains("admin_token"));

  controller.start();
  const auto state = controller.dir() / "agent";
  const auto id = controller.enroll_agent(state);
  controller.stop_gracefully();
  controller.start(/*same_ports=*/true);
  auto agent = controller.start_agent(state, "agent.log");
  ASSERT_TRUE(wait_until([&] { return controller.agent(id)["status"] == "online"; }, 20s))
      << agent->log_text();
}

TEST(EnrollmentIntegration, CliErrorsAreOneLineWithNonZeroExit) {
  ControllerUnderTest controller;
  controller.start();
  const auto wrong_token =
      run_command({bin("riposte"), "--server", "https://" + controller.api(), "--token", "rpt_bad",
                   "--ca", controller.ca_cert(), "agents", "list"});
  EXPECT_NE(wrong_token.exit_code, 0);
  EXPECT_NE(wrong_token.err.find("401"), std::string::npos) << wrong_token.err;
  EXPECT_EQ(std::count(wrong_token.err.begin(), wrong_token.err.end(), '\n'), 1);
  const auto unknown = controller.cli({"agents", "show", "00000000-0000-4000-8000-000000000000"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("404"), std::string::npos) << unknown.err;
  const auto no_server = run_command({bin("riposte"), "agents", "list"});
  EXPECT_NE(no_server.exit_code, 0);
}

}  // namespace
}  // namespace riposte::testing
