// `riposte playbooks validate DIR`: the operator's offline check, on the shipped playbooks and on
// a directory with a broken file. No controller is involved.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/build_paths.h"
#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

namespace fs = std::filesystem;

TEST(PlaybookCli, ValidateAcceptsTheShippedPlaybooks) {
  const auto result =
      run_command({bin("riposte"), "playbooks", "validate",
                   (fs::path(::riposte::testing::source_dir()) / "playbooks").string()});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("3 playbook(s) valid, 0 error(s)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("process.kill (approve)"), std::string::npos) << result.out;
}

TEST(PlaybookCli, ValidateNamesTheBrokenFileAndLineAndExitsOne) {
  TempDir dir;
  std::ofstream(dir.path() / "broken.yaml")
      << "name: broken\ntrigger: {}\nsteps:\n  - {id: a, kind: wait, duration: 1m}\n"
         "  - {id: b, kind: decide, when: \"len(alert) >\", then: a}\n";
  const auto result =
      run_command({bin("riposte"), "playbooks", "validate", dir.path().string(), "--json"});
  EXPECT_EQ(result.exit_code, 1);
  const auto out = nlohmann::json::parse(result.out);
  ASSERT_EQ(out["errors"].size(), 1u) << result.out;
  EXPECT_EQ(out["errors"][0], (dir.path() / "broken.yaml").string() +
                                  ":5: step 'b' when: column 13: expected a value, found the end");
}

// The backtest: recorded alerts through a shipped playbook, offline, per alert the path and the
// actions that would have been dispatched.
TEST(PlaybookCli, BacktestPrintsPathsAndWouldBeActionsPerAlert) {
  const auto source = fs::path(::riposte::testing::source_dir());
  const auto result = run_command(
      {bin("riposte"), "playbooks", "test", (source / "playbooks/malicious_ip.yaml").string(),
       "--alerts", (source / "tests/fixtures/backtest_alerts.jsonl").string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<nlohmann::json> runs;
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) runs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(runs.size(), 3u) << result.out;
  EXPECT_EQ(runs[0]["alert"], "a-qualified");
  EXPECT_EQ(runs[0]["actions"].size(), 5u);
  EXPECT_EQ(runs[0]["actions"][2]["action"], "process.tree");
  EXPECT_EQ(runs[0]["actions"][3]["action"], "process.kill");
  EXPECT_EQ(runs[0]["actions"][3]["mode"], "approve");
  EXPECT_EQ(runs[1]["path"].back()["step"], "close_not_relevant");
  EXPECT_EQ(runs[2]["triggered"], false);
  const auto text = run_command({bin("riposte"), "playbooks", "test",
                                 (source / "playbooks/malicious_ip.yaml").string(), "--alerts",
                                 (source / "tests/fixtures/backtest_alerts.jsonl").string()});
  EXPECT_NE(text.out.find("3 alert(s), 2 triggered, 6 action(s) would have been dispatched"),
            std::string::npos)
      << text.out;
}

// The impact table: every action step of the suspicious-process playbook against the fixture's
// asset map and one enrolled host the map does not cover, with the mode each would really run
// in under the controller's ceilings.
TEST(PlaybookCli, ImpactListsAssetsStakeholdersAndTheModeAfterCeilings) {
  ControllerUnderTest controller;
  const auto fixtures = fs::path(::riposte::testing::source_dir()) / "tests/fixtures";
  controller.add_config("assets: " + (fixtures / "assets.yaml").string() +
                        "\nautonomy:\n  default: auto\n  unmapped: simulate\n  ceilings:\n"
                        "    - {environment: production, criticality: mission-critical, max: "
                        "approve}\n");
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  const auto out = controller.cli_json(
      {"playbooks", "impact",
       (fs::path(::riposte::testing::source_dir()) / "playbooks/suspicious_process.yaml")
           .string()});
  EXPECT_EQ(out["playbook"], "suspicious-process");
  const auto find = [&](const std::string& step, const std::string& asset) {
    for (const auto& row : out["impact"]) {
      if (row["step"] == step && row["asset"] == asset) return row;
    }
    ADD_FAILURE() << "no row for " << step << " on " << asset << ": " << out.dump(2);
    return nlohmann::json();
  };
  // suspend is declared auto: held at approve on mission-critical production, auto elsewhere.
  const auto frontend = find("suspend", "shop-frontend");
  EXPECT_EQ(frontend["declared_mode"], "auto");
  EXPECT_EQ(frontend["effective_mode"], "approve");
  EXPECT_EQ(frontend["stakeholders"],
            nlohmann::json({"team-web", "web-oncall@example.com", "#shop-incidents"}));
  EXPECT_EQ(find("suspend", "shop-database")["effective_mode"], "auto");
  // The enrolled host no entry covers runs at the unmapped ceiling, and is named.
  const auto unmapped = find("suspend", "(no asset entry)");
  EXPECT_EQ(unmapped["effective_mode"], "simulate");
  EXPECT_FALSE(unmapped["hosts"].get<std::string>().empty());
  // Only action steps (not the yara.scan query or the notifications) appear.
  for (const auto& row : out["impact"]) EXPECT_NE(row["step"], "scan");
  // The table form carries the same content.
  const auto table = controller.cli(
      {"playbooks", "impact",
       (fs::path(::riposte::testing::source_dir()) / "playbooks/suspicious_process.yaml")
           .string()});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("STAKEHOLDERS"), std::string::npos);
  EXPECT_NE(table.out.find("team-web"), std::string::npos);
}

}  // namespace
}  // namespace riposte::testing
