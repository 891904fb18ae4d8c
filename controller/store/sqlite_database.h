#pragma once

// sql::Database on an SQLite connection (controller/store/database.h).

#include <sqlite3.h>

#include "common/sqlite_statement.h"
#include "controller/store/database.h"

namespace riposte::controller::sql {

class SqliteDatabase final : public Database {
 public:
  // Takes ownership of `db` (closed with sqlite3_close_v2).
  explicit SqliteDatabase(sqlite3* db)
      : db_(db), cache_(std::make_unique<sqlite::StatementCache>(db)) {}
  ~SqliteDatabase() override;

  Dialect dialect() const override { return Dialect::sqlite; }
  std::unique_ptr<Cursor> prepare(const std::string& sql) override;
  Status exec(const std::string& sql) override;
  Status begin() override { return exec("BEGIN IMMEDIATE"); }
  std::int64_t changes() const override { return sqlite3_changes64(db_); }
  std::string last_error() const override { return sqlite3_errmsg(db_); }

  sqlite3* handle() const { return db_; }
  // Rows stepped through by full-table scans (sqlite::StatementCache::full_scan_steps).
  std::uint64_t full_scan_steps() const { return cache_->full_scan_steps(); }

 private:
  sqlite3* db_;
  std::unique_ptr<sqlite::StatementCache> cache_;  // finalized before db_ is closed
};

}  // namespace riposte::controller::sql
