// A controller whose store is PostgreSQL: the same controller, agent and CLI over loopback, with
// the data in a database of the throwaway cluster scripts/test.sh starts.

#include <gtest/gtest.h>
#include <libpq-fe.h>

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
  controller.stop_gracefully();

  const auto sqlite = "sqlite:" + (controller.data_dir() / "riposte.db").string();
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

TEST(PostgresIntegration, AnUnreachableDatabaseIsAClearErrorWithoutThePassword) {
  TempDir dir;
  const auto result = run_command(
      {bin("riposte-controller"), "init", "--data-dir", (dir.path() / "data").string(),
       "--database-url", "postgresql://riposte:s3cret-pw@127.0.0.1:1/riposte?connect_timeout=2"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("PostgreSQL"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("s3cret-pw"), std::string::npos) << result.err;
  EXPECT_EQ((result.out + result.err).find("s3cret-pw"), std::string::npos);
}

}  // namespace
}  // namespace riposte::testing
