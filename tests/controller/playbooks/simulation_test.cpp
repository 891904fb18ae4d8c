#include "controller/playbooks/simulation.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kSource = ::riposte::testing::source_dir();

std::vector<json> recorded_alerts() {
  std::ifstream in(kSource / "tests/fixtures/backtest_alerts.jsonl");
  std::vector<json> alerts;
  for (std::string line; std::getline(in, line);) alerts.push_back(json::parse(line));
  return alerts;
}

std::vector<std::string> path_of(const Simulation& sim) {
  std::vector<std::string> ids;
  for (const auto& step : sim.path) ids.push_back(step.id);
  return ids;
}

TEST(PlaybookSimulation, MaliciousIpQualifiedHighConfidenceWouldKillAndQuarantineAfterApproval) {
  const auto playbook = load_playbook(kSource / "playbooks/malicious_ip.yaml");
  ASSERT_TRUE(playbook) << playbook.error().message;
  const auto sim = simulate_playbook(*playbook, recorded_alerts()[0]);
  ASSERT_TRUE(sim.triggered) << sim.not_triggered_because;
  EXPECT_TRUE(sim.error.empty()) << sim.error;
  EXPECT_EQ(path_of(sim), (std::vector<std::string>{"history", "attach", "qualified", "to_analyst",
                                                    "high_confidence", "ports_and_processes",
                                                    "process", "kill", "quarantine", "contained"}));
  ASSERT_EQ(sim.actions.size(), 5u);
  EXPECT_EQ(sim.actions[0]["action"], "network.connections");
  EXPECT_EQ(sim.actions[0]["target"], "all");
  EXPECT_EQ(sim.actions[0]["parameters"],
            json({{"history_address", "203.0.113.9"}, {"history_days", 30}}));
  EXPECT_EQ(sim.actions[2]["action"], "process.tree");
  EXPECT_EQ(sim.actions[2]["parameters"], json({{"pid", 4242}}));  // typed
  EXPECT_EQ(sim.actions[3]["action"], "process.kill");
  EXPECT_EQ(sim.actions[3]["target"], "5b0e4c1e-agent-web-01");
  EXPECT_EQ(sim.actions[3]["mode"], "approve");
  // No agent answers in a backtest: the start time the tree would give is unknown (null).
  EXPECT_EQ(sim.actions[3]["parameters"],
            json({{"target", {{"pid", 4242}, {"start_ticks", nullptr}}}}));
  EXPECT_EQ(sim.actions[4]["action"], "network.quarantine");
  EXPECT_EQ(sim.path[2].outcome, "then -> to_analyst");
}

TEST(PlaybookSimulation, NotRelevantIsClosedAndUntriggeredAlertsSayWhy) {
  const auto playbook = load_playbook(kSource / "playbooks/malicious_ip.yaml");
  ASSERT_TRUE(playbook);
  const auto alerts = recorded_alerts();
  const auto closed = simulate_playbook(*playbook, alerts[1]);
  ASSERT_TRUE(closed.triggered);
  EXPECT_EQ(path_of(closed), (std::vector<std::string>{"history", "attach", "qualified", "checked",
                                                      "close_not_relevant"}));
  EXPECT_EQ(closed.actions.size(), 1u);  // the history query only
  EXPECT_EQ(closed.path.back().outcome,
            "case: status false_positive, note \"Closed: no host contacted 198.51.100.7 in 30 "
            "days (connection history attached).\"");
  const auto skipped = simulate_playbook(*playbook, alerts[2]);
  EXPECT_FALSE(skipped.triggered);
  EXPECT_EQ(skipped.not_triggered_because, "no observable of the trigger's types");
  EXPECT_TRUE(skipped.actions.empty());
}

// Found by a review: an alert whose validation could not ask every host ("undetermined") was
// closed as a false positive with the note "no host contacted the IP", which nobody knew.
TEST(PlaybookSimulation, AnUndeterminedIpIsLeftOpenForAnAnalystNotClosed) {
  const auto playbook = load_playbook(kSource / "playbooks/malicious_ip.yaml");
  ASSERT_TRUE(playbook);
  auto alert = recorded_alerts()[1];
  alert["validation"]["status"] = "undetermined";
  alert["validation"]["reason"] = "web-02 has no online agent, so its connections could not be checked";
  const auto sim = simulate_playbook(*playbook, alert);
  ASSERT_TRUE(sim.triggered) << sim.not_triggered_because;
  EXPECT_EQ(path_of(sim), (std::vector<std::string>{"history", "attach", "qualified", "checked",
                                                   "undetermined"}));
  EXPECT_EQ(sim.path.back().outcome,
            "case: status in_progress, note \"Not closed, for an analyst: web-02 has no online "
            "agent, so its connections could not be checked\"");
}

TEST(PlaybookSimulation, IocConfidenceRoutesByDecision) {
  const auto playbook = load_playbook(kSource / "playbooks/ioc_confidence.yaml");
  ASSERT_TRUE(playbook);
  const auto alerts = recorded_alerts();
  EXPECT_EQ(path_of(simulate_playbook(*playbook, alerts[0])),
            (std::vector<std::string>{"respond", "escalate_case"}));
  EXPECT_EQ(path_of(simulate_playbook(*playbook, alerts[1])),
            (std::vector<std::string>{"respond", "analyst", "discard"}));
}

TEST(PlaybookSimulation, AFailingExpressionFollowsOnFailureOrStops) {
  const auto dir = fs::temp_directory_path() / ("riposte-sim-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "p.yaml")
      << "name: p\ntrigger: {}\nsteps:\n"
         "  - {id: gate, kind: decide, when: 'alert.host > 1', then: a, else: a, on_failure: b}\n"
         "  - {id: a, kind: wait, duration: 1m, next: end}\n"
         "  - {id: b, kind: case, note: 'gate failed'}\n";
  const auto playbook = load_playbook(dir / "p.yaml");
  fs::remove_all(dir);
  ASSERT_TRUE(playbook) << playbook.error().message;
  const auto sim = simulate_playbook(*playbook, recorded_alerts()[0]);
  EXPECT_EQ(path_of(sim), (std::vector<std::string>{"gate", "b"}));
  EXPECT_EQ(sim.path[0].outcome,
            "fails: column 12: '>' compares numbers or strings, not an object with a number");
  EXPECT_TRUE(sim.error.empty());
}

}  // namespace
}  // namespace riposte::controller

namespace riposte::controller {
namespace {

// The backtest's modes are the controller's: an auto step on an alert from a person waits for
// approval, one from an integration trusted with auto acts, until the per-host rate limit; the
// notify preview shows the case link.
TEST(PlaybookSimulation, ModeReplayAppliesSourceCeilingsAndRateLimits) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "p.yaml") << R"(
name: contain
trigger: {observable_types: [ip]}
steps:
  - {id: suspend, kind: action, action: process.suspend, mode: auto, target: host,
     parameters: {target: {pid: 1, start_ticks: 7}}}
  - {id: tell, kind: notify, url: "webhook:soc", body: {text: "see {{ case.url }}"}}
)";
  const auto playbook = load_playbook(dir.path() / "p.yaml").value();
  AutonomyPolicy policy;
  policy.rate_limits.per_host = {2, 600'000};
  ModeReplay modes(policy);
  const auto alert = [](int minute, const json& submitter) {
    return json{{"id", fmt::format("a{}", minute)},
                {"case_id", "c1"},
                {"timestamp", fmt::format("2026-11-20T10:{:02}:00Z", minute)},
                {"host", {{"name", "web-01"}}},
                {"observables", {{{"type", "ip"}, {"value", "203.0.113.9"}}}},
                {"assets", {{{"environment", "staging"}, {"criticality", "low"}}}},
                {"submitted_by", submitter}};
  };
  const json siem{{"name", "siem"}, {"role", "ingest"}, {"max_mode", "auto"}};
  const json ann{{"name", "ann"}, {"role", "analyst"}, {"max_mode", nullptr}};
  std::vector<std::string> got;
  for (const auto& [minute, who] : std::vector<std::pair<int, json>>{
           {0, ann}, {1, siem}, {2, siem}, {3, siem}, {15, siem}}) {
    auto sim = simulate_playbook(playbook, alert(minute, who), "https://soc:8443/api/v1/cases/");
    modes.apply(playbook, alert(minute, who), sim);
    ASSERT_EQ(sim.actions.size(), 1u);
    EXPECT_EQ(sim.actions[0]["declared_mode"], "auto");
    got.push_back(sim.actions[0]["mode"].get<std::string>());
    if (minute == 0) {
      EXPECT_NE(sim.actions[0]["why"].get<std::string>().find("submitted by a person"),
                std::string::npos);
      EXPECT_NE(sim.path[1].outcome.find("https://soc:8443/api/v1/cases/c1"), std::string::npos)
          << sim.path[1].outcome;
    }
    if (minute == 3) {
      EXPECT_NE(sim.actions[0]["why"].get<std::string>().find("per_host: 2"), std::string::npos);
    }
  }
  // ann's alert asks; siem's act twice, the third waits, and after the window acts again.
  EXPECT_EQ(got, (std::vector<std::string>{"approve", "auto", "auto", "approve", "auto"}));
}

}  // namespace
}  // namespace riposte::controller

namespace riposte::controller {
namespace {

// An outbound alert as Elastic Security writes it: source.ip is the host itself, destination.ip
// the malicious address. The playbook acts on the address validation matched, never
// observables[0]; and the backtest says why each target is the one.
TEST(PlaybookSimulation, AnOutboundAlertActsOnTheAddressValidationMatchedNotTheHostsOwn) {
  const auto playbook = load_playbook(kSource / "playbooks/malicious_ip.yaml");
  ASSERT_TRUE(playbook) << playbook.error().message;
  json alert = json::parse(R"json({
    "id": "a-out", "source": "ecs", "severity": "high", "rule": {"name": "C2 beacon"},
    "host": {"name": "web-01", "ip": ["10.20.1.5"]},
    "observables": [{"type": "ip", "value": "10.20.1.5"}, {"type": "ip", "value": "203.0.113.9"}],
    "case_id": "c-9", "status": "qualified",
    "validation": {"outcome": "qualified", "reason": "1 host(s) connected", "ips": ["203.0.113.9"],
      "hosts": [{"agent_id": "agent-web-01", "hostname": "web-01", "ip": "203.0.113.9",
                 "connections": [{"pid": 4242}]}],
      "host": {"status": "resolved", "agent_id": "agent-web-01", "hostname": "web-01",
               "why": "the alert's host web-01 is web-01 (agent-web-01), matched by hostname web-01"}},
    "confidence": {"score": 0.8, "confirmations": [
      {"type": "ip", "value": "203.0.113.9", "feeds": ["f1"], "score": 0.8}]}})json");
  const auto sim = simulate_playbook(*playbook, alert);
  ASSERT_TRUE(sim.error.empty()) << sim.error;
  ASSERT_GE(sim.actions.size(), 4u);
  EXPECT_EQ(sim.actions[0]["parameters"]["history_address"], "203.0.113.9");
  EXPECT_EQ(sim.actions[3]["action"], "process.kill");
  // The path says it too, also once the backtest's mode replay has rewritten it.
  auto replayed = sim;
  ModeReplay(AutonomyPolicy{}).apply(*playbook, alert, replayed);
  for (const auto& step : replayed.path) {
    if (step.id == "kill") {
      EXPECT_NE(step.outcome.find("validation found it connected"), std::string::npos)
          << step.outcome;
    }
  }
  EXPECT_NE(sim.actions[3]["target_why"].get<std::string>().find(
                "validation found it connected to 203.0.113.9"),
            std::string::npos)
      << sim.actions[3].dump();
  const auto context = run_context(alert);
  EXPECT_EQ(context["matched"]["ip"], "203.0.113.9");
  // A target that renders empty (nothing validation found) is no target: the step fails.
  json no_host = alert;
  no_host["validation"]["hosts"] = json::array();
  const auto empty = simulate_playbook(*playbook, no_host);
  bool refused = false;
  for (const auto& step : empty.path)
    refused = refused || step.outcome.find("no proven target") != std::string::npos;
  EXPECT_TRUE(refused) << empty.path.back().outcome;
  EXPECT_EQ(context["matched"]["indicator"]["value"], "203.0.113.9");

  // Recorded before validation listed its addresses: still not the host's own address.
  alert["validation"].erase("ips");
  alert["validation"]["hosts"][0].erase("ip");
  EXPECT_EQ(run_context(alert)["matched"]["ip"], "203.0.113.9");
  alert["observables"] = json::array(
      {{{"type", "ip"}, {"value", "127.0.0.1"}}, {{"type", "ip"}, {"value", "10.20.1.5"}}});
  EXPECT_TRUE(run_context(alert)["matched"]["ip"].is_null()) << "loopback is no outside address";
}

// `target: host` on an alert whose host evidence names two agents: the step does not run; the
// backtest says so, and why.
TEST(PlaybookSimulation, AStepAimedAtAnAmbiguousHostDoesNotRun) {
  const auto playbook = load_playbook(kSource / "playbooks/suspicious_process.yaml");
  ASSERT_TRUE(playbook) << playbook.error().message;
  const json alert = json::parse(R"json({
    "id": "a-amb", "source": "ecs", "severity": "high", "rule": {"name": "Reverse shell"},
    "host": {"name": "web-01", "ip": ["10.0.0.13"]},
    "observables": [{"type": "process", "value": "4242"}], "case_id": "c-10",
    "enrichment": {"process": {"pid": 4242, "running": true, "start_ticks": 77, "exe": "/usr/bin/nc"},
      "host": {"status": "ambiguous",
               "why": "the alert's host web-01 / 10.0.0.13 is ambiguous: hostname web-01 is web-01 (A); unique address 10.0.0.13 is db-01 (C)"}}})json");
  const auto sim = simulate_playbook(*playbook, alert);
  ASSERT_TRUE(sim.triggered) << sim.not_triggered_because;
  ASSERT_FALSE(sim.path.empty());
  EXPECT_EQ(sim.path[0].id, "suspend");
  EXPECT_NE(sim.path[0].outcome.find("no proven target"), std::string::npos) << sim.path[0].outcome;
  EXPECT_NE(sim.path[0].outcome.find("ambiguous"), std::string::npos) << sim.path[0].outcome;
  for (const auto& a : sim.actions)
    EXPECT_NE(a["action"], "process.suspend") << "nothing dispatched to a guessed host";
}

}  // namespace
}  // namespace riposte::controller
