// A controller whose store is PostgreSQL: the same controller, agent and CLI over loopback, with
// the data in a database of the throwaway cluster scripts/test.sh starts.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/build_paths.h"
#include "tests/integration/harness.h"
#include "tests/postgres_test_db.h"

namespace riposte::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

TEST(PostgresIntegration, AControllerOnPostgresqlActsAndKeepsEverythingAcrossARestart) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();

  ControllerUnderTest controller(StoreAt{database.url()});
  controller.start();
  // Nothing went to SQLite: the data directory holds keys, not a database.
  EXPECT_FALSE(fs::exists(controller.data_dir() / "riposte.db"));
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  const auto run = controller.cli({"action", "run", "--agent", agent.id, "host.facts", "--wait",
                                   "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << controller.process().log_text();
  const auto id = last_json_line(run.out).at("id").get<std::string>();

  controller.stop_gracefully();
  controller.start(/*same_ports=*/true);
  const auto action = controller.action(id);
  EXPECT_EQ(action["state"], "succeeded") << action.dump();
  EXPECT_EQ(action["agent_id"], agent.id);
  const auto verified = controller.cli({"audit", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_NE(verified.out.find("intact"), std::string::npos) << verified.out;

  // Someone with access to the database rewrites who asked for an action: the chain says where.
  PGconn* conn = PQconnectdb(database.url().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* edited = PQexec(conn, "UPDATE audit_log SET actor = 'nobody' WHERE seq = 2");
  EXPECT_EQ(std::string(PQcmdTuples(edited)), "1");
  PQclear(edited);
  PQfinish(conn);
  const auto broken = controller.cli({"audit", "verify"});
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE((broken.out + broken.err).find("BROKEN at entry 2"), std::string::npos)
      << broken.out << broken.err;
}

// A single-box deployment moves to PostgreSQL: its alerts, cases, actions and audit log are
// there after `riposte-controller migrate`, the chain verifies, and the agent reconnects.
TEST(PostgresIntegration, ASqliteDeploymentIsMigratedWithItsHistoryAndAuditChainIntact) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();

  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  const auto run = controller.cli({"action", "run", "--agent", agent.id, "host.facts", "--wait",
                                   "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto action_id = last_json_line(run.out).at("id").get<std::string>();
  const fs::path fixtures = fs::path(source_dir()) / "tests/fixtures/alerts";
  const auto submitted =
      controller.cli_json({"alerts", "submit", (fixtures / "ecs_malicious_ip.json").string()});
  const auto alert_id = submitted.at("ids").at(0).get<std::string>();
  const auto alert_before = controller.cli_json({"alerts", "show", alert_id});
  const auto case_id = alert_before.at("case_id").get<std::string>();
  ASSERT_EQ(controller.cli({"cases", "update", case_id, "--note", "moved to PostgreSQL"}).exit_code,
            0);
  const auto audit_before = controller.cli({"audit", "export"});
  ASSERT_EQ(audit_before.exit_code, 0);
  // While the controller runs, a copy would miss what it writes next: refused, nothing written
  // (the migration below needs an empty target).
  const auto sqlite = "sqlite:" + (controller.data_dir() / "riposte.db").string();
  const auto running =
      run_command({bin("riposte-controller"), "migrate", "--from", sqlite, "--to", database.url()});
  EXPECT_NE(running.exit_code, 0);
  EXPECT_NE(running.err.find("is running"), std::string::npos) << running.err;
  controller.stop_gracefully();
  // Stopped gracefully, it said so in the database: a copy of it away from its data directory
  // (no status file beside it) migrates at once, without waiting out the heartbeat's silence.
  const auto moved = controller.dir() / "moved";
  fs::create_directories(moved);
  fs::copy_file(controller.data_dir() / "riposte.db", moved / "riposte.db");
  PostgresTestDatabase other(*cluster);
  const auto copy = run_command({bin("riposte-controller"), "migrate", "--from",
                                 "sqlite:" + (moved / "riposte.db").string(), "--to", other.url()});
  EXPECT_EQ(copy.exit_code, 0) << copy.out << copy.err;

  const auto migrated = run_command(
      {bin("riposte-controller"), "migrate", "--from", sqlite, "--to", database.url()});
  ASSERT_EQ(migrated.exit_code, 0) << migrated.out << migrated.err;
  EXPECT_NE(migrated.out.find("audit chain verified"), std::string::npos) << migrated.out;
  EXPECT_NE(migrated.out.find("alerts: 1 rows"), std::string::npos) << migrated.out;
  // Twice into the same database would mix histories: refused, nothing written.
  const auto again = run_command(
      {bin("riposte-controller"), "migrate", "--from", sqlite, "--to", database.url()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("not empty"), std::string::npos) << again.err;

  controller.add_config("database: " + json(database.url()).dump() + "\n");
  controller.start(/*same_ports=*/true);
  EXPECT_EQ(controller.action(action_id)["state"], "succeeded");
  const auto alert_after = controller.cli_json({"alerts", "show", alert_id});
  EXPECT_EQ(alert_after["case_id"], case_id);
  EXPECT_EQ(alert_after["confidence"], alert_before["confidence"]);
  const auto the_case = controller.cli({"cases", "show", case_id});
  EXPECT_NE(the_case.out.find("moved to PostgreSQL"), std::string::npos) << the_case.out;
  const auto verified = controller.cli({"audit", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // The same entries, byte for byte, then what the restart itself added.
  const auto audit_after = controller.cli({"audit", "export"});
  EXPECT_EQ(audit_after.out.substr(0, audit_before.out.size()), audit_before.out);
  // The agent, still running, comes back to the migrated controller.
  EXPECT_TRUE(wait_until([&] { return controller.agent(agent.id)["status"] == "online"; },
                         std::chrono::seconds(20)))
      << controller.agent(agent.id).dump();
}

// Alert batches are stored one at a time; a burst of shippers may not hold every API worker while
// they wait: beyond one batch storing and one waiting, a batch is answered 503 with Retry-After,
// and the console's requests are served meanwhile. (On PostgreSQL, where other requests have
// connections of their own to use.)
TEST(PostgresIntegration, ABurstOfAlertBatchesLeavesTheApiServingOthers) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();
  ControllerUnderTest controller(StoreAt{database.url()});
  controller.start();
  constexpr int kShippers = 6;
  constexpr int kAlertsPerBatch = 10000;  // the most one request may hold
  std::vector<std::unique_ptr<ChildProcess>> shippers;
  for (int s = 0; s < kShippers; ++s) {
    const auto body = controller.dir() / fmt::format("batch-{}.json", s);
    json batch = json::array();
    for (int i = 0; i < kAlertsPerBatch; ++i) {
      batch.push_back(json{{"@timestamp", "2026-11-20T09:14:03.512Z"},
                           {"kibana.alert.uuid", fmt::format("burst-{}-{}", s, i)},
                           {"kibana.alert.rule.name", "Burst"},
                           {"kibana.alert.severity", "low"},
                           {"host", {{"name", fmt::format("host-{}", i % 50)}}}});
    }
    std::ofstream(body) << batch.dump();
    shippers.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "120", "--cacert",
            controller.ca_cert(), "-H", "Authorization: Bearer " + controller.admin_token(), "-H",
            "Content-Type: application/json", "--data-binary", fmt::format("@{}", body.string()),
            "https://" + controller.api() + "/api/v1/alerts"},
        controller.dir() / fmt::format("shipper-{}.log", s)));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // An analyst submitting one alert meanwhile: the CLI waits out the 503s and gets it stored.
  const auto one = controller.dir() / "one.json";
  std::ofstream(one) << json{{"@timestamp", "2026-11-20T09:14:03.512Z"},
                             {"kibana.alert.uuid", "by-hand"},
                             {"kibana.alert.rule.name", "By hand"},
                             {"host", {{"name", "host-0"}}}}
                            .dump();
  ChildProcess analyst(
      {bin("riposte"), "--server", "https://" + controller.api(), "--token",
       controller.admin_token(), "--ca", controller.ca_cert(), "alerts", "submit", one.string()},
      controller.dir() / "analyst.log");
  double worst = 0;
  int probes = 0;
  const auto any_running = [&] {
    return std::any_of(shippers.begin(), shippers.end(), [](auto& p) { return p->running(); });
  };
  while (any_running() && probes < 400) {
    const auto probe = run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{time_total}",
                                    "--cacert", controller.ca_cert(), "-H",
                                    "Authorization: Bearer " + controller.admin_token(),
                                    "https://" + controller.api() + "/api/v1/agents"});
    if (any_running()) {
      worst = std::max(worst, std::stod(probe.out));
      ++probes;
    }
  }
  int stored = 0, busy = 0;
  for (auto& shipper : shippers) {
    ASSERT_TRUE(shipper->wait_for_exit(std::chrono::seconds(120)).has_value());
    const auto code = shipper->log_text();
    stored += code == "201";
    busy += code == "503";
    if (code != "201" && code != "503") ADD_FAILURE() << "shipper answered " << code;
  }
  std::cout << stored << " batches stored, " << busy << " answered 503; /api/v1/agents worst "
            << worst << " s over " << probes << " probes\n";
  EXPECT_GE(probes, 3);
  EXPECT_GE(stored, 1);
  EXPECT_GE(busy, 1) << "six batches at once, none told to come back";
  EXPECT_EQ(stored + busy, kShippers);
  EXPECT_LT(worst, 1.0) << "the console waited behind the alert batches";
  EXPECT_EQ(analyst.wait_for_exit(std::chrono::seconds(150)), 0) << analyst.log_text();
  EXPECT_EQ(controller.cli_json({"alerts", "show", "by-hand"})["id"], "by-hand");
}

// An alert whose processing fails on a database error is tried again by its controller (no other
// would take it: the lease stays renewed), without asking again what was already decided.
TEST(PostgresIntegration, AnAlertWhoseEnrichmentFailedIsTriedAgainWithoutARestart) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();
  ControllerUnderTest controller(StoreAt{database.url()});
  controller.start();
  PGconn* conn = PQconnectdb(database.url().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  const auto sql = [&](const char* statement) {
    PGresult* r = PQexec(conn, statement);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    EXPECT_TRUE(ok) << statement << ": " << PQerrorMessage(conn);
    PQclear(r);
  };
  // The database refuses every enrichment until the trigger is dropped.
  sql("CREATE FUNCTION refuse_enrichment() RETURNS trigger AS $$ BEGIN IF NEW.enrichment <> '{}' "
      "THEN RAISE EXCEPTION 'enrichment refused by the test'; END IF; RETURN NEW; END $$ "
      "LANGUAGE plpgsql");
  sql("CREATE TRIGGER refuse BEFORE UPDATE ON alerts FOR EACH ROW EXECUTE FUNCTION "
      "refuse_enrichment()");
  const auto file = controller.dir() / "alert.json";
  std::ofstream(file) << json{{"@timestamp", "2026-11-20T09:14:03.512Z"},
                              {"kibana.alert.uuid", "alert-retry"},
                              {"kibana.alert.rule.name", "Suspicious binary"},
                              {"kibana.alert.severity", "medium"},
                              {"host", {{"name", "host-retry"}}},
                              {"file", {{"hash", {{"sha256", std::string(64, 'a')}}}}}}
                             .dump();
  ASSERT_EQ(controller.cli({"alerts", "submit", file.string()}).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        return controller.process().log_text().find("enrichment refused by the test") !=
               std::string::npos;
      },
      std::chrono::seconds(20)))
      << controller.process().log_text();
  sql("DROP TRIGGER refuse ON alerts");
  PQfinish(conn);
  json alert;
  EXPECT_TRUE(wait_until(
      [&] {
        alert = controller.cli_json({"alerts", "show", "alert-retry"});
        return alert["enrichment"].contains("enriched_at");
      },
      std::chrono::seconds(30)))
      << alert.dump(2) << controller.process().log_text();
  EXPECT_NE(controller.process().log_text().find("trying 1 alert(s) again after an error"),
            std::string::npos);
  const auto audit = controller.cli({"audit", "export"});
  std::size_t validated = 0;
  std::istringstream lines(audit.out);
  for (std::string line; std::getline(lines, line);) {
    validated += line.find("alert-retry") != std::string::npos &&
                 line.find("\"alert.validated\"") != std::string::npos;
  }
  EXPECT_EQ(validated, 1u) << audit.out;
}

// Two controllers on one database, an agent on each side.
class TwoControllers : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster = POSTGRES_CLUSTER_OR_SKIP();
    database.emplace(*cluster);
    ASSERT_FALSE(database->url().empty()) << database->error();
    a.emplace(StoreAt{database->url()});
    a->start();
    b.emplace(*a, StoreAt{database->url()});
    b->start();
  }
  // The "slow" playbook (host.facts, a wait of `pause`, process.list, resolve) on an alert about
  // this host, started through A; the agent is held by B. Returns the run's id once the run
  // waits in its pause.
  // Both controllers restarted with this host in their asset map (low criticality, lab), the
  // playbook `yaml` alone in their playbook directory, and `extra` configuration.
  void configure_both(const std::string& yaml, const std::string& extra) {
    const auto dir = a->dir() / "playbooks";
    fs::create_directories(dir);
    std::ofstream(dir / "playbook.yaml") << yaml;
    std::ofstream(a->dir() / "assets.yaml")
        << "assets:\n  - name: this-host\n    hostname: " << this_hostname()
        << "\n    environment: lab\n    criticality: low\n    owner: qa\n";
    const std::string config = "assets: " + (a->dir() / "assets.yaml").string() +
                               "\nplaybooks:\n  dir: " + dir.string() + "\n" + extra;
    for (auto* c : {&*a, &*b}) {
      c->add_config(config);
      c->stop_gracefully();
      c->start(/*same_ports=*/true);
    }
  }
  std::string start_slow_run(const std::string& pause) {
    configure_both(slow_playbook(pause), "  auto_start: false\n");
    // The agent is held by B; the run is started through A.
    const auto state = a->dir() / "agent";
    const auto id = a->enroll_agent(state);
    auto agent = a->start_agent(state, "agent.log", {"--gateway", b->gateway()});
    EXPECT_TRUE(
        wait_until([&] { return a->agent(id)["status"] == "online"; }, std::chrono::seconds(20)));
    const auto siem =
        a->cli_json({"integrations", "create", "siem", "--max-mode", "auto", "--json"});
    const auto alert = a->dir() / "alert.json";
    std::ofstream(alert) << json{{"@timestamp", alert_time_now()},
                                 {"kibana.alert.uuid", "alert-slow"},
                                 {"kibana.alert.rule.name", "Reverse shell"},
                                 {"kibana.alert.severity", "critical"},
                                 {"host", {{"name", this_hostname()}}},
                                 {"process",
                                  {{"pid", ::getpid()}, {"executable", "/usr/bin/bash"}}}}
                                .dump();
    EXPECT_EQ(a->cli_as(siem["token"], {"alerts", "submit", alert.string()}).exit_code, 0);
    const auto started = a->cli_json({"playbooks", "run", "slow", "--alert", "alert-slow"});
    agents.push_back(std::move(agent));
    const std::string run_id = started.at("id");
    json r;
    EXPECT_TRUE(wait_until(
        [&] {
          r = a->cli_json({"runs", "show", run_id});
          return r["waiting_for"] == "timer";
        },
        std::chrono::seconds(30)))
        << r.dump(2) << a->process().log_text();
    return run_id;
  }
  std::optional<std::string> cluster;
  std::optional<PostgresTestDatabase> database;
  std::optional<ControllerUnderTest> a, b;
  std::vector<std::unique_ptr<ChildProcess>> agents;
};

// An action asked of controller A for an agent connected to controller B is sent by B at once
// (LISTEN/NOTIFY, not the agent's next reconnect), and its result is seen through A.
TEST_F(TwoControllers, AnActionThroughAReachesAnAgentOnBAndItsResultIsSeenThroughA) {
  const auto state = a->dir() / "agent-on-b";
  const auto id = a->enroll_agent(state);
  auto agent = a->start_agent(state, "agent-on-b.log", {"--gateway", b->gateway()});
  ASSERT_TRUE(wait_until([&] { return a->agent(id)["status"] == "online"; },
                         std::chrono::seconds(20)))
      << agent->log_text();
  const auto started = std::chrono::steady_clock::now();
  const auto run = a->cli({"action", "run", "--agent", id, "host.facts", "--wait", "--timeout",
                           "20s", "--json"});
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << b->process().log_text();
  EXPECT_EQ(last_json_line(run.out)["state"], "succeeded");
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_NE(b->process().log_text().find("queued through another controller"), std::string::npos);
  // One audit chain for both controllers' entries.
  EXPECT_EQ(b->cli({"audit", "verify"}).exit_code, 0);
  // `riposte-controller status` on A reads the shared database: the agent B holds, both
  // controllers alive, and the URL without a password.
  const auto status =
      run_command({bin("riposte-controller"), "status", "--data-dir", a->data_dir().string(),
                   "--config", (a->dir() / "controller.yaml").string(), "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  const auto report = json::parse(status.out);
  EXPECT_EQ(report["agents"]["enrolled"], 1) << report.dump();
  EXPECT_EQ(report["agents"]["connected"], 1) << report.dump();
  ASSERT_EQ(report["agents"]["controllers"].size(), 2u) << report.dump();
  int held = 0;
  for (const auto& c : report["agents"]["controllers"]) {
    EXPECT_LT(c["seen_s_ago"].get<int>(), 30) << c.dump();
    held += c["agents_connected"].get<int>();
  }
  EXPECT_EQ(held, 1);
  EXPECT_TRUE(report["database"].get<std::string>().starts_with("postgresql://")) << report.dump();
}

// An agent revoked through A while its session is on B: B closes the session within a heartbeat
// period of its own (5 s) and refuses the agent's reconnection, as A would (found by a reviewer:
// B kept the session and its heartbeats).
TEST_F(TwoControllers, AnAgentRevokedThroughALosesItsSessionOnB) {
  const auto state = a->dir() / "agent-on-b";
  const auto id = a->enroll_agent(state);
  auto agent = a->start_agent(state, "agent-on-b.log", {"--gateway", b->gateway()});
  ASSERT_TRUE(wait_until([&] { return a->agent(id)["status"] == "online"; },
                         std::chrono::seconds(20)))
      << agent->log_text();
  ASSERT_EQ(a->cli({"agents", "revoke", id}).exit_code, 0);
  EXPECT_TRUE(wait_until(
      [&] {
        return b->process().log_text().find("revoked through another controller") !=
               std::string::npos;
      },
      std::chrono::seconds(15)))
      << b->process().log_text();
  EXPECT_TRUE(wait_until(
      [&] {
        return b->process().log_text().find("refusing handshake of revoked agent " + id) !=
               std::string::npos;
      },
      std::chrono::seconds(20)))
      << "the revoked agent's reconnection was not refused by B: " << b->process().log_text();
}

// A console behind one address for both controllers: signed in through A, the browser's next
// requests may reach B. The session is in the database, so B knows it, checks its CSRF token,
// and a sign-out through B ends it on A too.
TEST_F(TwoControllers, AConsoleSessionOpenedOnAHoldsOnBAndEndsOnBoth) {
  // curl as the console's page does it: JSON body, same-origin, cookie and CSRF header by hand.
  const auto request = [&](const ControllerUnderTest& to, const std::string& method,
                           const std::string& path, const std::string& cookie,
                           const std::string& csrf, const std::string& body) {
    std::vector<std::string> argv{
        "curl",     "-s",         "-D", "-",    "-w", "\n%{http_code}",
        "--cacert", to.ca_cert(), "-X", method, "-H", "Sec-Fetch-Site: same-origin"};
    if (!cookie.empty()) argv.insert(argv.end(), {"-H", "Cookie: " + cookie});
    if (!csrf.empty()) argv.insert(argv.end(), {"-H", "X-CSRF-Token: " + csrf});
    if (!body.empty())
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data", body});
    argv.push_back("https://" + to.api() + path);
    return run_command(argv).out;
  };
  const auto status_of = [](const std::string& out) { return out.substr(out.rfind('\n') + 1); };
  const auto signed_in =
      request(*a, "POST", "/api/v1/session", "", "", json{{"token", a->admin_token()}}.dump());
  ASSERT_EQ(status_of(signed_in), "201") << signed_in;
  const auto at = signed_in.find("__Host-riposte_session=");
  ASSERT_NE(at, std::string::npos) << signed_in;
  const auto cookie = signed_in.substr(at, signed_in.find(';', at) - at);
  const auto body_start = signed_in.find("\r\n\r\n") + 4;
  const auto csrf = json::parse(signed_in.substr(body_start, signed_in.rfind('\n') - body_start))
                        .at("csrf_token")
                        .get<std::string>();

  EXPECT_EQ(status_of(request(*b, "GET", "/api/v1/agents", cookie, "", "")), "200");
  const auto on_b = request(*b, "GET", "/api/v1/session", cookie, "", "");
  ASSERT_EQ(status_of(on_b), "200") << on_b;
  EXPECT_NE(on_b.find(csrf), std::string::npos) << "B gave another CSRF token: " << on_b;
  // A change through B needs the session's CSRF token there as well.
  EXPECT_EQ(status_of(request(*b, "DELETE", "/api/v1/session", cookie, "", "")), "403");
  EXPECT_EQ(status_of(request(*b, "DELETE", "/api/v1/session", cookie, csrf, "")), "200");
  EXPECT_EQ(status_of(request(*a, "GET", "/api/v1/agents", cookie, "", "")), "401");
  EXPECT_EQ(status_of(request(*b, "GET", "/api/v1/agents", cookie, "", "")), "401");
}

// Controller A dies; its agent fails over to B (its configured fallback gateway), and an action
// asked of B meanwhile reaches it there.
TEST_F(TwoControllers, AnAgentWhoseControllerDiesFailsOverAndGetsItsQueuedAction) {
  const auto state = a->dir() / "agent";
  const auto id = a->enroll_agent(state);
  std::ofstream(a->dir() / "agent.yaml")
      << "fallback_gateways: [" << json(b->gateway()).dump() << "]\n";
  auto agent = a->start_agent(state, "agent.log", {"--config", (a->dir() / "agent.yaml").string()});
  ASSERT_TRUE(wait_until([&] { return a->agent(id)["status"] == "online"; },
                         std::chrono::seconds(20)))
      << agent->log_text();
  a->kill_hard();
  const auto run = b->cli({"action", "run", "--agent", id, "host.facts", "--wait", "--timeout",
                           "30s", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << agent->log_text();
  EXPECT_EQ(last_json_line(run.out)["state"], "succeeded");
  EXPECT_EQ(b->agent(id)["status"], "online");
  EXPECT_NE(agent->log_text().find("retrying with " + b->gateway()), std::string::npos)
      << agent->log_text();
  // The endpoint's own view names the gateway it reached, not the one it enrolled with.
  const auto status =
      run_command({bin("riposte-agent"), "status", "--state-dir", state.string(), "--json"});
  const auto report = json::parse(status.out);
  EXPECT_EQ(report["connected_to"], b->gateway()) << status.out;
  EXPECT_EQ(report["gateway"], a->gateway()) << status.out;
}

// A controller with key material of its own cannot join: agents enrolled through the others
// would refuse its actions (another action key) or its gateway (another CA).
TEST_F(TwoControllers, AControllerWithOtherKeysIsRefusedAtStart) {
  const auto data = a->dir() / "stranger";
  const auto init = run_command({bin("riposte-controller"), "init", "--data-dir", data.string(),
                                 "--database-url", database->url()});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const auto run = run_command(
      {bin("riposte-controller"), "run", "--data-dir", data.string(), "--database-url",
       database->url(), "--agent-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("has another CA"), std::string::npos) << run.err << run.out;
  EXPECT_NE(run.err.find("copy ca.pem"), std::string::npos) << run.err;
}

// A playbook run whose controller is killed while it waits is finished by the other controller
// once the run's lease has expired, and no action of it is sent twice.
TEST_F(TwoControllers, ARunWhoseControllerDiesIsFinishedByTheOtherWithoutRepeatingAnAction) {
  const auto run_id = start_slow_run("3s");
  json r;
  a->kill_hard();  // in the middle of the wait, holding the run's lease
  ASSERT_TRUE(wait_until(
      [&] {
        r = b->cli_json({"runs", "show", run_id});
        return r["state"] == "succeeded";
      },
      std::chrono::seconds(75)))
      << r.dump(2) << b->process().log_text();
  std::vector<std::string> kinds;
  for (const auto& action : r["actions"]) {
    kinds.push_back(action["kind"]);
    EXPECT_EQ(action["state"], "succeeded");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"host.facts", "process.list"}));
  std::vector<std::string> steps;
  for (const auto& step : r["steps"]) steps.push_back(step["step"]);
  EXPECT_EQ(steps, (std::vector<std::string>{"facts", "pause", "listing", "done"}));
  EXPECT_EQ(b->cli({"audit", "verify"}).exit_code, 0);
}

// A run worked on by A, cancelled through B (a console behind one address may reach either):
// B does not end the run under A's feet; it records the cancel, A carries it out at its next
// look, and nothing the run had not yet dispatched is dispatched.
TEST_F(TwoControllers, ARunCancelledThroughTheOtherControllerIsCancelledByItsHolder) {
  const auto run_id = start_slow_run("120s");
  json r;
  const auto started = std::chrono::steady_clock::now();
  const auto cancelled = b->cli({"runs", "cancel", run_id, "--reason", "wrong host", "--json"});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.out << cancelled.err;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  r = json::parse(cancelled.out);
  EXPECT_EQ(r["state"], "cancelled") << r.dump(2);
  EXPECT_TRUE(r["cancel_requested"].is_null()) << r.dump(2);
  std::vector<std::string> kinds;
  for (const auto& action : r["actions"]) kinds.push_back(action["kind"]);
  EXPECT_EQ(kinds, (std::vector<std::string>{"host.facts"})) << r.dump(2);
  EXPECT_NE(a->process().log_text().find("cancelled by admin at step pause: wrong host"),
            std::string::npos)
      << "A, the holder, did not carry the cancel out: " << a->process().log_text();
  const auto audit = b->cli({"audit", "export"});
  EXPECT_NE(audit.out.find("run.cancel_requested"), std::string::npos);
  EXPECT_NE(audit.out.find("run.cancelled"), std::string::npos);
  EXPECT_EQ(b->cli({"audit", "verify"}).exit_code, 0);
}

// One session per agent across controllers: an agent identity that connects to B while its
// session on A is open (a copied identity, or an agent that failed over while A still held its
// connection) ends the session on A within a heartbeat check, as a newer session on one
// controller ends the older. Once the copy is gone, actions through A reach the agent on B.
TEST_F(TwoControllers, AnAgentConnectingToBEndsItsOlderSessionOnA) {
  const auto state = a->dir() / "agent";
  const auto id = a->enroll_agent(state);
  auto first = a->start_agent(state, "first.log");
  ASSERT_TRUE(
      wait_until([&] { return a->agent(id)["status"] == "online"; }, std::chrono::seconds(20)))
      << first->log_text();
  const auto copy = a->dir() / "agent-copy";
  fs::copy(state, copy, fs::copy_options::recursive);
  auto second = a->start_agent(copy, "second.log", {"--gateway", b->gateway()});
  const std::string replaced =
      "replaced by a newer session of the same agent on another controller";
  EXPECT_TRUE(
      wait_until([&] { return a->process().log_text().find(replaced) != std::string::npos; },
                 std::chrono::seconds(15)))
      << a->process().log_text();
  first.reset();  // stopped: the identity is left to the session on B
  const auto run = a->cli(
      {"action", "run", "--agent", id, "host.facts", "--wait", "--timeout", "30s", "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(last_json_line(run.out)["state"], "succeeded");
  EXPECT_EQ(a->agent(id)["status"], "online");
}

// Validation asked through A of an agent held by B: the question goes out through B, and A takes
// the answer from the store as soon as it is there, not at the validation timeout.
TEST_F(TwoControllers, AnAlertThroughAIsValidatedByAnAgentOnBWithoutWaitingOutTheTimeout) {
  const auto state = a->dir() / "agent";
  const auto id = a->enroll_agent(state);
  auto agent = a->start_agent(state, "agent.log", {"--gateway", b->gateway()});
  ASSERT_TRUE(wait_until([&] { return a->agent(id)["status"] == "online"; },
                         std::chrono::seconds(20)))
      << agent->log_text();
  const auto file = a->dir() / "alert.json";
  std::ofstream(file) << json{{"@timestamp", "2026-11-20T09:14:03.512Z"},
                              {"kibana.alert.uuid", "alert-via-b"},
                              {"kibana.alert.rule.name", "Connection to Known Malicious IP"},
                              {"kibana.alert.severity", "high"},
                              {"host", {{"name", this_hostname()}}},
                              {"destination", {{"ip", "198.18.0.83"}, {"port", 443}}}}
                             .dump();
  const auto submitted = std::chrono::steady_clock::now();
  ASSERT_EQ(a->cli({"alerts", "submit", file.string()}).exit_code, 0);
  json alert;
  ASSERT_TRUE(wait_until(
      [&] {
        alert = a->cli_json({"alerts", "show", "alert-via-b"});
        return alert["validation"].contains("decided_at");
      },
      std::chrono::seconds(75)))
      << alert.dump(2);
  // The default validation timeout is 60 s: an answer taken at the deadline is too late.
  EXPECT_LT(std::chrono::steady_clock::now() - submitted, std::chrono::seconds(15));
  // The agent never talked to that address, and said so.
  EXPECT_EQ(alert["status"], "not_relevant") << alert["validation"].dump(2);
}

// An alert A is validating (its agent, stopped, has not answered) is not taken up by B when B
// starts; once A dies and its lease has expired, B takes it over and decides it, once.
TEST_F(TwoControllers, AnAlertValidatedByAIsTakenOverByBOnlyAfterADies) {
  b->add_config("alerts:\n  validation_timeout: 5s\n");
  const auto state = a->dir() / "agent";
  const auto id = a->enroll_agent(state);
  auto agent = a->start_agent(state, "agent.log");
  ASSERT_TRUE(
      wait_until([&] { return a->agent(id)["status"] == "online"; }, std::chrono::seconds(20)))
      << agent->log_text();
  agent->signal(SIGSTOP);  // keeps its session, answers nothing: A's validation waits
  const auto file = a->dir() / "alert.json";
  std::ofstream(file) << json{{"@timestamp", "2026-11-20T09:14:03.512Z"},
                              {"kibana.alert.uuid", "alert-lease"},
                              {"kibana.alert.rule.name", "Connection to Known Malicious IP"},
                              {"kibana.alert.severity", "high"},
                              {"host", {{"name", this_hostname()}}},
                              {"destination", {{"ip", "198.18.0.80"}, {"port", 443}}}}
                             .dump();
  ASSERT_EQ(a->cli({"alerts", "submit", file.string()}).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        return a->cli_json({"alerts", "show", "alert-lease"})["status"] == "validating";
      },
      std::chrono::seconds(10)))
      << a->process().log_text();
  b->stop_gracefully();
  b->start(/*same_ports=*/true);
  a->kill_hard();
  agent->signal(SIGCONT);
  json alert;
  ASSERT_TRUE(wait_until(
      [&] {
        alert = b->cli_json({"alerts", "show", "alert-lease"});
        return alert["validation"].contains("decided_at");
      },
      std::chrono::seconds(75)))
      << alert.dump(2) << b->process().log_text();
  EXPECT_EQ(b->process().log_text().find("resuming"), std::string::npos)
      << "B took up an alert A was validating: " << b->process().log_text();
  EXPECT_NE(b->process().log_text().find("taking over 1 alert(s)"), std::string::npos);
  EXPECT_NE(
      b->process().log_text().find("alert alert-lease: " + alert["status"].get<std::string>()),
      std::string::npos)
      << b->process().log_text();
  const auto audit = b->cli({"audit", "export"});
  std::size_t decided = 0;
  std::istringstream lines(audit.out);
  for (std::string line; std::getline(lines, line);) {
    decided += line.find("alert-lease") != std::string::npos &&
               line.find("\"alert.validated\"") != std::string::npos;
  }
  EXPECT_EQ(decided, 1u) << audit.out;
  EXPECT_EQ(b->cli({"audit", "verify"}).exit_code, 0);
}

// Both controllers start automatic runs at once under one global limit of 4 automatic actions
// in 10 minutes. Counting and recording happen under the store's automation lock, so the two
// together act automatically 4 times, never more; the rest wait for a person. Without the lock,
// each controller counted before the other had recorded and together they took more (11 of a
// limit of 10, in one run of three).
TEST_F(TwoControllers, TheRateLimitsHoldAcrossBothControllers) {
  configure_both(
      "name: facts\nversion: \"1\"\ntrigger:\n  observable_types: [process]\nsteps:\n"
      "  - {id: facts, kind: action, action: host.facts, mode: auto, target: host}\n",
      "autonomy:\n  rate_limits:\n    per_host: {actions: 100, window: 10m}\n"
      "    per_playbook: {actions: 100, window: 10m}\n    global: {actions: 4, window: 10m}\n");
  const auto state = a->dir() / "agent";
  const auto id = a->enroll_agent(state);
  agents.push_back(a->start_agent(state, "agent.log", {"--gateway", b->gateway()}));
  ASSERT_TRUE(
      wait_until([&] { return a->agent(id)["status"] == "online"; }, std::chrono::seconds(20)));
  const auto siem = a->cli_json({"integrations", "create", "siem", "--max-mode", "auto", "--json"});
  std::vector<std::unique_ptr<ChildProcess>> shippers;
  for (auto* c : {&*a, &*b}) {
    json batch = json::array();
    for (int i = 0; i < 12; ++i) {
      batch.push_back({{"@timestamp", alert_time_now()},
                       {"kibana.alert.uuid", fmt::format("storm-{}-{}", c == &*a ? "a" : "b", i)},
                       {"kibana.alert.rule.name", "Storm"},
                       {"kibana.alert.severity", "high"},
                       {"host", {{"name", this_hostname()}}},
                       {"process", {{"pid", 1}}}});
    }
    const auto file = c->dir() / "storm.json";
    std::ofstream(file) << batch.dump();
    shippers.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{bin("riposte"), "--server", "https://" + c->api(), "--token",
                                 siem["token"], "--ca", c->ca_cert(), "alerts", "submit",
                                 file.string()},
        c->dir() / "shipper.log"));
  }
  for (auto& s : shippers) ASSERT_EQ(s->wait_for_exit(std::chrono::seconds(60)), 0);
  json runs;
  ASSERT_TRUE(wait_until(
      [&] {
        runs = a->cli_json({"runs", "list", "--limit", "100"})["runs"];
        int settled = 0;
        for (const auto& r : runs)
          settled += r["state"] == "succeeded" || r["waiting_for"] == "approval";
        return settled == 24;
      },
      std::chrono::seconds(150)))  // 69 s under ASan
      << runs.dump(2);
  int automatic = 0;
  for (const auto& r : runs) automatic += r["state"] == "succeeded";
  EXPECT_EQ(automatic, 4) << runs.dump(2);
}

TEST(PostgresIntegration, AnUnreachableDatabaseIsAClearErrorWithoutThePassword) {
  TempDir dir;
  const auto result = run_command(
      {bin("riposte-controller"), "init", "--data-dir", (dir.path() / "data").string(),
       "--database-url", "postgresql://riposte:s3cret-pw@127.0.0.1:1/riposte?connect_timeout=2"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("PostgreSQL"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("s3cret-pw"), std::string::npos) << result.err;
  EXPECT_EQ((result.out + result.err).find("s3cret-pw"), std::string::npos);
  // Nor when the URL does not parse: libpq's own messages quote the part they stumbled on.
  for (const std::string url : {"postgres://riposte:s3cret-pw@[::1/db",
                                "postgresql://riposte:s3cret-pw%zz@/db",
                                "postgresql:///db?password=s3cret-pw%zz",
                                "PostgreSQL://riposte:s3cret-pw@127.0.0.1:1/db?connect_timeout=2",
                                "mysql://riposte:s3cret-pw@127.0.0.1/db",
                                // Found by a reviewer: forms other than a postgresql:// URI, and
                                // a password holding a '/' that was not percent-encoded.
                                "host=127.0.0.1 port=1 password=s3cret-pw dbname=x",
                                "jdbc:postgresql://riposte:s3cret-pw@127.0.0.1/db",
                                "postgresql+psycopg2://riposte:s3cret-pw@127.0.0.1/db",
                                "postgresql:/riposte:s3cret-pw@127.0.0.1/db",
                                "postgresql://riposte:s3cret/-pw@127.0.0.1:1/db"}) {
    const auto refused = run_command({bin("riposte-controller"), "init", "--data-dir",
                                      (dir.path() / "data").string(), "--database-url", url});
    EXPECT_NE(refused.exit_code, 0) << url;
    EXPECT_EQ((refused.out + refused.err).find("s3cret"), std::string::npos)
        << url << ": " << refused.err;
    // `status` with it in the configuration: neither its report nor status.json repeats it.
    std::ofstream(dir.path() / "controller.yaml") << "database: " << json(url).dump() << "\n";
    const auto status =
        run_command({bin("riposte-controller"), "status", "--data-dir",
                     (dir.path() / "data").string(), "--config",
                     (dir.path() / "controller.yaml").string(), "--json"});
    EXPECT_EQ((status.out + status.err).find("s3cret"), std::string::npos)
        << url << ": " << status.out << status.err;
  }
}

}  // namespace
}  // namespace riposte::testing
