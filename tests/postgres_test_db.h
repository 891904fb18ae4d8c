#pragma once

// A fresh PostgreSQL database per test, in the throwaway cluster scripts/postgres-cluster.sh starts
// (scripts/test.sh exports its address as RIPOSTE_TEST_POSTGRES_URL). Dropped when the test ends.
// Without that variable the tests that need one are skipped, unless RIPOSTE_REQUIRE_POSTGRES=1
// (set by scripts/test.sh), which makes a missing cluster a failure: CI never skips them.
// Free of gtest (benchmarks use it too); POSTGRES_CLUSTER_OR_SKIP is for tests.

#include <libpq-fe.h>

#include <cstdlib>
#include <optional>
#include <random>
#include <string>

namespace riposte::testing {

class PostgresTestDatabase {
 public:
  // The cluster's address, or nullopt when there is none.
  static std::optional<std::string> cluster_url() {
    const char* url = std::getenv("RIPOSTE_TEST_POSTGRES_URL");
    if (url != nullptr && *url != '\0') return std::string(url);
    return std::nullopt;
  }
  // Whether a missing cluster is a failure rather than a reason to skip.
  static bool required() {
    const char* required = std::getenv("RIPOSTE_REQUIRE_POSTGRES");
    return required != nullptr && std::string(required) == "1";
  }

  // Creates the database; url() is empty if that failed, and error() says why.
  explicit PostgresTestDatabase(const std::string& cluster) : cluster_(cluster) {
    std::random_device random;
    name_ = "riposte_test_" + std::to_string(random()) + std::to_string(random());
    if (admin("CREATE DATABASE " + name_)) url_ = with_database(cluster_, name_);
  }
  ~PostgresTestDatabase() {
    if (!url_.empty()) admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  PostgresTestDatabase(const PostgresTestDatabase&) = delete;
  PostgresTestDatabase& operator=(const PostgresTestDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  const std::string& error() const { return error_; }

  // `url` (postgresql://[host]/DB?params) naming database `database` instead.
  static std::string with_database(const std::string& url, const std::string& database) {
    const auto query = url.find('?');
    const auto authority = url.find("//");
    const auto slash = url.find('/', authority + 2);
    std::string out = url.substr(0, slash == std::string::npos || slash > query ? query : slash);
    out += "/" + database;
    if (query != std::string::npos) out += url.substr(query);
    return out;
  }

 private:
  bool admin(const std::string& sql) {
    PGconn* conn = PQconnectdb(cluster_.c_str());
    bool ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
      PGresult* r = PQexec(conn, sql.c_str());
      ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      if (!ok) error_ = sql + ": " + PQresultErrorMessage(r);
      PQclear(r);
    } else {
      error_ = "cannot connect to " + cluster_ + ": " + PQerrorMessage(conn);
    }
    PQfinish(conn);
    return ok;
  }

  std::string cluster_;
  std::string name_;
  std::string url_;
  std::string error_;
};

// In a gtest test: the cluster's address, or nullopt after GTEST_SKIP (or a failure, when
// required). Use: auto cluster = POSTGRES_CLUSTER_OR_SKIP();
#define POSTGRES_CLUSTER_OR_SKIP()                                                             \
  ::riposte::testing::PostgresTestDatabase::cluster_url();                                     \
  if (!::riposte::testing::PostgresTestDatabase::cluster_url()) {                              \
    if (::riposte::testing::PostgresTestDatabase::required())                                  \
      FAIL() << "RIPOSTE_REQUIRE_POSTGRES=1 but RIPOSTE_TEST_POSTGRES_URL is not set";         \
    GTEST_SKIP() << "no PostgreSQL cluster (scripts/postgres-cluster.sh)";                     \
  }

}  // namespace riposte::testing
