// The run engine on a real SQLite store and dispatcher, with agents played by the test (results
// fed to the dispatcher as an agent's session would) and a manual clock: every step kind,
// branching both ways, the autonomy modes and ceilings, approvals by a second person and their
// expiry, retries, timeouts, on_failure, and resuming a run without repeating its actions.
// The same runs against real agents are in tests/integration/playbook_run_integration_test.cpp.

#include "controller/playbooks/engine.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>

#include "controller/alerts/intake.h"
#include "controller/store/sqlite_store.h"
#include "protocol/action_signing.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

constexpr std::int64_t kStart = 1'790'000'000'000;

class PlaybookEngineTest : public ::testing::Test {
 protected:
  // The engine's worker may still be running a step (posting to `posted`, sending to `sent`) when
  // a test ends: stop it before the members it uses are destroyed (declared after it, they would
  // go first). A run started without draining freed `posted` under the worker once.
  void TearDown() override { engine.reset(); }

  void SetUp() override {
    store = SqliteStore::open(dir.path() / "riposte.db").value();
    key = crypto::generate_ed25519().value();
    add_agent("agent-web", "web-01", "10.0.0.5");
    add_agent("agent-db", "db-01", "10.0.0.9");
    std::ofstream(dir.path() / "assets.yaml")
        << "assets:\n"
           "  - {name: web, hostname: web-01, environment: staging, criticality: low, owner: "
           "team-web, stakeholders: [web@example.com]}\n"
           "  - {name: db, hostname: db-01, environment: production, criticality: "
           "mission-critical, owner: team-db, stakeholders: [dba@example.com]}\n";
    ASSERT_TRUE(assets.load(dir.path() / "assets.yaml"));
    dispatcher = std::make_unique<ActionDispatcher>(*store, key.get(), clock);
    dispatcher->set_sender([this](const std::string& agent, proto::Envelope e) {
      sent.emplace_back(agent, std::move(e));
      return true;
    });
  }

  void add_agent(const std::string& id, const std::string& hostname, const std::string& ip) {
    AgentRecord a;
    a.id = id;
    a.facts.hostname = hostname;
    a.facts.ip_addresses = {ip};
    a.cert_serial = "01";
    a.cert_fingerprint = "sha256:00";
    a.enrolled_at_ms = 1;
    ASSERT_TRUE(store->insert_agent(a));
  }

  // Loads `yaml` as a playbook and builds the engine with it.
  void engine_with(const std::string& yaml) {
    const auto file = dir.path() / "playbook.yaml";
    std::ofstream(file) << yaml;
    auto playbook = load_playbook(file);
    ASSERT_TRUE(playbook) << playbook.error().message;
    make_engine({*playbook});
  }
  void make_engine(std::vector<Playbook> playbooks) {
    engine.reset();
    engine = std::make_unique<PlaybookEngine>(
        PlaybookEngineDeps{*store,
                           *dispatcher,
                           assets,
                           policy,
                           clock,
                           [this](const std::string& url, const json& body) -> Status {
                             posted.emplace_back(url, body);
                             if (webhook_throws) throw std::runtime_error("injected fault");
                             if (webhook_down) return Error{"webhook answered HTTP 503"};
                             return ok_status();
                           },
                           "https://responder.example/hook",
                           {{"soc", "https://chat.example/hooks/T0KEN"}},
                           "https://controller.example:8443/ui/cases/",
                           "https://controller.example:8443/ui/approvals/"},
        std::move(playbooks));
    if (!observed) {
      dispatcher->add_observer(
          [this](const std::string& id, ActionState) { engine->action_ended(id); });
      observed = true;
    }
  }

  // Stores an alert about `host` and returns its id (and the case it opened). Submitted by an
  // integration allowed to act automatically unless `submitter` says otherwise.
  std::string alert_on(const std::string& id, const std::string& host,
                       const std::string& severity = "high",
                       const AlertSubmitter& submitter = {"siem", "ingest", "auto"}) {
    AlertRecord a;
    a.submitted_by = submitter.name;
    a.submitter_role = submitter.role;
    a.source_max_mode = submitter.max_mode;
    a.id = id;
    a.source = "generic";
    a.rule_name = "Test rule";
    a.severity = severity;
    a.timestamp_ms = clock.now_unix_ms();
    a.host_name = host;
    a.observables = {{"ip", "203.0.113.9", ""}};
    a.status = "qualified";
    a.validation = R"({"outcome": "qualified", "reason": "seen"})";
    a.confidence = R"({"score": 0.9, "decision": "respond"})";
    auto stored = store->insert_alerts({a}, 3'600'000, {"test", "alert.received", id, "{}"},
                                       clock.now_unix_ms());
    EXPECT_TRUE(stored);
    return id;
  }

  PlaybookRunRecord start(const std::string& alert, const std::string& by = "alice",
                          bool simulate_only = false) {
    auto run = engine->start(engine->playbooks().front().name, alert, by, simulate_only);
    EXPECT_TRUE(run) << run.error().message;
    engine->drain();
    return reload(run->id);
  }
  PlaybookRunRecord reload(const std::string& id) { return store->find_run(id).value().value(); }
  std::vector<RunStepRecord> steps(const std::string& id) { return store->run_steps(id).value(); }
  std::vector<ActionRecord> actions(const std::string& id) {
    return store->run_actions(id).value();
  }
  // What the agent would report for `action`.
  void agent_reports(const ActionRecord& action, bool succeeded, const std::string& output = "") {
    proto::ActionResult result;
    result.set_action_id(action.id);
    result.set_status(succeeded ? proto::ActionResult::STATUS_SUCCEEDED
                                : proto::ActionResult::STATUS_FAILED);
    if (!succeeded) result.set_message("process not found");
    result.set_output(output);
    dispatcher->handle_result(action.agent_id, result);
    engine->drain();
  }
  void tick_after_ms(std::int64_t ms) {
    clock.advance_ms(ms);
    engine->tick();
    engine->drain();
  }
  CaseRecord case_of(const PlaybookRunRecord& run) {
    return store->find_case(run.case_id).value().value();
  }

  testing::TempDir dir;
  ManualClock clock{kStart};
  std::unique_ptr<SqliteStore> store;
  crypto::PkeyPtr key;
  AssetCatalog assets;
  AutonomyPolicy policy;  // defaults: mission-critical at most approve, unmapped at most approve
  std::unique_ptr<ActionDispatcher> dispatcher;
  std::unique_ptr<PlaybookEngine> engine;
  bool observed = false;
  bool webhook_down = false;
  bool webhook_throws = false;  // a fault inside a step, as bad data once caused in JSON access
  std::vector<std::pair<std::string, proto::Envelope>> sent;
  std::vector<std::pair<std::string, json>> posted;
};

constexpr const char* kBranching = R"(
name: branching
version: "3"
owner: soc
trigger: {observable_types: [ip]}
steps:
  - {id: gate, kind: decide, when: "alert.severity == 'high'", then: raise, else: close}
  - {id: close, kind: case, status: false_positive, note: "Closed: severity {{ alert.severity }}", next: end}
  - {id: raise, kind: case, status: in_progress, severity: critical, assignee: bob, note: "Escalated {{ observables[0].value }}"}
  - {id: tell, kind: notify, url: "webhook:soc", body: {text: "case {{ case.url }}", count: "{{ len(observables) }}"}}
)";

// A step that throws (a fault of the controller's on this run's data: once, `.value()` on a result
// that was null) used to end the controller, and the run resumed into it at every start. Now it
// is tried again at the next ticks and, after 3 faults, fails the run with the reason.
TEST_F(PlaybookEngineTest, AStepThatThrowsFailsTheRunAfterThreeTriesNotTheController) {
  engine_with(kBranching);
  webhook_throws = true;
  auto run = start(alert_on("alert-fault", "web-01"));
  EXPECT_EQ(run.finished_at_ms, std::nullopt) << "one fault: tried again, not ended";
  tick_after_ms(5000);
  EXPECT_EQ(reload(run.id).finished_at_ms, std::nullopt);
  tick_after_ms(5000);
  run = reload(run.id);
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.error.find("step tell failed 3 times on an internal error"), std::string::npos)
      << run.error;
  EXPECT_NE(run.error.find("injected fault"), std::string::npos) << run.error;
  // Ended for good: later ticks do not take it up again.
  const auto tries = posted.size();
  tick_after_ms(60'000);
  EXPECT_EQ(posted.size(), tries);
}

TEST_F(PlaybookEngineTest, DecideTakesEitherBranchAndCaseAndNotifyStepsAct) {
  engine_with(kBranching);
  const auto high = start(alert_on("a-high", "web-01", "high"));
  EXPECT_EQ(high.state, "succeeded") << high.error;
  const auto high_steps = steps(high.id);
  ASSERT_EQ(high_steps.size(), 3u);
  EXPECT_EQ(high_steps[0].outcome, "then -> raise");
  EXPECT_EQ(high_steps[1].step_id, "raise");
  // The record keeps what was sent, and which webhook by name, never its URL's token.
  EXPECT_NE(high_steps[2].detail.find("\"webhook\":\"webhook:soc\""), std::string::npos);
  EXPECT_NE(high_steps[2].detail.find("\"count\":1"), std::string::npos);
  EXPECT_EQ(high_steps[2].detail.find("T0KEN"), std::string::npos);
  auto c = case_of(high);
  EXPECT_EQ(c.status, "in_progress");
  EXPECT_EQ(c.severity, "critical");
  EXPECT_EQ(c.assignee, "bob");
  const auto notes = store->case_notes(c.id).value();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].text, "Escalated 203.0.113.9");
  EXPECT_EQ(notes[0].author, "playbook:branching");
  // webhook:soc resolves to the configured URL; whole-value templates keep their type; the case
  // link is added. Then the responder hears the run ended.
  ASSERT_EQ(posted.size(), 2u);
  EXPECT_EQ(posted[0].first, "https://chat.example/hooks/T0KEN");
  EXPECT_EQ(posted[0].second["count"], 1);
  EXPECT_EQ(posted[0].second["text"], "case https://controller.example:8443/ui/cases/" + c.id);
  EXPECT_EQ(posted[1].first, "https://responder.example/hook");
  EXPECT_EQ(posted[1].second["state"], "succeeded");
  EXPECT_EQ(posted[1].second["run_id"], high.id);

  const auto low = start(alert_on("a-low", "db-01", "low"));
  EXPECT_EQ(low.state, "succeeded");
  EXPECT_EQ(steps(low.id)[0].outcome, "else -> close");
  c = case_of(low);
  EXPECT_EQ(c.status, "false_positive");
  EXPECT_TRUE(c.resolved_at_ms.has_value());
  EXPECT_FALSE(c.contained_at_ms.has_value());  // a false positive was never contained
}

constexpr const char* kKill = R"(
name: kill
version: "1"
owner: soc
trigger: {observable_types: [ip]}
steps:
  - id: kill
    kind: action
    action: process.kill
    mode: MODE
    target: host
    parameters: {target: {pid: 4242, start_ticks: 99}}
    timeout: 1m
    retries: RETRIES
    backoff: 10s
    on_failure: ON_FAILURE
  - {id: done, kind: case, status: contained, next: end}
  - {id: fallback, kind: case, note: "kill failed: {{ run.failure }}"}
)";

std::string kill_playbook(const std::string& mode, int retries = 0,
                          const std::string& on_failure = "escalate") {
  std::string yaml = kKill;
  // (Built by concatenation: GCC 12 misreads string::replace after inlining as overlapping.)
  const auto fill = [&](std::string_view name, const std::string& value) {
    const auto at = yaml.find(name);
    yaml = yaml.substr(0, at) + value + yaml.substr(at + name.size());
  };
  fill("MODE", mode);
  fill("RETRIES", std::to_string(retries));
  fill("ON_FAILURE", on_failure);
  // Unreachable steps are refused at load: the fallback exists only when something leads to it.
  if (on_failure != "fallback") yaml.erase(yaml.find("  - {id: fallback"));
  return yaml;
}

TEST_F(PlaybookEngineTest, SimulateSignsAndRecordsTheActionButSendsNothing) {
  engine_with(kill_playbook("simulate"));
  const auto run = start(alert_on("a1", "web-01"));
  EXPECT_EQ(run.state, "succeeded") << run.error;
  EXPECT_TRUE(sent.empty());
  const auto recorded = actions(run.id);
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].state, ActionState::simulated);
  EXPECT_EQ(recorded[0].agent_id, "agent-web");
  EXPECT_EQ(recorded[0].case_id, run.case_id);
  // Exactly the action that would have been sent: signed, and it verifies.
  proto::ActionRequest request;
  request.set_action_spec(recorded[0].spec);
  request.set_signature(recorded[0].signature);
  auto verified = verify_action(request, key.get());
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->kind(), "process.kill");
  EXPECT_EQ(steps(run.id)[0].outcome, "simulated");
  EXPECT_EQ(steps(run.id)[0].mode, "simulate");
  // Never delivered, also not when the agent connects later, and never expired.
  dispatcher->agent_connected("agent-web");
  tick_after_ms(3'600'000);
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(store->find_action(recorded[0].id).value()->state, ActionState::simulated);
}

TEST_F(PlaybookEngineTest, AutoDispatchesAndWaitsForTheAgentsResult) {
  engine_with(kill_playbook("auto"));
  auto run = start(alert_on("a1", "web-01"));
  EXPECT_EQ(run.state, "waiting");
  EXPECT_EQ(run.waiting_for, "actions");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].first, "agent-web");
  const auto issued = actions(run.id);
  ASSERT_EQ(issued.size(), 1u);
  EXPECT_EQ(issued[0].requester, "alice");
  proto::ProcessKillResult killed;
  killed.add_processes()->set_pid(4242);
  agent_reports(issued[0], true, killed.SerializeAsString());
  run = reload(run.id);
  EXPECT_EQ(run.state, "succeeded") << run.error;
  const auto taken = steps(run.id);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].outcome, "succeeded");
  EXPECT_EQ(taken[0].mode, "auto");
  EXPECT_NE(taken[0].detail.find("4242"), std::string::npos);  // the result is in the record
  EXPECT_EQ(case_of(run).status, "contained");
  EXPECT_TRUE(case_of(run).contained_at_ms.has_value());
}

TEST_F(PlaybookEngineTest, CeilingLowersAPlaybooksAutoToApproveOnMissionCriticalHosts) {
  engine_with(kill_playbook("auto"));
  const auto run = start(alert_on("a1", "db-01"));
  EXPECT_EQ(run.state, "waiting");
  EXPECT_EQ(run.waiting_for, "approval");
  EXPECT_TRUE(sent.empty());
  const auto pending = store->list_approvals("pending", run.case_id, 10).value();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_NE(pending[0].reason.find("mission-critical"), std::string::npos) << pending[0].reason;
  EXPECT_NE(pending[0].impact.find("dba@example.com"), std::string::npos);
  EXPECT_NE(pending[0].what.find("process.kill"), std::string::npos);
}

TEST_F(PlaybookEngineTest, ApprovalNeedsASecondPersonWhoseNameIsSignedIntoTheAction) {
  engine_with(kill_playbook("approve"));
  auto run = start(alert_on("a1", "web-01"), "alice");
  ASSERT_EQ(run.waiting_for, "approval");
  const auto approval = store->list_approvals("pending", "", 10).value().at(0);
  EXPECT_EQ(approval.requested_by, "alice");
  const auto self = store->decide_approval(approval.id, true, "alice", "", clock.now_unix_ms());
  ASSERT_FALSE(self);
  EXPECT_NE(self.error().message.find("cannot also approve"), std::string::npos);
  EXPECT_TRUE(sent.empty());
  tick_after_ms(1000);
  EXPECT_TRUE(sent.empty());  // still blocked

  ASSERT_TRUE(
      store->decide_approval(approval.id, true, "bob", "confirmed C2", clock.now_unix_ms()));
  engine->approval_decided(run.id);
  engine->drain();
  ASSERT_EQ(sent.size(), 1u);
  const auto issued = actions(run.id).at(0);
  EXPECT_EQ(issued.approver, "bob");
  proto::ActionSpec spec;
  ASSERT_TRUE(spec.ParseFromString(issued.spec));
  EXPECT_EQ(spec.approver(), "bob");  // signed: the agent sees who approved
  EXPECT_EQ(spec.requester(), "alice");
  // Deciding twice is refused.
  EXPECT_FALSE(store->decide_approval(approval.id, false, "carol", "no", clock.now_unix_ms()));
}

TEST_F(PlaybookEngineTest, DenialEndsTheRunOnceAndExpiryFollowsOnFailure) {
  // Retries and an on_failure step: neither applies to a person's "no".
  engine_with(kill_playbook("approve", 2, "fallback"));
  auto denied = start(alert_on("a1", "web-01"));
  const auto first = store->list_approvals("pending", denied.case_id, 10).value().at(0);
  ASSERT_TRUE(store->decide_approval(first.id, false, "bob", "wrong host", clock.now_unix_ms()));
  engine->approval_decided(denied.id);
  engine->drain();
  tick_after_ms(60'000);  // past any backoff: still nothing asked again
  denied = reload(denied.id);
  EXPECT_EQ(denied.state, "denied");
  EXPECT_NE(denied.error.find("denied by bob: wrong host"), std::string::npos) << denied.error;
  const auto taken = steps(denied.id);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].outcome, "denied");
  EXPECT_EQ(store->list_approvals("", denied.case_id, 10).value().size(), 1u);
  EXPECT_TRUE(sent.empty());

  engine_with(kill_playbook("approve", 0, "escalate"));
  auto expired = start(alert_on("a2", "web-01"));
  const auto second = store->list_approvals("pending", expired.case_id, 10).value().at(0);
  tick_after_ms(4 * 3'600'000 + 1);  // the default expiry is 4 h
  EXPECT_EQ(store->find_approval(second.id).value()->state, "expired");
  const auto late = store->decide_approval(second.id, true, "bob", "", clock.now_unix_ms());
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message.find("already expired"), std::string::npos);
  expired = reload(expired.id);
  EXPECT_EQ(expired.state, "escalated");
  EXPECT_NE(expired.error.find("expired"), std::string::npos);
  EXPECT_TRUE(sent.empty());
  const auto notes = store->case_notes(expired.case_id).value();
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().text.find("Escalated by playbook kill"), std::string::npos);
}

TEST_F(PlaybookEngineTest, FailedStepIsRetriedAfterBackoffWithANewActionThenOnFailure) {
  engine_with(kill_playbook("auto", 1, "fallback"));
  auto run = start(alert_on("a1", "web-01"));
  agent_reports(actions(run.id).at(0), false);
  run = reload(run.id);
  EXPECT_EQ(run.waiting_for, "backoff");
  EXPECT_EQ(run.attempt, 2);
  tick_after_ms(5'000);
  EXPECT_EQ(actions(run.id).size(), 1u);  // not before the backoff
  tick_after_ms(5'000);
  const auto both = actions(run.id);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_NE(both[0].id, both[1].id);
  agent_reports(both[1], false);
  run = reload(run.id);
  // The fallback ran to the end, but the kill did not happen: the run does not say succeeded.
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.error.find("on_failure step took over"), std::string::npos) << run.error;
  const auto taken = steps(run.id);
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_NE(taken[0].outcome.find("retry 1 of 1"), std::string::npos) << taken[0].outcome;
  EXPECT_EQ(taken[1].outcome, "failed");
  EXPECT_EQ(taken[2].step_id, "fallback");
  const auto notes = store->case_notes(run.case_id).value();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].text.find("process.kill on agent-web: failed"), std::string::npos)
      << notes[0].text;
}

TEST_F(PlaybookEngineTest, StepWhoseActionsDoNotEndInTimeFails) {
  engine_with(kill_playbook("auto", 0, "stop"));
  auto run = start(alert_on("a1", "web-01"));
  tick_after_ms(59'000);
  EXPECT_EQ(reload(run.id).state, "waiting");
  tick_after_ms(1'000);
  run = reload(run.id);
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.error.find("not finished after 60 s"), std::string::npos) << run.error;
  EXPECT_EQ(steps(run.id)[0].outcome, "timed out");
}

TEST_F(PlaybookEngineTest, ResumedRunFindsItsDispatchedActionInsteadOfSendingItAgain) {
  engine_with(kill_playbook("auto"));
  auto run = start(alert_on("a1", "web-01"));
  ASSERT_EQ(sent.size(), 1u);
  // A crash between dispatching and storing the new position: the run row still says it is
  // about to start the step.
  run.state = "running";
  run.waiting_for.clear();
  ASSERT_TRUE(store->update_run(run, nullptr, nullptr, clock.now_unix_ms()));
  auto playbooks = engine->playbooks();
  make_engine(playbooks);  // a new controller process
  ASSERT_TRUE(engine->resume());
  engine->drain();
  EXPECT_EQ(sent.size(), 1u);
  ASSERT_EQ(actions(run.id).size(), 1u);
  EXPECT_EQ(reload(run.id).waiting_for, "actions");
  agent_reports(actions(run.id).at(0), true);
  EXPECT_EQ(reload(run.id).state, "succeeded");
}

TEST_F(PlaybookEngineTest, AnalystRunOnlySimulatesAndTriggerStartsEachAlertOnce) {
  engine_with(kill_playbook("auto"));
  const auto run = start(alert_on("a1", "web-01"), "ann", /*simulate_only=*/true);
  EXPECT_EQ(run.state, "succeeded");
  EXPECT_TRUE(sent.empty());
  EXPECT_NE(steps(run.id)[0].mode_reason.find("simulate only"), std::string::npos);

  alert_on("a2", "web-01");
  engine->alert_ready("a2");
  engine->alert_ready("a2");
  engine->drain();
  const auto runs = store->list_runs("", 10).value();
  int for_a2 = 0;
  for (const auto& r : runs) for_a2 += r.alert_id == "a2";
  EXPECT_EQ(for_a2, 1);
  EXPECT_EQ(sent.size(), 1u);
  // Does not apply: no IP observable.
  AlertRecord other;
  other.id = "a3";
  other.source = "generic";
  other.severity = "high";
  other.host_name = "web-01";
  ASSERT_TRUE(store->insert_alerts({other}, 1000, {"t", "e", "a3", "{}"}, clock.now_unix_ms()));
  EXPECT_FALSE(engine->start("kill", "a3", "alice", false));
}

TEST_F(PlaybookEngineTest, WaitStepWaitsForTheClock) {
  engine_with(R"(
name: waits
version: "1"
trigger: {}
steps:
  - {id: pause, kind: wait, duration: 30s}
  - {id: done, kind: case, status: resolved}
)");
  auto run = start(alert_on("a1", "web-01"));
  EXPECT_EQ(run.waiting_for, "timer");
  tick_after_ms(29'000);
  EXPECT_EQ(reload(run.id).state, "waiting");
  tick_after_ms(1'000);
  EXPECT_EQ(reload(run.id).state, "succeeded");
  EXPECT_EQ(case_of(run).status, "resolved");
}

constexpr const char* kGate = R"(
name: gate
version: "1"
trigger: {}
steps:
  - {id: ask, kind: approve, reason: "Isolate {{ alert.host.name }}?", expires: 10m, on_failure: refused}
  - {id: yes, kind: case, status: contained, next: end}
  - {id: refused, kind: notify, url: "webhook:soc", body: {text: "{{ run.failure }}"}, on_failure: stop}
)";

TEST_F(PlaybookEngineTest, ApproveStepIsAHumanGateAndAFailingWebhookIsRecordedNotFatal) {
  engine_with(kGate);
  auto yes = start(alert_on("a1", "web-01"), "alice");
  ASSERT_EQ(yes.waiting_for, "approval");
  auto request = store->list_approvals("pending", yes.case_id, 10).value().at(0);
  EXPECT_EQ(request.reason, "Isolate web-01?");
  EXPECT_EQ(request.expires_at_ms, clock.now_unix_ms() + 600'000);
  ASSERT_TRUE(store->decide_approval(request.id, true, "bob", "", clock.now_unix_ms()));
  engine->approval_decided(yes.id);
  engine->drain();
  yes = reload(yes.id);
  EXPECT_EQ(yes.state, "succeeded");
  EXPECT_EQ(steps(yes.id)[0].outcome, "approved by bob");
  EXPECT_EQ(case_of(yes).status, "contained");

  // Denied: the run ends there, as denied; the on_failure step is for failures, not decisions.
  auto no = start(alert_on("a2", "db-01"), "alice");
  request = store->list_approvals("pending", no.case_id, 10).value().at(0);
  ASSERT_TRUE(store->decide_approval(request.id, false, "bob", "not now", clock.now_unix_ms()));
  engine->approval_decided(no.id);
  engine->drain();
  no = reload(no.id);
  EXPECT_EQ(no.state, "denied");
  EXPECT_EQ(no.error, "step ask: denied by bob: not now");

  // Expired: the on_failure notify runs; with the webhook down the notification is recorded as
  // not sent (on the case and in the audit log) and the run ends failed for the expiry.
  webhook_down = true;
  posted.clear();
  no = start(alert_on("a3", "db-01"), "alice");
  tick_after_ms(600'001);
  no = reload(no.id);
  EXPECT_EQ(no.state, "failed");
  EXPECT_NE(no.error.find("step ask failed (approval"), std::string::npos) << no.error;
  EXPECT_EQ(steps(no.id).back().outcome, "not sent: webhook answered HTTP 503");
  // First the responders were told that a decision waits, with the console's link to it (the
  // hook is down: that failure is audited too), then the on_failure notify said it expired.
  ASSERT_GE(posted.size(), 2u);
  // (The case also holds the earlier runs' approvals: this run's is the one to link.)
  std::string asked_id;
  for (const auto& a : store->list_approvals("", no.case_id, 10).value())
    if (a.run_id == no.id) asked_id = a.id;
  ASSERT_FALSE(asked_id.empty());
  EXPECT_EQ(posted[0].first, "https://responder.example/hook");
  EXPECT_EQ(posted[0].second["event"], "approval_requested");
  EXPECT_EQ(posted[0].second["approval_link"],
            "https://controller.example:8443/ui/approvals/" + asked_id);
  EXPECT_EQ(posted[0].second["requested_by"], "alice");
  EXPECT_EQ(posted[1].second["text"].get<std::string>().find("expired") != std::string::npos,
            true)
      << posted[1].second.dump();
  // The responder is still told (the hook is down, so the attempt fails and is audited).
  const auto entries = store->audit_entries_about(no.case_id, 100).value();
  bool audited = false;
  bool announcement_failed = false;
  for (const auto& e : entries) {
    audited = audited || e.event == "run.notify_failed";
    announcement_failed = announcement_failed || e.event == "approval.notify_failed";
  }
  EXPECT_TRUE(audited);
  EXPECT_TRUE(announcement_failed);
}

TEST_F(PlaybookEngineTest, AnActionsTimeoutCountsFromItsDispatchNotFromALongApproval) {
  engine_with(kill_playbook("approve", 0, "stop"));
  auto run = start(alert_on("a1", "web-01"));
  const auto request = store->list_approvals("pending", run.case_id, 10).value().at(0);
  clock.advance_ms(30 * 60'000);  // the approver took half an hour; the step's timeout is 1 min
  ASSERT_TRUE(store->decide_approval(request.id, true, "bob", "", clock.now_unix_ms()));
  engine->approval_decided(run.id);
  engine->drain();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(reload(run.id).waiting_for, "actions");
  tick_after_ms(59'000);
  EXPECT_EQ(reload(run.id).state, "waiting");
  tick_after_ms(1'000);
  EXPECT_EQ(reload(run.id).state, "failed");
}

TEST_F(PlaybookEngineTest, AnInputThatCannotBeComputedFailsTheRunBeforeAnyStep) {
  engine_with(R"(
name: bad-input
version: "1"
trigger: {}
inputs: {n: "{{ len(alert.severity) > alert.host }}"}
steps:
  - {id: done, kind: case, status: resolved}
)");
  const auto run = start(alert_on("a1", "web-01"));
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.error.find("input n:"), std::string::npos) << run.error;
  EXPECT_TRUE(steps(run.id).empty());
  EXPECT_EQ(case_of(run).status, "new");
  ASSERT_FALSE(posted.empty());
  EXPECT_EQ(posted.back().second["state"], "failed");
}


// Bounded authority (issue 17): who an alert speaks for, how much automation may do, undo.

constexpr const char* kContain = R"(
name: contain
version: "1"
owner: soc
trigger: {observable_types: [ip]}
steps:
  - id: suspend
    kind: action
    action: process.suspend
    mode: auto
    target: host
    parameters: {target: {pid: 4242, start_ticks: 99}}
    undo:
      action: process.resume
      parameters: {target: {pid: 4242, start_ticks: 99}}
    timeout: 1m
  - id: kill
    kind: action
    action: process.kill
    mode: approve
    target: host
    parameters: {target: {pid: 4242, start_ticks: 99}}
    timeout: 1m
    retries: 2
  - {id: done, kind: case, status: contained}
)";

// The kind of the one action of `run` sent last, and its spec's parameters.
// The action of `run` of `kind` (a run's actions issued in the same millisecond have no order).
ActionRecord action_of_kind(const std::vector<ActionRecord>& actions, const std::string& kind) {
  for (const auto& a : actions)
    if (a.kind == kind) return a;
  ADD_FAILURE() << "no " << kind << " action";
  return {};
}

proto::ActionSpec last_spec(const std::vector<std::pair<std::string, proto::Envelope>>& sent) {
  proto::ActionSpec spec;
  EXPECT_TRUE(spec.ParseFromString(sent.back().second.action_request().action_spec()));
  return spec;
}

TEST_F(PlaybookEngineTest, APersonsAlertWaitsForAnotherPersonEvenOnAnAutoHost) {
  engine_with(kill_playbook("auto"));
  // web-01 is staging/low: its ceiling is auto. The alert is an analyst's.
  alert_on("a1", "web-01", "high", {"ann", "analyst", ""});
  engine->alert_ready("a1");
  engine->drain();
  const auto run = store->list_runs("", 10).value().at(0);
  EXPECT_EQ(run.started_by, "controller");
  EXPECT_EQ(run.requested_by, "ann");  // the run acts for the alert's submitter
  EXPECT_EQ(run.waiting_for, "approval");
  EXPECT_TRUE(sent.empty());
  const auto approval = store->list_approvals("pending", "", 10).value().at(0);
  EXPECT_NE(approval.reason.find("submitted by a person (ann"), std::string::npos)
      << approval.reason;
  EXPECT_EQ(approval.requested_by, "ann");
  // The submitter cannot approve what her own alert started.
  const auto self = store->decide_approval(approval.id, true, "ann", "", clock.now_unix_ms());
  ASSERT_FALSE(self);
  EXPECT_NE(self.error().message.find("cannot also approve"), std::string::npos);
  // Nor when someone else started the run over her alert.
  alert_on("a2", "web-01", "high", {"ann", "analyst", ""});
  auto manual = engine->start("kill", "a2", "rob", false);
  ASSERT_TRUE(manual) << manual.error().message;
  engine->drain();
  std::string second;
  const auto pending = store->list_approvals("pending", "", 10).value();
  for (const auto& a : pending)
    if (a.run_id == manual->id) second = a.id;
  ASSERT_FALSE(second.empty());
  EXPECT_FALSE(store->decide_approval(second, true, "ann", "", clock.now_unix_ms()));
  EXPECT_FALSE(store->decide_approval(second, true, "rob", "", clock.now_unix_ms()));
  EXPECT_TRUE(store->decide_approval(second, true, "carol", "", clock.now_unix_ms()));
}

TEST_F(PlaybookEngineTest, AnIntegrationsMaxModeCapsItsRuns) {
  engine_with(kill_playbook("auto"));
  alert_on("a1", "web-01", "high", {"siem-lab", "ingest", "simulate"});
  engine->alert_ready("a1");
  engine->drain();
  const auto run = store->list_runs("", 10).value().at(0);
  EXPECT_EQ(run.state, "succeeded");
  EXPECT_TRUE(sent.empty());
  const auto taken = steps(run.id).at(0);
  EXPECT_EQ(taken.mode, "simulate");
  EXPECT_NE(taken.mode_reason.find("integration siem-lab (max mode simulate)"), std::string::npos)
      << taken.mode_reason;
  // The same alert from an integration trusted with auto acts at once.
  alert_on("a2", "web-01", "high", {"siem-prod", "ingest", "auto"});
  engine->alert_ready("a2");
  engine->drain();
  ASSERT_EQ(sent.size(), 1u);
}

TEST_F(PlaybookEngineTest, AutomaticActionsBeyondTheRateLimitWaitForApproval) {
  policy.rate_limits.per_host = {3, 600'000};
  engine_with(kill_playbook("auto"));
  std::vector<std::string> runs;
  for (int i = 0; i < 5; ++i) {
    const auto id = fmt::format("a{}", i);
    alert_on(id, "web-01");
    engine->alert_ready(id);
  }
  engine->drain();
  EXPECT_EQ(sent.size(), 3u);  // the first three act at once
  const auto pending = store->list_approvals("pending", "", 10).value();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_NE(pending[0].reason.find("autonomy.rate_limits.per_host: 3"), std::string::npos)
      << pending[0].reason;
  // The limit is on the case too, and the dispatched runs stay automatic when looked at again.
  const auto notes = store->case_notes(pending[0].case_id).value();
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().text.find("Rate limit"), std::string::npos);
  const auto all_runs = store->list_runs("", 10).value();
  for (const auto& r : all_runs) engine->approval_decided(r.id);
  engine->drain();
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(store->list_approvals("pending", "", 10).value().size(), 2u);
  // Once the window has passed, web-01 acts automatically again.
  clock.advance_ms(600'001);
  alert_on("a9", "web-01");
  engine->alert_ready("a9");
  engine->drain();
  EXPECT_EQ(sent.size(), 4u);
}

TEST_F(PlaybookEngineTest, ADeniedKillUndoesTheSuspendAndIsNotAskedAgain) {
  engine_with(kContain);
  auto run = start(alert_on("a1", "web-01"), "alice");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(last_spec(sent).kind(), "process.suspend");
  agent_reports(actions(run.id).at(0), true);
  run = reload(run.id);
  ASSERT_EQ(run.waiting_for, "approval");
  const auto approval = store->list_approvals("pending", "", 10).value().at(0);
  ASSERT_TRUE(store->decide_approval(approval.id, false, "bob", "not this one", clock.now_unix_ms()));
  engine->approval_decided(run.id);
  engine->drain();
  // The suspended process is resumed: the undo goes to the agent the suspend acted on.
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent.back().first, "agent-web");
  const auto resume = last_spec(sent);
  EXPECT_EQ(resume.kind(), "process.resume");
  run = reload(run.id);
  EXPECT_EQ(run.step, "undo:suspend");
  agent_reports(action_of_kind(actions(run.id), "process.resume"), true);
  run = reload(run.id);
  EXPECT_EQ(run.state, "denied");
  EXPECT_NE(run.error.find("denied by bob: not this one"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("undone: suspend succeeded"), std::string::npos) << run.error;
  const auto taken = steps(run.id);
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[1].outcome, "denied");
  EXPECT_EQ(taken[2].step_id, "undo:suspend");
  EXPECT_EQ(taken[2].outcome, "succeeded");
  // Denied once, asked once: the kill's retries do not ask again.
  tick_after_ms(3'600'000);
  EXPECT_EQ(store->list_approvals("", run.case_id, 10).value().size(), 1u);
  EXPECT_EQ(sent.size(), 2u);
}

TEST_F(PlaybookEngineTest, CancelStopsTheRunCancelsItsApprovalsAndUndoes) {
  engine_with(kContain);
  auto run = start(alert_on("a1", "web-01"), "alice");
  agent_reports(actions(run.id).at(0), true);
  ASSERT_EQ(reload(run.id).waiting_for, "approval");
  auto cancelled = engine->cancel(run.id, "rob", "wrong host");
  ASSERT_TRUE(cancelled) << cancelled.error().message;
  EXPECT_EQ(store->list_approvals("cancelled", "", 10).value().size(), 1u);
  EXPECT_EQ(last_spec(sent).kind(), "process.resume");
  agent_reports(action_of_kind(actions(run.id), "process.resume"), true);
  run = reload(run.id);
  EXPECT_EQ(run.state, "cancelled");
  EXPECT_NE(run.error.find("cancelled by rob at step kill: wrong host"), std::string::npos)
      << run.error;
  bool audited = false;
  const auto entries = store->audit_entries_about(run.case_id, 100).value();
  for (const auto& e : entries) audited |= e.event == "run.cancelled" && e.actor == "rob";
  EXPECT_TRUE(audited);
  // An ended run cannot be cancelled again.
  const auto again = engine->cancel(run.id, "rob", "again");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("already ended"), std::string::npos);
  EXPECT_FALSE(engine->cancel("no-such-run", "rob", "x"));
}

TEST_F(PlaybookEngineTest, ASecondRunOfAPlaybookOnAnAlertIsRefusedUnlessForced) {
  engine_with(kill_playbook("approve"));
  const auto first = start(alert_on("a1", "web-01"), "alice");
  const auto second = engine->start("kill", "a1", "rob", false);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("an unfinished run " + first.id), std::string::npos)
      << second.error().message;
  const auto forced = engine->start("kill", "a1", "rob", false, /*force=*/true);
  ASSERT_TRUE(forced) << forced.error().message;
  EXPECT_NE(forced->id, first.id);
}

TEST_F(PlaybookEngineTest, ANotifyStepWithAnUndefinedWebhookIsSkippedWithANote) {
  engine_with(R"(
name: tell
trigger: {observable_types: [ip]}
steps:
  - {id: tell, kind: notify, url: "webhook:nowhere", body: {text: "case {{ case.url }}"}}
  - {id: done, kind: case, status: contained}
)");
  const auto run = start(alert_on("a1", "web-01"));
  EXPECT_EQ(run.state, "succeeded") << run.error;
  EXPECT_NE(steps(run.id)[0].outcome.find("skipped: webhook:nowhere is not defined"),
            std::string::npos);
  const auto notes = store->case_notes(run.case_id).value();
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes[0].text.find("not sent"), std::string::npos) << notes[0].text;
}

TEST_F(PlaybookEngineTest, AStormOfNotificationsIsRateLimitedIntoADigest) {
  policy.rate_limits.webhook = {3, 60'000};
  engine_with(R"(
name: tell
trigger: {observable_types: [ip]}
steps:
  - {id: tell, kind: notify, url: "webhook:soc", body: {text: "alert {{ alert.id }}"}}
)");
  for (int i = 0; i < 8; ++i) start(alert_on(fmt::format("a{}", i), "web-01"));
  // Each run posts its notify and the responder summary: 16 posts asked, 3 per minute per URL.
  std::size_t to_chat = 0;
  for (const auto& [url, body] : posted) to_chat += url.find("chat.example") != std::string::npos;
  EXPECT_EQ(to_chat, 3u);
  tick_after_ms(60'000);
  std::size_t digests = 0;
  for (const auto& [url, body] : posted) {
    if (body.value("event", "") != "notifications_batched") continue;
    ++digests;
    if (url.find("chat.example") != std::string::npos) {
      EXPECT_EQ(body["count"], 5);
    }
  }
  EXPECT_EQ(digests, 2u);  // one per webhook: the chat channel and the responder's
}

}  // namespace
}  // namespace riposte::controller

namespace riposte::controller {
namespace {

// Two playbooks on one alert: one contains, the other would close as a false positive. The
// containment wins, whichever order they finish in; the losing close is recorded on the case.
TEST_F(PlaybookEngineTest, TwoPlaybooksOnOneCaseDoNotRaceOnItsStatus) {
  const auto write = [&](const std::string& name, const std::string& yaml) {
    std::ofstream(dir.path() / name) << yaml;
    return load_playbook(dir.path() / name).value();
  };
  make_engine({write("contain.yaml", R"(
name: contain
trigger: {observable_types: [ip]}
steps:
  - {id: c, kind: case, status: contained, note: "contained by the first playbook"}
)"),
               write("close.yaml", R"(
name: close
trigger: {observable_types: [ip]}
steps:
  - {id: fp, kind: case, status: false_positive, note: "nothing to see"}
)")});
  alert_on("a1", "web-01");
  auto first = engine->start("contain", "a1", "alice", false);
  ASSERT_TRUE(first) << first.error().message;
  engine->drain();
  auto second = engine->start("close", "a1", "alice", false);
  ASSERT_TRUE(second) << second.error().message;
  engine->drain();
  const auto closed = reload(second->id);
  EXPECT_EQ(closed.state, "succeeded");
  EXPECT_EQ(case_of(closed).status, "contained");
  const auto fp_steps = steps(second->id);
  ASSERT_FALSE(fp_steps.empty());
  EXPECT_NE(fp_steps.back().outcome.find("case not false_positive"), std::string::npos)
      << fp_steps.back().outcome;
  bool noted = false;
  const auto notes = store->case_notes(closed.case_id).value();  // kept: not a temporary's
  for (const auto& n : notes)
    noted |= n.text.find("would set the case false_positive; kept: run " + first->id) !=
             std::string::npos;
  EXPECT_TRUE(noted) << "both decisions are on the record";
}


TEST_F(PlaybookEngineTest, ASimulatedRunNeitherContainsTheCaseNorTellsAnyone) {
  engine_with(R"(
name: shadow
trigger: {observable_types: [ip]}
steps:
  - {id: kill, kind: action, action: process.kill, mode: auto, target: host,
     parameters: {target: {pid: 4242, start_ticks: 99}}}
  - {id: done, kind: case, status: contained, note: "killed"}
  - {id: tell, kind: notify, url: "webhook:soc", body: {text: "contained"}}
)");
  alert_on("a1", "web-01", "high", {"siem-lab", "ingest", "simulate"});
  engine->alert_ready("a1");
  engine->drain();
  const auto run = store->list_runs("", 10).value().at(0);
  EXPECT_EQ(run.state, "succeeded");
  EXPECT_TRUE(sent.empty());
  EXPECT_NE(case_of(run).status, "contained");
  const auto taken = steps(run.id);
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_NE(taken[1].outcome.find("the run's actions were simulated"), std::string::npos)
      << taken[1].outcome;
  EXPECT_EQ(taken[2].outcome, "simulated: not sent (the run's actions were simulated)");
  for (const auto& [url, body] : posted) EXPECT_EQ(url.find("chat.example"), std::string::npos);
}

TEST_F(PlaybookEngineTest, UndoLeavesAloneWhatAnotherRunStillHolds) {
  engine_with(kContain);
  auto first = start(alert_on("a1", "web-01"), "alice");
  agent_reports(action_of_kind(actions(first.id), "process.suspend"), true);
  auto second = engine->start("contain", "a1", "rob", false, /*force=*/true);
  ASSERT_TRUE(second) << second.error().message;
  engine->drain();
  agent_reports(action_of_kind(actions(second->id), "process.suspend"), true);
  ASSERT_EQ(reload(second->id).waiting_for, "approval");
  // Cancelling the first must not resume the process the second still has suspended.
  ASSERT_TRUE(engine->cancel(first.id, "carol", "duplicate"));
  first = reload(first.id);
  EXPECT_EQ(first.state, "cancelled");
  EXPECT_NE(first.error.find("undone: suspend skipped"), std::string::npos) << first.error;
  for (const auto& [agent, envelope] : sent) {
    proto::ActionSpec spec;
    spec.ParseFromString(envelope.action_request().action_spec());
    EXPECT_NE(spec.kind(), "process.resume");
  }
  // The second, cancelled in turn, is the last holder: it resumes.
  ASSERT_TRUE(engine->cancel(second->id, "carol", "done"));
  EXPECT_EQ(last_spec(sent).kind(), "process.resume");
}

}  // namespace
}  // namespace riposte::controller
