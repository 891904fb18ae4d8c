#pragma once

// sql::Database on a PostgreSQL connection through libpq (controller/store/database.h).
//
// Statements are prepared once per connection (PQprepare, named s1, s2, ...) with the server
// inferring every parameter's type from its context; parameters travel as text, blobs as binary
// bytea. A statement runs at its first step() and its rows are buffered, so a query may be run
// while another's rows are still being read, as on SQLite.

#include <libpq-fe.h>

#include <map>
#include <optional>
#include <string>

#include "controller/store/database.h"

namespace riposte::controller::sql {

class PostgresDatabase final : public Database {
 public:
  // Connects with a libpq connection URI or keyword/value string
  // (postgresql://user@host:port/dbname?sslmode=verify-full). Errors never repeat a password.
  static Result<std::unique_ptr<PostgresDatabase>> connect(const std::string& url);
  ~PostgresDatabase() override;

  Dialect dialect() const override { return Dialect::postgresql; }
  std::unique_ptr<Cursor> prepare(const std::string& sql) override;
  Status exec(const std::string& sql) override;
  Status begin() override { return exec("BEGIN"); }
  std::int64_t changes() const override { return changes_; }
  std::string last_error() const override { return last_error_; }
  bool last_error_was_conflict() const override { return conflict_; }

  // "user@host:port/dbname", for messages: never the password.
  std::string describe() const;

  // What libpq reads out of a connection URI or key=value string; nullopt when it does not
  // parse. What may be shown (user, host, port, dbname) is left empty when it does not look like
  // one: a password holding '/' or '@' that was not percent-encoded is misread as the parts
  // after it, and must not come back as a "port" or a "database".
  struct Parts {
    std::string user, host, port, dbname, password;
  };
  static std::optional<Parts> parse(const std::string& url);

  // `?` and `?N` placeholders as `$N`, outside quoted text, quoted identifiers and comments.
  // SQLite numbers a bare `?` one past the largest index so far; so does this. Not understood
  // (so not used in the store's SQL): E'' strings with backslash escapes, $$ strings, and the
  // jsonb `?` operators (jsonb_exists() instead).
  static std::string numbered_placeholders(const std::string& sql);

  // Used by cursors: what the last statement changed or failed with.
  void note_changes(std::int64_t n) {
    changes_ = n;
    conflict_ = false;
  }
  // `result` (may be null) gives the SQLSTATE that tells a conflict (last_error_was_conflict).
  void note_error(std::string message, const PGresult* result = nullptr);
  PGconn* handle() const { return conn_; }

 private:
  explicit PostgresDatabase(PGconn* conn) : conn_(conn) {}
  void reconnect_if_lost();

  PGconn* conn_;
  std::map<std::string, std::string> prepared_;  // SQL text -> statement name
  std::int64_t changes_ = 0;
  std::string last_error_;
  bool conflict_ = false;
};

}  // namespace riposte::controller::sql
