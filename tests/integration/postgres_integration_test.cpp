// A controller whose store is PostgreSQL: the same controller, agent and CLI over loopback, with
// the data in a database of the throwaway cluster scripts/test.sh starts.

#include <gtest/gtest.h>
#include <libpq-fe.h>

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
