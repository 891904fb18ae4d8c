#include "controller/playbooks/playbook.h"

#include <gtest/gtest.h>

#include <fstream>
#include <tuple>

#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

namespace fs = std::filesystem;

const fs::path kShipped = fs::path(::riposte::testing::source_dir()) / "playbooks";

class PlaybookLoad : public ::testing::Test {
 protected:
  // Writes `steps` under a valid header; returns the load error (or "(loaded)").
  std::string error_of(const std::string& body, const std::string& name = "p.yaml") {
    const auto file = dir.path() / name;
    std::ofstream(file) << body;
    auto loaded = load_playbook(file);
    return loaded ? std::string("(loaded)") : loaded.error().message;
  }
  std::string with_steps(const std::string& steps) {
    return "name: test\ntrigger: {observable_types: [ip]}\nsteps:\n" + steps;  // steps at line 4
  }
  std::string file(const std::string& name = "p.yaml") { return (dir.path() / name).string(); }

  testing::TempDir dir;
};

TEST(Playbooks, ShippedPlaybooksLoadWithTheirSteps) {
  const auto loaded = load_playbook_directory(kShipped);
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front();
  ASSERT_EQ(loaded.playbooks.size(), 3u);
  const auto& ioc = loaded.playbooks[0];
  EXPECT_EQ(ioc.name, "ioc-confidence");
  const auto& ip = loaded.playbooks[1];
  EXPECT_EQ(ip.name, "malicious-ip");
  const auto* kill = ip.find_step("kill");
  ASSERT_NE(kill, nullptr);
  EXPECT_EQ(kill->kind, StepKind::action);
  EXPECT_EQ(kill->action, "process.kill");
  EXPECT_EQ(kill->mode, AutonomyMode::approve);
  EXPECT_EQ(kill->on_failure, "quarantine");
  const auto* gate = ip.find_step("qualified");
  ASSERT_NE(gate, nullptr);
  ASSERT_TRUE(gate->condition);
  EXPECT_EQ(gate->condition->test({{"validation", {{"status", "qualified"}}}}).value(), true);
  EXPECT_EQ(gate->condition->test({{"validation", {{"status", "not_relevant"}}}}).value(), false);
  EXPECT_EQ(loaded.playbooks[2].name, "suspicious-process");
  EXPECT_EQ(loaded.playbooks[2].find_step("suspend")->retries, 2);
  EXPECT_EQ(loaded.playbooks[2].find_step("suspend")->backoff_ms, 5000);
}

TEST_F(PlaybookLoad, UnknownStepKindNamesFileLineAndTheKnownKinds) {
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: kil, action: process.kill, target: all}\n")),
            file() +
                ":4: step 'a': unknown kind 'kil' (known: action, query, decide, approve, "
                "notify, case, wait)");
}

// A step's parameters are checked against the action catalog at load, as `riposte action run`
// checks them: a misspelt name, a literal of the wrong type, text where a number belongs; in
// undo parameters too. Values from one expression are checked when the step runs.
TEST_F(PlaybookLoad, StepParametersAreCheckedAgainstTheCatalogAtLoad) {
  const auto step = [&](const std::string& parameters,
                        const std::string& action = "network.connections") {
    return error_of(with_steps("  - {id: a, kind: query, action: " + action +
                               ", target: host, parameters: " + parameters + "}\n"));
  };
  EXPECT_EQ(step("{history_adress: '{{ inputs.ip }}'}"),
            file() +
                ":4: step 'a' parameters: parameters for network.connections: no parameter "
                "'history_adress' (known: history_address, history_days)");
  EXPECT_NE(step("{history_days: thirty}").find("history_days"), std::string::npos);
  EXPECT_NE(step("{history_days: '{{ inputs.days }} days'}").find("renders as a string"),
            std::string::npos);
  EXPECT_EQ(step("{history_address: '{{ inputs.ip }}', history_days: '{{ inputs.days }}'}"),
            "(loaded)");
  EXPECT_EQ(step("{history_address: 'ip {{ inputs.ip }}', history_days: 30}"), "(loaded)")
      << "text into a text field";
  EXPECT_EQ(step("{historyDays: 3}"), "(loaded)") << "the JSON name, as action run takes it";
  EXPECT_NE(error_of(with_steps("  - {id: q, kind: action, action: network.quarantine, target: "
                                "host, parameters: {release_after_second: 60}}\n"))
                .find("no parameter 'release_after_second' (known: allow, release_after_seconds)"),
            std::string::npos);
  // What must be there whatever the run fills in: a process by pid and start time (a literal pid
  // above 0), a file action's path or process, a scan's rules.
  for (const auto& [action, parameters, expected] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"process.kill", "{}", "target is missing"},
           {"process.kill", "{target: {pid: 42}}", "target.start_ticks is missing"},
           {"process.kill", "{target: {pid: -5, start_ticks: 9}}",
            "target.pid must be a process id above 0"},
           {"file.collect", "{}", "give a path or a process"},
           {"file.collect", "{max_bytes: 10}", "give a path or a process"},
           {"yara.scan", "{paths: [/srv]}", "a yara.scan needs rules"},
           {"network.release", "{all: true}", "no parameter 'all': this action takes none"}}) {
    const auto error = error_of(with_steps("  - {id: a, kind: action, action: " + action +
                                           ", target: host, parameters: " + parameters + "}\n"));
    EXPECT_NE(error.find(expected), std::string::npos)
        << action << " " << parameters << ": " << error;
  }
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: action, action: process.kill, target: host, "
                                "parameters: {target: {pid: '{{ inputs.pid }}', start_ticks: "
                                "'{{ inputs.ticks }}'}}}\n")),
            "(loaded)");
  EXPECT_NE(error_of(with_steps("  - id: s\n"
                                "    kind: action\n"
                                "    action: process.suspend\n"
                                "    target: process\n"
                                "    undo: {action: process.resume, parameters: {target: "
                                "{pid: '{{ inputs.pid }}', start_tick: 5}}}\n"))
                .find("undo parameters: parameters for process.resume: no parameter "
                      "'target.start_tick' (known: target.pid, target.start_ticks"),
            std::string::npos);
}

// A playbook file's bytes reach the parameter check unchecked by any JSON parser: text that is
// not UTF-8 is refused with a reason, never an abort (found by scripts/fuzz.sh, fuzz_playbook).
TEST_F(PlaybookLoad, ParametersThatAreNotUtf8AreRefusedNotFatal) {
  const auto pid = error_of(with_steps("  - {id: a, kind: action, action: process.kill, target: "
                                       "host, parameters: {target: {pid: \"\x85\", start_ticks: 1}}}\n"));
  EXPECT_NE(pid.find("target.pid must be a process id above 0"), std::string::npos) << pid;
  const auto path = error_of(with_steps("  - {id: a, kind: action, action: file.collect, target: "
                                        "host, parameters: {path: \"/tmp/\xff\"}}\n"));
  EXPECT_NE(path.find("not UTF-8"), std::string::npos) << path;
}

TEST_F(PlaybookLoad, AKeyGivenTwiceIsRefused) {
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: action, action: host.facts, target: host, "
                                "mode: approve, mode: auto}\n")),
            file() + ":4: key 'mode' is given twice in one mapping");
}

TEST_F(PlaybookLoad, BadExpressionGivesLineAndColumn) {
  EXPECT_EQ(error_of(with_steps("  - id: gate\n"
                                "    kind: decide\n"
                                "    when: \"alert.severity = 'high'\"\n"
                                "    then: gate2\n"
                                "  - {id: gate2, kind: wait, duration: 1m}\n")),
            file() + ":6: step 'gate' when: column 16: '=' is not an operator; compare with '=='");
  EXPECT_EQ(error_of(with_steps("  - {id: n, kind: case, note: 'pid {{ alert.pid ==  }}'}\n")),
            file() + ":4: step 'n' note: column 22: expected a value, found the end");
}

TEST_F(PlaybookLoad, MissingParameterUnknownKeyAndBadMode) {
  EXPECT_EQ(error_of(with_steps("  - {id: k, kind: action, action: process.kill}\n")),
            file() + ":4: step 'k' (action) needs 'target'");
  EXPECT_EQ(error_of(with_steps("  - {id: w, kind: wait}\n")),
            file() + ":4: step 'w' (wait) needs 'duration'");
  EXPECT_NE(error_of(with_steps("  - {id: k, kind: wait, duration: 1m, colour: red}\n"))
                .find(file() + ":4: step 'k': unknown key 'colour' (known: "),
            std::string::npos);
  EXPECT_EQ(error_of(with_steps(
                "  - {id: k, kind: action, action: process.kill, target: all, mode: yolo}\n")),
            file() + ":4: step 'k': mode 'yolo' is not one of simulate, approve, auto");
  EXPECT_EQ(error_of(with_steps("  - {id: q, kind: query, action: process.kill, target: all}\n")),
            file() +
                ":4: step 'q': process.kill changes the host; a query only reads (use kind: "
                "action)");
  EXPECT_EQ(error_of(with_steps("  - {id: w, kind: wait, duration: soon}\n")),
            file() + ":4: step 'w' duration: 'soon' is not a duration like 90s, 30m, 24h or 7d");
}

TEST_F(PlaybookLoad, UnreachableStepsCyclesAndDanglingReferences) {
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: wait, duration: 1m, next: end}\n"
                                "  - {id: orphan, kind: wait, duration: 1m}\n")),
            file() + ":5: step 'orphan': no step leads here (unreachable)");
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: wait, duration: 1m}\n"
                                "  - {id: b, kind: wait, duration: 1m, next: a}\n")),
            file() + ":4: step 'a': steps form a cycle: a -> b -> a");
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: decide, when: 'true', then: nowhere}\n")),
            file() + ":4: step 'a': then names no step 'nowhere'");
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: wait, duration: 1m}\n"
                                "  - {id: a, kind: wait, duration: 1m}\n")),
            file() + ":5: step id 'a' is used twice");
  // on_failure edges count for reachability: the failure branch is not "unreachable".
  EXPECT_EQ(error_of(with_steps("  - {id: a, kind: wait, duration: 1m, on_failure: b, next: end}\n"
                                "  - {id: b, kind: case, status: resolved}\n")),
            "(loaded)");
}

TEST_F(PlaybookLoad, HeaderTriggerAndYamlErrors) {
  EXPECT_EQ(error_of("name: x\nsteps: []\n"), file() + ":1: playbook needs 'trigger'");
  EXPECT_EQ(error_of("name: x\ntrigger: {severity_at_least: urgent}\nsteps:\n"
                     "  - {id: a, kind: wait, duration: 1m}\n"),
            file() +
                ":2: trigger.severity_at_least: 'urgent' is not one of critical, high, low, "
                "medium");
  EXPECT_EQ(error_of("name: x\ntrigger: {confidence: {min: 0.9, max: 0.5}}\nsteps:\n"
                     "  - {id: a, kind: wait, duration: 1m}\n"),
            file() + ":2: trigger.confidence: need 0 <= min <= max <= 1");
  const auto yaml = error_of("name: x\ntrigger: {\nsteps: [\n");
  EXPECT_NE(yaml.find(file()), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("line"), std::string::npos) << yaml;
}

TEST_F(PlaybookLoad, RulesFileIsReadAtLoadAndItsProblemsNameTheLine) {
  const auto scan = [](const std::string& extra) {
    return "  - {id: s, kind: query, action: yara.scan, target: host, parameters: {paths: [/tmp]}" +
           extra + "}\n";
  };
  fs::create_directories(dir.path() / "rules");
  std::ofstream(dir.path() / "rules" / "team.yar") << "rule team { condition: true }\n";
  ASSERT_EQ(error_of(with_steps(scan(", rules_file: rules/team.yar"))), "(loaded)");
  const auto loaded = load_playbook(file()).value();
  EXPECT_EQ(loaded.steps[0].rules_file, "rules/team.yar");
  EXPECT_EQ(loaded.steps[0].rules_text, "rule team { condition: true }\n");

  EXPECT_EQ(error_of(with_steps(scan(", rules_file: rules/missing.yar"))).find(file() + ":4:"), 0u);
  EXPECT_NE(error_of(with_steps(scan(", rules_file: rules/missing.yar"))).find("missing.yar"),
            std::string::npos);
  for (const char* outside : {"/etc/hostname", "../outside.yar", "rules/../../outside.yar"})
    EXPECT_NE(error_of(with_steps(scan(std::string(", rules_file: ") + outside)))
                  .find("inside the playbook's directory"),
              std::string::npos)
        << outside;
  std::ofstream(dir.path() / "rules" / "binary.yar") << std::string("rule\0x", 6);
  EXPECT_NE(error_of(with_steps(scan(", rules_file: rules/binary.yar"))).find("NUL byte"),
            std::string::npos);
  EXPECT_NE(error_of(with_steps("  - {id: s, kind: query, action: host.facts, target: host, "
                                "rules_file: rules/team.yar}\n"))
                .find("rules_file is for yara.scan steps"),
            std::string::npos);
  EXPECT_NE(error_of(with_steps("  - {id: s, kind: query, action: yara.scan, target: host, "
                                "parameters: {rules: 'rule x { condition: true }'}, rules_file: "
                                "rules/team.yar}\n"))
                .find("not both"),
            std::string::npos);
}

TEST_F(PlaybookLoad, DirectoryReportsEachBadFileAndDuplicateNames) {
  const std::string good = with_steps("  - {id: a, kind: wait, duration: 1m}\n");
  std::ofstream(dir.path() / "a.yaml") << good;
  std::ofstream(dir.path() / "b.yml") << good;  // same name "test"
  std::ofstream(dir.path() / "c.yaml") << with_steps("  - {id: a, kind: nope}\n");
  std::ofstream(dir.path() / "notes.txt") << "ignored";
  const auto loaded = load_playbook_directory(dir.path());
  ASSERT_EQ(loaded.playbooks.size(), 1u);
  ASSERT_EQ(loaded.errors.size(), 2u);
  EXPECT_NE(loaded.errors[0].find("b.yml:1: playbook name 'test' is also used by"),
            std::string::npos)
      << loaded.errors[0];
  EXPECT_NE(loaded.errors[1].find("c.yaml:4: step 'a': unknown kind 'nope'"), std::string::npos)
      << loaded.errors[1];
}

}  // namespace
}  // namespace riposte::controller
