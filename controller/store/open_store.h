#pragma once

// Which store a controller uses, from its `database` setting (docs/configuration.md):
//   ""                          SQLite in the data directory (DATA_DIR/riposte.db), the default
//   sqlite:PATH                 SQLite at PATH
//   postgresql://... (or postgres://...)   PostgreSQL, a libpq connection URI
// Errors name the problem and never repeat a password.

#include <filesystem>
#include <memory>
#include <string>

#include "controller/store/database.h"
#include "controller/store/store.h"

namespace riposte::controller {

inline constexpr const char* kSqliteDatabaseFile = "riposte.db";
// `database_connections`: how many a PostgreSQL store may open (connection_pool.h).
inline constexpr std::size_t kDefaultDatabaseConnections = 4;
inline constexpr std::size_t kMaxDatabaseConnections = 64;

enum class StoreKind { sqlite, postgresql };

struct StoreLocation {
  StoreKind kind = StoreKind::sqlite;
  std::string target;  // the SQLite file, or the PostgreSQL URI
  std::size_t connections = kDefaultDatabaseConnections;  // PostgreSQL only: the pool's size
};

Result<StoreLocation> parse_store_location(const std::string& database,
                                           const std::filesystem::path& data_dir);

// The URI with any password replaced by "***": what logs and status may show.
std::string redacted_database_url(const std::string& url);

Result<std::unique_ptr<Store>> open_store(const StoreLocation& location);

// A bare connection to the store's database for looking only (`riposte-controller status`): an
// SQLite file opened read-only, or a PostgreSQL session; no migration, nothing written.
Result<std::unique_ptr<sql::Database>> open_database_for_reading(const StoreLocation& location);

}  // namespace riposte::controller
