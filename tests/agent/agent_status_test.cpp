#include "agent/agent_status.h"

#include <gtest/gtest.h>

#include "agent/agent_state.h"
#include "agent/quarantine_keeper.h"
#include "common/service_status.h"
#include "tests/test_dir.h"

namespace riposte::agent {
namespace {

// Stands in for the kernel: these tests read the state files, never the host's firewall.
class IntentOnlyFirewall final : public platform::Firewall {
 public:
  Status quarantine(const platform::QuarantineSpec&) override {
    on = true;
    return ok_status();
  }
  Status release() override {
    on = false;
    return ok_status();
  }
  Result<platform::EnforcedQuarantine> enforced() override {
    platform::EnforcedQuarantine state;
    state.present = on;
    if (on) state.hooks = {"input", "output", "forward"};
    return state;
  }
  bool on = false;
};

AgentState enrolled_state(const std::filesystem::path& dir) {
  AgentState state;
  state.dir = dir;
  state.agent_id = "7c1f0b7e-agent";
  state.gateway = HostPort{"10.0.0.5", 7443};
  state.controller_api = "10.0.0.5:8443";
  state.ca_fingerprint = "sha256:00";
  state.key_pem = state.certificate_pem = state.ca_certificate_pem = state.action_public_key_pem =
      "pem";
  return state;
}

TEST(AgentStatus, NotEnrolledIsUnhealthyAndSaysHowToEnroll) {
  testing::TempDir dir;
  const auto health = agent_health(dir.path());
  EXPECT_FALSE(health.healthy);
  EXPECT_EQ(health.report["enrolled"], false);
  EXPECT_EQ(health.report["running"], false);
  EXPECT_NE(render_agent_health(health.report).find("riposte-agent enroll"), std::string::npos);
}

TEST(AgentStatus, RunningConnectedAndQuarantined) {
  testing::TempDir dir;
  ASSERT_TRUE(save_agent_state(enrolled_state(dir.path())));
  ManualClock clock(1'800'000'000'000);
  ServiceStatus status(dir.path() / ServiceStatus::kFileName, clock);  // this process "runs" it
  ASSERT_TRUE(status.begin());
  status.set("connected", true);
  status.set("connected_since", "2027-01-15T08:00:00.000Z");
  status.set("connected_to", "10.0.0.6:7443");  // failed over from its enrolled gateway
  IntentOnlyFirewall firewall;
  QuarantineKeeper keeper(firewall, dir.path() / kQuarantineFile, clock);
  ASSERT_TRUE(keeper.quarantine({{"10.0.0.5", 7443, "tcp"}, {}}, 1'800'000'600'000));

  const auto health = agent_health(dir.path());
  EXPECT_TRUE(health.healthy);
  EXPECT_EQ(health.report["agent_id"], "7c1f0b7e-agent");
  EXPECT_EQ(health.report["gateway"], "10.0.0.5:7443");
  EXPECT_EQ(health.report["connected"], true);
  EXPECT_EQ(health.report["quarantined"], true);
  EXPECT_EQ(health.report["quarantine_release_at"], "2027-01-15T08:10:00.000Z");
  EXPECT_EQ(health.report["connected_to"], "10.0.0.6:7443");
  const auto text = render_agent_health(health.report);
  EXPECT_NE(text.find("quarantined : YES, until 2027-01-15T08:10:00.000Z"), std::string::npos)
      << text;
  EXPECT_NE(text.find("connected   : yes, to 10.0.0.6:7443 since"), std::string::npos) << text;

  // Read from the kernel too: in force while it holds the table; NOT ENFORCED (and unhealthy)
  // once it is gone, whatever the intent file says.
  const auto kernel = agent_health(dir.path(), &firewall);
  EXPECT_TRUE(kernel.healthy);
  EXPECT_NE(render_agent_health(kernel.report).find("(kernel drops input, output, forward)"),
            std::string::npos)
      << render_agent_health(kernel.report);
  firewall.on = false;  // `nft flush ruleset`, say
  const auto flushed = agent_health(dir.path(), &firewall);
  EXPECT_FALSE(flushed.healthy);
  EXPECT_EQ(flushed.report["quarantined"], false);
  EXPECT_EQ(flushed.report["quarantine_intended"], true);
  EXPECT_NE(render_agent_health(flushed.report).find("quarantined : NOT ENFORCED"),
            std::string::npos)
      << render_agent_health(flushed.report);
  firewall.on = true;

  // Stopped: neither running nor connected, whatever the last connection state written said.
  status.end("exited");
  const auto stopped = agent_health(dir.path());
  EXPECT_FALSE(stopped.healthy);
  EXPECT_EQ(stopped.report["connected"], false);
  EXPECT_TRUE(stopped.report["connected_to"].is_null());
  EXPECT_EQ(stopped.report["quarantined"], true);
}

TEST(AgentStatus, DisconnectedShowsWhyAndLastError) {
  testing::TempDir dir;
  ASSERT_TRUE(save_agent_state(enrolled_state(dir.path())));
  ManualClock clock(1'800'000'000'000);
  ServiceStatus status(dir.path() / ServiceStatus::kFileName, clock);
  ASSERT_TRUE(status.begin());
  status.set("connected", false);
  status.set("last_disconnect", "certificate revoked");
  status.record_error("cannot open actions.db: disk I/O error");
  const auto health = agent_health(dir.path());
  EXPECT_FALSE(health.healthy);
  const auto text = render_agent_health(health.report);
  EXPECT_NE(text.find("connected   : no (certificate revoked)"), std::string::npos) << text;
  EXPECT_NE(text.find("last error  : cannot open actions.db: disk I/O error"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace riposte::agent
