#pragma once

// The Store on an embedded SQLite database in WAL mode: the single-box default (one file in the
// controller's data directory). WAL lets readers proceed during a write.

#include <filesystem>

#include "controller/store/sql_store.h"

namespace riposte::controller {

namespace sql {
class SqliteDatabase;
}

class SqliteStore final : public SqlStore {
 public:
  // Opens (creating if needed, owner-only) and migrates the database to the latest schema.
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& path);
  // Opens and applies migrations only up to `target_version` (for migration tests).
  static Result<std::unique_ptr<SqliteStore>> open_at_version(const std::filesystem::path& path,
                                                              int target_version);
  static int latest_schema_version();

  // Rows stepped through by full-table scans so far (see StatementCache::full_scan_steps): what
  // the work an agent's session causes must keep at zero, whatever the size of the history.
  std::uint64_t full_scan_steps();

  // Incremental blob I/O reads only the pages asked for; a SELECT of substr() would bring the
  // whole object (up to 64 MiB by default) into memory per chunk.
  Result<std::string> read_object(const std::string& sha256, std::uint64_t offset,
                                  std::size_t max_bytes) override;

 private:
  explicit SqliteStore(std::unique_ptr<sql::SqliteDatabase> db);
  SqliteStore(sql::SqliteDatabase* connection, std::unique_ptr<sql::SqliteDatabase>&& db);
  sql::SqliteDatabase* sqlite_;  // the pool's one connection, for SQLite's own calls
};

}  // namespace riposte::controller
