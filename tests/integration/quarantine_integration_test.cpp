// network.quarantine end to end, with a real agent in a network namespace of its own and a
// resolver the test controls (`ip netns exec` puts /etc/netns/NS/hosts over /etc/hosts): the
// quarantine must keep the controller reachable however the agent reached it, and prove it.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

// This host at 198.18.90.1 and 2001:db8:90::1 on one end of a veth pair; the agent's namespace
// at .2 on the other. The name controller.test has both records, AAAA first (it sorts first by
// RFC 6724's default policy); the controller listens on the IPv4 address only, so the AAAA
// record does not answer.
class AgentBehindAName : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
    for (const auto& cmd : std::vector<std::string>{
             "ip netns add " + ns,
             "ip link add " + veth + " type veth peer name " + veth + "p netns " + ns,
             "ip addr add 198.18.90.1/30 dev " + veth,
             "ip addr add 2001:db8:90::1/64 dev " + veth + " nodad", "ip link set " + veth + " up",
             "ip -n " + ns + " addr add 198.18.90.2/30 dev " + veth + "p",
             "ip -n " + ns + " addr add 2001:db8:90::2/64 dev " + veth + "p nodad",
             "ip -n " + ns + " link set " + veth + "p up", "ip -n " + ns + " link set lo up"})
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    fs::create_directories(etc);
    std::ofstream(etc / "hosts") << "127.0.0.1 localhost\n"
                                 << "2001:db8:90::1 controller.test\n"
                                 << "198.18.90.1 controller.test\n";
    controller.start(/*same_ports=*/false, "198.18.90.1");
  }
  void TearDown() override {
    agent.reset();
    std::error_code ec;
    fs::remove_all(etc, ec);
    if (::geteuid() != 0) return;
    if (std::system(("ip netns del " + ns).c_str()) != 0)
      ADD_FAILURE() << "netns " << ns << " left behind";
    // Gone with the namespace, unless something still held it: then by name.
    (void)!std::system(("ip link del " + veth + " 2>/dev/null").c_str());
  }

  json run_action(const std::string& kind) {
    const auto r = controller.cli(
        {"action", "run", "--agent", agent_id, kind, "--wait", "--timeout", "30s", "--json"});
    return json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
  }

  const std::string ns = "riposte-q-" + std::to_string(::getpid());
  const std::string veth = "rqa" + std::to_string(::getpid() % 100000);
  const fs::path etc = fs::path("/etc/netns") / ns;
  ControllerUnderTest controller;
  std::string agent_id;
  std::unique_ptr<ChildProcess> agent;
};

TEST_F(AgentBehindAName, QuarantineKeepsTheAddressTheAgentReallyReachedTheControllerBy) {
  const auto port = std::to_string(controller.gateway_port());
  agent_id = controller.enroll_agent(controller.dir() / "agent", "controller.test:" + port);
  agent = std::make_unique<ChildProcess>(
      std::vector<std::string>{"ip", "netns", "exec", ns, bin("riposte-agent"), "run",
                               "--state-dir", (controller.dir() / "agent").string(),
                               "--reconnect-initial", "200ms", "--reconnect-max", "1s",
                               "--log-level", "debug"},
      controller.dir() / "agent.log");
  ASSERT_TRUE(wait_until([&] { return controller.agent(agent_id)["status"] == "online"; }, 20s))
      << agent->log_text();

  const auto quarantined = run_action("network.quarantine");
  ASSERT_EQ(quarantined["state"], "succeeded") << quarantined.dump(2) << agent->log_text();
  // Still reachable through the quarantine: the agent answers the next action, and the kernel
  // table in its namespace keeps the IPv4 address it connected by.
  const auto status = run_action("network.status");
  ASSERT_EQ(status["state"], "succeeded") << status.dump(2);
  EXPECT_EQ(status["result"]["quarantined"], true) << status.dump(2);
  const auto listed = run_command(
      {"ip", "netns", "exec", ns, "nft", "list", "table", "inet", "riposte_quarantine"});
  EXPECT_NE(listed.out.find("198.18.90.1"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("2001:db8:90::1"), std::string::npos) << "both records:\n"
                                                                  << listed.out;
  const auto released = run_action("network.release");
  EXPECT_EQ(released["state"], "succeeded") << released.dump(2);
}

}  // namespace
}  // namespace riposte::testing
