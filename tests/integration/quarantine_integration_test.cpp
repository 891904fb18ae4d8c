// Agents as hosts really are, each in a network namespace of its own: its own addresses (and, in
// the first test, a bridge address all of them share), its own hostname (a UTS namespace) and a
// resolver the test controls (`ip netns exec` puts /etc/netns/NS/hosts over /etc/hosts).
//   - which agent an alert is about is decided only by evidence that singles one out;
//   - network.quarantine keeps the controller reachable however the agent reached it, and
//     proves it.

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

// One agent's namespace: a veth pair to this host (198.18.N.1 here, 198.18.N.2 there, and with
// `ipv6` 2001:db8:N::1 / ::2), `shared` addresses inside too (Docker's bridge address, held by
// every such host), and `hosts` as its /etc/hosts.
class AgentNamespace {
 public:
  AgentNamespace(int n, bool ipv6, const std::vector<std::string>& shared, const std::string& hosts)
      : ns_("riposte-a" + std::to_string(n) + "-" + std::to_string(::getpid())),
        veth_("rqa" + std::to_string(n) + "x" + std::to_string(::getpid() % 10000)),
        etc_(fs::path("/etc/netns") / ns_),
        here_("198.18." + std::to_string(n) + ".1"),
        there_("198.18." + std::to_string(n) + ".2") {
    const auto v6 = "2001:db8:" + std::to_string(n) + "::";
    std::vector<std::string> cmds{
        "ip netns add " + ns_,
        "ip link add " + veth_ + " type veth peer name " + veth_ + "p netns " + ns_,
        "ip addr add " + here_ + "/30 dev " + veth_, "ip link set " + veth_ + " up",
        "ip -n " + ns_ + " addr add " + there_ + "/30 dev " + veth_ + "p",
        "ip -n " + ns_ + " link set " + veth_ + "p up", "ip -n " + ns_ + " link set lo up"};
    if (ipv6) {
      cmds.push_back("ip addr add " + v6 + "1/64 dev " + veth_ + " nodad");
      cmds.push_back("ip -n " + ns_ + " addr add " + v6 + "2/64 dev " + veth_ + "p nodad");
    }
    // On the namespace's end of the veth (this kernel may have no dummy or bridge module): what
    // matters is that the agent reports it among its addresses, as Docker's bridge would be.
    for (const auto& address : shared)
      cmds.push_back("ip -n " + ns_ + " addr add " + address + " dev " + veth_ + "p");
    for (const auto& cmd : cmds) EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    fs::create_directories(etc_);
    std::ofstream(etc_ / "hosts") << "127.0.0.1 localhost\n" << hosts;
  }
  ~AgentNamespace() {
    std::error_code ec;
    fs::remove_all(etc_, ec);
    if (std::system(("ip netns del " + ns_).c_str()) != 0) ADD_FAILURE() << "netns " << ns_;
    // Gone with the namespace, unless something still held it: then by name.
    (void)!std::system(("ip link del " + veth_ + " 2>/dev/null").c_str());
  }
  AgentNamespace(const AgentNamespace&) = delete;
  AgentNamespace& operator=(const AgentNamespace&) = delete;

  // `riposte-agent run` for `state_dir` inside the namespace, with its own `hostname`.
  std::unique_ptr<ChildProcess> run_agent(const fs::path& state_dir, const std::string& hostname,
                                          const fs::path& log) const {
    const auto agent = bin("riposte-agent") + " run --state-dir " + state_dir.string() +
                       " --reconnect-initial 200ms --reconnect-max 1s --log-level debug";
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{"ip", "netns", "exec", ns_, "unshare", "--uts", "/bin/sh", "-c",
                                 "hostname " + hostname + " && exec " + agent},
        log);
  }
  const std::string& ns() const { return ns_; }
  const std::string& here() const { return here_; }    // this host's end
  const std::string& there() const { return there_; }  // the agent's own address

 private:
  std::string ns_, veth_;
  fs::path etc_;
  std::string here_, there_;
};

class AgentsInNamespaces : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
  }

  json run_action(const std::string& agent_id, const std::string& kind) {
    const auto r = controller.cli(
        {"action", "run", "--agent", agent_id, kind, "--wait", "--timeout", "30s", "--json"});
    return json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
  }
  json enriched(const std::string& id) {
    json alert;
    EXPECT_TRUE(wait_until(
        [&] {
          alert = controller.cli_json({"alerts", "show", id});
          return alert["enrichment"].contains("enriched_at");
        },
        30s))
        << alert.dump(2);
    return alert;
  }

  ControllerUnderTest controller;
};

// Three hosts, each with Docker's bridge address 172.17.0.1 and an address of its own.
TEST_F(AgentsInNamespaces, OnlyEvidenceThatSinglesOutOneAgentResolvesTheAlertsHost) {
  controller.start(/*same_ports=*/false, "0.0.0.0");
  const auto port = std::to_string(controller.gateway_port());
  std::vector<std::unique_ptr<AgentNamespace>> hosts;
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<ChildProcess>> agents;
  for (int i = 0; i < 3; ++i) {
    hosts.push_back(std::make_unique<AgentNamespace>(91 + i, false,
                                                     std::vector<std::string>{"172.17.0.1/32"}, ""));
    const auto state = controller.dir() / ("agent-" + std::to_string(i));
    ids.push_back(controller.enroll_agent(state, hosts.back()->here() + ":" + port));
    agents.push_back(hosts.back()->run_agent(state, "web-0" + std::to_string(i + 1),
                                             controller.dir() / ("agent-" + std::to_string(i) + ".log")));
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(wait_until(
        [&] {
          const auto a = controller.agent(ids[i]);
          return a["status"] == "online" && a.dump().find("172.17.0.1") != std::string::npos;
        },
        20s))
        << agents[i]->log_text();
  }
  const auto submit = [&](const std::string& id, const json& host) {
    const auto file = controller.dir() / (id + ".json");
    std::ofstream(file) << json{{"@timestamp", alert_time_now()},
                                {"kibana.alert.uuid", id},
                                {"kibana.alert.rule.name", "Suspicious activity"},
                                {"kibana.alert.severity", "high"},
                                {"host", host}}
                               .dump();
    controller.cli_json({"alerts", "submit", file.string()});
    return enriched(id)["enrichment"]["host"];
  };

  const auto shared = submit("by-shared", {{"ip", {"172.17.0.1"}}});
  EXPECT_EQ(shared["status"], "unresolved") << shared.dump(2);
  EXPECT_NE(shared["ignored"].dump().find("held by 3 agents"), std::string::npos) << shared.dump(2);

  const auto unique = submit("by-unique", {{"ip", {"172.17.0.1", hosts[1]->there()}}});
  EXPECT_EQ(unique["status"], "resolved") << unique.dump(2);
  EXPECT_EQ(unique["agent_id"], ids[1]);
  EXPECT_EQ(unique["matched"][0]["by"], "unique address");

  const auto named = submit("by-name", {{"name", "WEB-03"}, {"ip", {"172.17.0.1"}}});
  EXPECT_EQ(named["status"], "resolved") << named.dump(2);
  EXPECT_EQ(named["agent_id"], ids[2]);
  EXPECT_EQ(named["matched"][0]["by"], "hostname");

  // A name and an address naming two different hosts: neither is guessed.
  const auto both = submit("by-both", {{"name", "web-01"}, {"ip", {hosts[2]->there()}}});
  EXPECT_EQ(both["status"], "ambiguous") << both.dump(2);
}

// The controller's name has an AAAA record that does not answer (sorted first by RFC 6724's
// default policy) and an A record that does: the controller listens on IPv4 only. The agent
// connects by the A record; its quarantine must keep that address open, and prove it did.
TEST_F(AgentsInNamespaces, QuarantineKeepsTheAddressTheAgentReallyReachedTheControllerBy) {
  const AgentNamespace host(90, /*ipv6=*/true, {},
                            "2001:db8:90::1 controller.test\n198.18.90.1 controller.test\n");
  controller.start(/*same_ports=*/false, host.here());
  const auto port = std::to_string(controller.gateway_port());
  const auto agent_id = controller.enroll_agent(controller.dir() / "agent", "controller.test:" + port);
  const auto agent = host.run_agent(controller.dir() / "agent", "web-90", controller.dir() / "agent.log");
  ASSERT_TRUE(wait_until([&] { return controller.agent(agent_id)["status"] == "online"; }, 20s))
      << agent->log_text();

  const auto quarantined = run_action(agent_id, "network.quarantine");
  ASSERT_EQ(quarantined["state"], "succeeded") << quarantined.dump(2) << agent->log_text();
  // Still reachable through the quarantine: the agent answers the next action, and the kernel
  // table in its namespace keeps the IPv4 address it connected by, and the AAAA record too.
  const auto status = run_action(agent_id, "network.status");
  ASSERT_EQ(status["state"], "succeeded") << status.dump(2);
  EXPECT_EQ(status["result"]["quarantined"], true) << status.dump(2);
  const auto listed = run_command(
      {"ip", "netns", "exec", host.ns(), "nft", "list", "table", "inet", "riposte_quarantine"});
  EXPECT_NE(listed.out.find("198.18.90.1"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("2001:db8:90::1"), std::string::npos) << listed.out;
  const auto released = run_action(agent_id, "network.release");
  EXPECT_EQ(released["state"], "succeeded") << released.dump(2);
}

}  // namespace
}  // namespace riposte::testing
