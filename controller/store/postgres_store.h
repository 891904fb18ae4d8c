#pragma once

// The Store on PostgreSQL, for deployments beyond one box: the same SQL store as SQLite's
// (sql_store.h) over libpq, with PostgreSQL's own schema history.

#include <atomic>
#include <string>
#include <thread>

#include "controller/store/open_store.h"
#include "controller/store/sql_store.h"

namespace riposte::controller {

class PostgresStore final : public SqlStore {
 public:
  // Connects (a libpq URI: postgresql://user@host:port/dbname?sslmode=verify-full, or
  // postgresql:///dbname?host=/run/postgresql for a Unix socket) and migrates the database to the
  // latest schema. The error names the server, never the password. Up to `connections` are
  // opened to the server (the first now, more as concurrent calls need them; connection_pool.h).
  static Result<std::unique_ptr<PostgresStore>> open(
      const std::string& url, std::size_t connections = kDefaultDatabaseConnections);
  static int latest_schema_version();
  // Whether the database at `url` holds tables that are not a Riposte store's (migrate refuses
  // to create its tables among them). Errors as open().
  static Result<bool> holds_foreign_tables(const std::string& url);
  ~PostgresStore() override;

  // LISTENs on a second connection, on a thread of its own (stopped by the destructor).
  Status watch_queued_actions(QueuedElsewhere callback) override;

 private:
  PostgresStore(std::unique_ptr<sql::Database> db, std::string url, std::size_t connections);
  void listen(QueuedElsewhere callback);

  std::string url_;
  int wake_fd_ = -1;  // eventfd: tells the listener to stop
  std::thread listener_;
};

}  // namespace riposte::controller
