// The agent swarm (tests/swarm) against a real controller: 200 simulated agents enroll through
// the real API, hold real mutual-TLS sessions, answer a signed fan-out, come back from a dropped
// connection by resuming their TLS session (not a revoked one), and come back after the
// controller restarts. The big runs are scale_bench; this keeps the swarm itself honest in CI.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/harness.h"
#include "tests/swarm/swarm.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
constexpr int kAgents = 200;

class SwarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    swarm::raise_file_limit(4096);
    controller.start();
  }

  swarm::SwarmOptions options(const std::string& token) {
    swarm::SwarmOptions o;
    o.api = parse_host_port(controller.api()).value();
    o.gateway = parse_host_port(controller.gateway()).value();
    o.ca_pin = controller.ca_fingerprint();
    o.enroll_token = token;
    o.identities_dir = identities.path();
    o.agents = kAgents;
    o.source_addresses = 16;
    o.max_handshakes = 16;  // most agents wait their turn: the swarm's admission queue is used
    o.reconnect_initial = 200ms;
    o.reconnect_max = 2s;
    return o;
  }

  bool wait_for(const std::function<bool(const swarm::Snapshot&)>& done, swarm::Swarm& s,
                std::chrono::milliseconds timeout) {
    return wait_until([&] { return done(s.snapshot()); }, timeout);
  }

  // One series' value from the controller's /metrics (-1 when absent).
  long metric(const std::string& series) {
    const auto text = run_command({"curl", "-s", "--cacert", controller.ca_cert(), "-H",
                                   "Authorization: Bearer " + controller.admin_token(),
                                   "https://" + controller.api() + "/metrics"})
                          .out;
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stol(text.substr(at + series.size() + 2));
  }
  long gateway_handshakes(const std::string& kind) {
    return metric("riposte_agent_handshakes_total{kind=\"" + kind + "\"}");
  }
  long cached_sessions() { return metric("riposte_agent_tls_sessions_cached"); }

  ControllerUnderTest controller;
  TempDir identities;
};

TEST_F(SwarmTest, TwoHundredAgentsAnswerAFanOutResumeAfterAnOutageAndSurviveARestart) {
  const auto token = controller
                         .cli_json({"tokens", "create", "--uses", std::to_string(kAgents),
                                    "--label", "swarm"})
                         .at("token")
                         .get<std::string>();
  auto prepared = swarm::Swarm::prepare(options(token));
  ASSERT_TRUE(prepared) << prepared.error().message;
  auto& swarm = **prepared;
  ASSERT_EQ(swarm.agent_ids().size(), static_cast<std::size_t>(kAgents));
  swarm.start();
  ASSERT_TRUE(wait_for([](auto& s) { return s.sessions == kAgents; }, swarm, 60s))
      << swarm.snapshot().sessions << " sessions";
  // The controller agrees: every one of them online, with the token's label.
  const auto listed = controller.cli_json({"agents", "list"});
  int online_and_labelled = 0;
  for (const auto& a : listed.at("agents"))
    online_and_labelled += a["status"] == "online" && a["labels"] == nlohmann::json{"swarm"};
  EXPECT_EQ(online_and_labelled, kAgents) << listed.dump().substr(0, 500);

  // One signed action to every agent labelled by the token; each verifies and answers, and the
  // controller acknowledges each result once it is stored.
  const auto run = controller.cli({"action", "run", "network.status", "--label", "swarm"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(wait_for([](auto& s) { return s.results_acked == kAgents; }, swarm, 60s))
      << swarm.snapshot().results_acked << " results stored";
  EXPECT_EQ(swarm.snapshot().actions, kAgents);
  EXPECT_EQ(swarm.snapshot().bad_actions, 0);

  // Every session dropped at once (a network outage): each agent comes back by resuming its TLS
  // session from the gateway's ticket, as riposte-agent does, and the gateway counts them.
  const auto before_storm = swarm.snapshot();
  swarm.drop_all();
  ASSERT_TRUE(wait_for(
      [&](auto& s) { return s.accepted >= before_storm.accepted + kAgents && s.sessions == kAgents; },
      swarm, 60s))
      << swarm.snapshot().sessions << " sessions after the storm";
  EXPECT_EQ(swarm.snapshot().resumed - before_storm.resumed, kAgents);
  EXPECT_EQ(gateway_handshakes("resumed"), kAgents);
  // One session per agent: each resumed one left the cache when its successor was accepted.
  EXPECT_EQ(cached_sessions(), kAgents);

  // A revoked agent's ticket does not bring it back (its session left the cache when it was
  // revoked; were it resumed, the checks after the handshake would refuse it). The others resume
  // as before.
  const auto revoked_id = swarm.agent_ids().front();
  ASSERT_EQ(controller.cli({"agents", "revoke", revoked_id}).exit_code, 0);
  ASSERT_TRUE(wait_for([](auto& s) { return s.sessions == kAgents - 1; }, swarm, 20s));
  const auto before_revoked_storm = swarm.snapshot();
  swarm.drop_all();
  ASSERT_TRUE(wait_for([&](auto& s) { return s.sessions == kAgents - 1; }, swarm, 60s));
  std::this_thread::sleep_for(3s);  // the revoked agent's retries, with their backoff
  const auto after_revoked_storm = swarm.snapshot();
  EXPECT_EQ(after_revoked_storm.sessions, kAgents - 1);
  // Revoking dropped the agent's session from the gateway's cache: its ticket gets a full
  // handshake, refused for the revoked certificate.
  EXPECT_EQ(after_revoked_storm.resumed - before_revoked_storm.resumed, kAgents - 1);
  EXPECT_GE(after_revoked_storm.handshake_failures - before_revoked_storm.handshake_failures, 1);
  EXPECT_EQ(controller.agent(revoked_id)["status"], "revoked");
  EXPECT_EQ(cached_sessions(), kAgents - 1);

  // The controller goes away and comes back on the same ports: every agent reconnects, with full
  // handshakes (a new process holds none of the sessions the tickets name).
  const auto before_restart = swarm.snapshot();
  controller.stop_gracefully();
  ASSERT_TRUE(wait_for([](auto& s) { return s.sessions == 0; }, swarm, 20s));
  controller.start(/*same_ports=*/true);
  ASSERT_TRUE(wait_for([](auto& s) { return s.sessions == kAgents - 1; }, swarm, 60s))
      << swarm.snapshot().sessions << " sessions after the restart";
  const auto after = swarm.snapshot();
  EXPECT_GE(after.accepted, before_restart.accepted + kAgents - 1);
  EXPECT_EQ(after.resumed, before_restart.resumed);
  EXPECT_EQ(gateway_handshakes("resumed"), 0);
  EXPECT_EQ(after.refused, 0);
  swarm.stop();
}

// Identities are enrolled once: a second swarm against the same controller needs no token.
TEST_F(SwarmTest, IdentitiesAreReusedFromTheCache) {
  const auto token =
      controller.cli_json({"tokens", "create", "--uses", "20"}).at("token").get<std::string>();
  auto o = options(token);
  o.agents = 20;
  auto first = swarm::Swarm::prepare(o);
  ASSERT_TRUE(first) << first.error().message;
  const auto ids = (*first)->agent_ids();
  first->reset();
  o.enroll_token.clear();
  auto second = swarm::Swarm::prepare(o);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ((*second)->agent_ids(), ids);
  (*second)->start();
  EXPECT_TRUE(wait_for([](auto& s) { return s.sessions == 20; }, **second, 30s));
  // A pin that is not this cache's controller (a typo, another controller): refused, and the
  // cached keys are kept.
  auto other = o;
  other.ca_pin = "sha256:" + std::string(64, '0');
  auto refused = swarm::Swarm::prepare(other);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("use another --identities folder"), std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(std::filesystem::exists(identities.path() / "identities.jsonl"));
  EXPECT_EQ(std::filesystem::status(identities.path() / "identities.jsonl").permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // More agents than cached, and no token: said plainly.
  o.agents = 21;
  auto short_of_one = swarm::Swarm::prepare(o);
  ASSERT_FALSE(short_of_one);
  EXPECT_NE(short_of_one.error().message.find("20 identities"), std::string::npos)
      << short_of_one.error().message;
}

}  // namespace
}  // namespace riposte::testing
