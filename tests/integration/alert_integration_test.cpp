// Alerts end to end: the real controller, agents and CLI. The malicious-IP validation asks real
// agents about a real TCP connection one of them saw, and intel feeds and the asset map are the
// files a SOC would configure.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "tests/build_paths.h"
#include "tests/integration/harness.h"
#include "tests/netns.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(::riposte::testing::source_dir()) / "tests/fixtures";

// A TCP connection from this process to `address`:port, both ends on loopback.
// A TCP connection from this host to an outside address (tests/netns.h OutsideNetwork).
class OutsideConnection {
 public:
  OutsideConnection() : outside_(77) {
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(outside_.port());
    ::inet_pton(AF_INET, outside_.address().c_str(), &at.sin_addr);
    client_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(client_, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
    server_ = ::accept4(outside_.listener(), nullptr, nullptr, SOCK_CLOEXEC);
  }
  // Closes with a reset, so no TIME_WAIT entry keeps the address in the socket table.
  ~OutsideConnection() {
    linger hard{1, 0};
    ::setsockopt(client_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(client_);
    ::close(server_);
  }

 private:
  riposte::testing::OutsideNetwork outside_;
  int client_ = -1, server_ = -1;
};

json ecs_alert(const std::string& id, const std::string& host, const std::string& bad_ip) {
  return json{{"@timestamp", "2026-11-20T09:14:03.512Z"},
              {"kibana.alert.uuid", id},
              {"kibana.alert.rule.name", "Connection to Known Malicious IP"},
              {"kibana.alert.severity", "high"},
              {"host", {{"name", host}}},
              {"destination", {{"ip", bad_ip}, {"port", 443}}}};
}

class AlertIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    {
      std::ofstream assets(controller.dir() / "assets.yaml");
      assets << "assets:\n  - name: this-host\n    hostname: " << this_hostname()
             << "\n    application: test-suite\n    environment: lab\n    criticality: low\n"
                "    owner: qa\n  - name: nowhere\n    hostname: no-such-host\n";
    }
    controller.add_config(
        "assets: assets.yaml\nalerts:\n  validation_timeout: 20s\n"
        "intel:\n  feeds:\n"
        "    - {name: feodo, path: " +
        (kFixtures / "intel/feodo.csv").string() +
        ", format: csv, column: dst_ip}\n"
        "    - {name: misp, path: " +
        (kFixtures / "intel/misp").string() +
        ", format: misp}\n"
        "    - {name: stix, path: " +
        (kFixtures / "intel/stix").string() +
        ", format: stix}\n"
        "    - {name: list, path: " +
        (kFixtures / "intel/blocklist.txt").string() + ", format: list, weight: 1}\n");
    controller.start();
    std::ofstream(controller.dir() / "agent.yaml") << "connection_sample_interval: 200ms\n";
  }
  std::vector<std::string> agent_args() {
    return {"--config", (controller.dir() / "agent.yaml").string()};
  }
  fs::path write_json(const std::string& name, const json& value) {
    const auto path = controller.dir() / name;
    std::ofstream(path) << value.dump();
    return path;
  }
  // Waits until validation (and enrichment, if it goes on) is over.
  json settled_alert(const std::string& id) {
    json alert;
    const bool done = wait_until(
        [&] {
          alert = controller.cli_json({"alerts", "show", id});
          const auto status = alert["status"].get<std::string>();
          if (status == "new" || status == "validating") return false;
          return status == "not_relevant" || alert["enrichment"].contains("enriched_at");
        },
        40s);
    EXPECT_TRUE(done) << alert.dump(2);
    return alert;
  }

  ControllerUnderTest controller;
};

TEST_F(AlertIntegration, MaliciousIpIsQualifiedOnlyByTheHostThatTalkedToIt) {
  auto talker =
      controller.start_online_agent(controller.dir() / "talker", "talker.log", agent_args());
  {
    OutsideConnection connection;
    // Until the talker's history has it: asked the way an operator would.
    const bool recorded = wait_until(
        [&] {
          const auto r =
              controller.cli({"action", "run", "--agent", talker.id, "network.connections",
                              "--param", "history_address=198.18.77.2", "--wait", "--json"});
          if (r.exit_code != 0) return false;
          const auto line = json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
          return line.is_object() && line["result"].is_object() &&
                 !line["result"].value("history", json::array()).empty();
        },
        20s);
    ASSERT_TRUE(recorded) << talker.process->log_text();
  }
  // Started after the connection is gone: this host never saw it.
  auto quiet = controller.start_online_agent(controller.dir() / "quiet", "quiet.log", agent_args());

  const auto file = write_json(
      "alerts.json", json::array({ecs_alert("alert-talked", this_hostname(), "198.18.77.2"),
                                  ecs_alert("alert-nobody", this_hostname(), "198.18.0.78")}));
  const auto submitted = controller.cli_json({"alerts", "submit", file.string()});
  ASSERT_EQ(submitted["ids"], (json{"alert-talked", "alert-nobody"}));

  const auto talked = settled_alert("alert-talked");
  EXPECT_EQ(talked["status"], "qualified") << talked["validation"].dump(2);
  const auto& v = talked["validation"];
  EXPECT_EQ(v["rule"], "malicious_ip");
  ASSERT_EQ(v["hosts"].size(), 1u) << v.dump(2);
  EXPECT_EQ(v["hosts"][0]["agent_id"], talker.id);
  const auto& contact = v["hosts"][0]["connections"][0];
  EXPECT_EQ(contact["remote_address"], "198.18.77.2");
  EXPECT_EQ(contact["pid"], ::getpid());  // this test process made the connection
  EXPECT_TRUE(contact.contains("first_seen"));
  bool quiet_checked = false;
  for (const auto& c : v["checked"])
    if (c["agent_id"] == quiet.id) quiet_checked = c["answer"] == "no contact";
  EXPECT_TRUE(quiet_checked) << v.dump(2);
  // Both agents run on this machine and report one hostname: that name singles out no agent, so
  // the impacted host is the one validation found talking to the address, and the alert's own
  // host is recorded as not proven.
  const auto& e = talked["enrichment"];
  ASSERT_TRUE(e["impacted"].is_array()) << e.dump(2);
  EXPECT_EQ(e["impacted"].size(), 1u);
  EXPECT_EQ(e["host"]["status"], "unresolved") << e["host"].dump(2);
  EXPECT_NE(e["host"].dump().find("hostname held by 2 agents"), std::string::npos);
  EXPECT_EQ(e["impacted"][0]["assets"][0]["application"], "test-suite");
  EXPECT_FALSE(e["network"].empty());
  // Validation's questions were signed actions like any other, filed under the alert's case.
  const auto action = controller.action(v["action_ids"][0]);
  EXPECT_EQ(action["kind"], "network.connections");
  EXPECT_EQ(action["case_id"], talked["case_id"]);

  // Nobody talked to it, but which of the two is the alert's host is not proven: not closed as
  // irrelevant, left for a person.
  const auto nobody = settled_alert("alert-nobody");
  EXPECT_EQ(nobody["status"], "undetermined") << nobody["validation"].dump(2);
  EXPECT_NE(nobody["validation"]["reason"].get<std::string>().find("not singled out"),
            std::string::npos);
  EXPECT_TRUE(nobody["validation"]["hosts"].empty());
  EXPECT_EQ(nobody["validation"]["checked"].size(), 2u);

  // With one agent offline, "nobody answered yes" is not proof: undetermined, and it says who.
  quiet.process->signal(SIGTERM);
  ASSERT_TRUE(wait_until([&] { return controller.agent(quiet.id)["status"] == "offline"; }, 20s));
  const auto partial =
      write_json("partial.json", ecs_alert("alert-partial", this_hostname(), "198.18.0.79"));
  controller.cli_json({"alerts", "submit", partial.string()});
  const auto undetermined = settled_alert("alert-partial");
  EXPECT_EQ(undetermined["status"], "undetermined");
  ASSERT_EQ(undetermined["validation"]["not_asked"].size(), 1u);
  EXPECT_EQ(undetermined["validation"]["not_asked"][0]["agent_id"], quiet.id);
  bool host_missing = false;
  for (const auto& m : undetermined["enrichment"]["missing"])
    host_missing = host_missing || m["what"] == "host";
  EXPECT_TRUE(host_missing) << undetermined["enrichment"].dump(2);
}

TEST_F(AlertIntegration, CliContractForEachFormatAndIntel) {
  const auto ecs = controller.cli_json(
      {"alerts", "submit", (kFixtures / "alerts/ecs_malicious_ip.json").string()});
  const auto wazuh = controller.cli_json(
      {"alerts", "submit", (kFixtures / "alerts/wazuh_active_response.json").string()});
  const auto generic =
      controller.cli_json({"alerts", "submit", (kFixtures / "alerts/generic.json").string()});
  const auto again =
      controller.cli_json({"alerts", "submit", (kFixtures / "alerts/generic.json").string()});
  EXPECT_EQ(again["duplicates"], 1);
  EXPECT_EQ(again["ids"], generic["ids"]);

  const auto a = controller.cli_json({"alerts", "show", ecs["ids"][0]});
  for (const char* key : {"id", "source", "rule", "severity", "timestamp", "host", "observables",
                          "validation", "enrichment", "confidence", "raw"})
    EXPECT_TRUE(a.contains(key)) << key;
  EXPECT_EQ(a["source"], "ecs");
  EXPECT_EQ(a["severity"], "high");
  EXPECT_EQ(a["user"]["name"], "www-data");
  EXPECT_EQ(a["confidence"]["decision"], "respond");  // 185.220.101.47: all four feeds
  EXPECT_EQ(a["confidence"]["confirmations"][0]["feeds"].size(), 4u);
  const auto w = controller.cli_json({"alerts", "show", wazuh["ids"][0]});
  EXPECT_EQ(w["source"], "wazuh");
  EXPECT_EQ(w["severity"], "critical");
  EXPECT_EQ(w["rule"]["id"], "554");
  const auto g = controller.cli_json({"alerts", "show", generic["ids"][0]});
  EXPECT_EQ(g["source"], "generic");
  for (const auto& o : g["observables"]) EXPECT_NE(o["type"], "sha1") << "'0123' is no SHA-1";

  const auto lookup = controller.cli_json({"intel", "lookup", "C2.beacon-example.org"});
  EXPECT_EQ(lookup["type"], "domain");
  EXPECT_EQ(lookup["feeds"], (json{"misp", "stix"}));
  EXPECT_EQ(lookup["decision"], "analyst");  // exactly two of four

  const auto bad = controller.cli({"alerts", "submit", (kFixtures / "intel/feodo.csv").string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not JSON"), std::string::npos) << bad.err;

  // One document over the 16 MiB body limit: refused before it is read, nothing stored.
  const auto huge = write_json(
      "huge.json",
      json{{"id", "too-big"}, {"title", "t"}, {"description", std::string(17u << 20, 'x')}});
  const auto refused = controller.cli({"alerts", "submit", huge.string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("413"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("over this route's limit"), std::string::npos) << refused.err;
  EXPECT_NE(controller.cli({"alerts", "show", "too-big"}).err.find("404"), std::string::npos);

  const auto assets = controller.cli_json({"assets", "list"});
  EXPECT_EQ(assets["entries_without_agent"], (json{"this-host", "nowhere"}));
}

}  // namespace
}  // namespace riposte::testing

namespace riposte::testing {
namespace {

TEST_F(AlertIntegration, ValidationInterruptedByAControllerCrashIsTakenUpAfterRestart) {
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log", agent_args());
  // A stopped agent keeps its session open but answers nothing: validation waits on it.
  agent.process->signal(SIGSTOP);
  const auto file =
      write_json("one.json", ecs_alert("alert-crash", this_hostname(), "198.18.0.80"));
  controller.cli_json({"alerts", "submit", file.string()});
  ASSERT_TRUE(wait_until(
      [&] {
        return controller.cli_json({"alerts", "show", "alert-crash"})["status"] == "validating";
      },
      10s));
  controller.kill_hard();
  controller.start(/*same_ports=*/true);
  agent.process->signal(SIGCONT);
  // Decided after the restart: not_relevant if the agent was back in time to answer, undetermined
  // (with the agent under not_asked) if it was still reconnecting. Either way not left behind.
  const auto alert = settled_alert("alert-crash");
  const auto status = alert["status"].get<std::string>();
  EXPECT_TRUE(status == "not_relevant" || status == "undetermined") << alert.dump(2);
  EXPECT_EQ(alert["validation"]["outcome"], status);
  EXPECT_TRUE(alert["validation"].contains("decided_at"));
  EXPECT_NE(controller.process().log_text().find("resuming 1 unfinished alert"), std::string::npos);
}

}  // namespace
}  // namespace riposte::testing
