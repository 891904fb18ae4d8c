#pragma once

// A fresh PostgreSQL database per test, in the throwaway cluster scripts/postgres-cluster.sh starts
// (scripts/test.sh exports its address as RIPOSTE_TEST_POSTGRES_URL). Dropped when the test ends.
// Without that variable the tests that need one are skipped, unless RIPOSTE_REQUIRE_POSTGRES=1
// (set by scripts/test.sh), which makes a missing cluster a failure: CI never skips them.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <optional>
#include <random>
#include <string>

namespace riposte::testing {

class PostgresTestDatabase {
 public:
  // The cluster's address, or nullopt (after GTEST_SKIP or a failure) when there is none.
  static std::optional<std::string> cluster_url() {
    const char* url = std::getenv("RIPOSTE_TEST_POSTGRES_URL");
    if (url != nullptr && *url != '\0') return std::string(url);
    const char* required = std::getenv("RIPOSTE_REQUIRE_POSTGRES");
    if (required != nullptr && std::string(required) == "1")
      ADD_FAILURE() << "RIPOSTE_REQUIRE_POSTGRES=1 but RIPOSTE_TEST_POSTGRES_URL is not set";
    return std::nullopt;
  }

  // Creates the database; url() is empty if that failed (the failure is reported).
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
      if (!ok) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
      PQclear(r);
    } else {
      ADD_FAILURE() << "cannot connect to " << cluster_ << ": " << PQerrorMessage(conn);
    }
    PQfinish(conn);
    return ok;
  }

  std::string cluster_;
  std::string name_;
  std::string url_;
};

}  // namespace riposte::testing
