#pragma once

// The Store on PostgreSQL, for deployments beyond one box: the same SQL store as SQLite's
// (sql_store.h) over libpq, with PostgreSQL's own schema history.

#include <string>

#include "controller/store/sql_store.h"

namespace riposte::controller {

class PostgresStore final : public SqlStore {
 public:
  // Connects (a libpq URI: postgresql://user@host:port/dbname?sslmode=verify-full, or
  // postgresql:///dbname?host=/run/postgresql for a Unix socket) and migrates the database to the
  // latest schema. The error names the server, never the password.
  static Result<std::unique_ptr<PostgresStore>> open(const std::string& url);
  static int latest_schema_version();

 private:
  using SqlStore::SqlStore;
};

}  // namespace riposte::controller
