#include "controller/store/open_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <regex>

#include "controller/store/postgres_database.h"
#include "controller/store/postgres_store.h"
#include "controller/store/sqlite_database.h"
#include "controller/store/sqlite_store.h"

namespace riposte::controller {

Result<StoreLocation> parse_store_location(const std::string& database,
                                           const std::filesystem::path& data_dir) {
  if (database.empty() || database == "sqlite")
    return StoreLocation{StoreKind::sqlite, (data_dir / kSqliteDatabaseFile).string()};
  if (database.starts_with("sqlite:")) {
    const auto path = database.substr(7);
    if (path.empty()) return Error{"database: sqlite: needs a file path (sqlite:/var/lib/x.db)"};
    return StoreLocation{StoreKind::sqlite, std::filesystem::absolute(path).string()};
  }
  // URI schemes are case-insensitive (RFC 3986); libpq's parser is not.
  std::string scheme = database.substr(0, database.find("://"));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (database.find("://") != std::string::npos &&
      (scheme == "postgresql" || scheme == "postgres"))
    return StoreLocation{StoreKind::postgresql, scheme + database.substr(scheme.size())};
  return Error{fmt::format("database: '{}' is neither sqlite:PATH nor a postgresql:// URI",
                           redacted_database_url(database))};
}

std::string redacted_database_url(const std::string& url) {
  // scheme://user:PASSWORD@host... and ?password=... / &password=...
  static const std::regex userinfo(R"(^([A-Za-z]+://[^:/@?]*):[^@/?]*@)");
  static const std::regex parameter(R"(([?&]password=)[^&]*)");
  auto out = std::regex_replace(url, userinfo, "$1:***@");
  return std::regex_replace(out, parameter, "$1***");
}

Result<std::unique_ptr<Store>> open_store(const StoreLocation& location) {
  if (location.kind == StoreKind::sqlite) {
    auto store = SqliteStore::open(location.target);
    if (!store) return store.error();
    return std::unique_ptr<Store>(std::move(*store));
  }
  auto store = PostgresStore::open(location.target, location.connections);
  if (!store) return store.error();
  return std::unique_ptr<Store>(std::move(*store));
}

Result<std::unique_ptr<sql::Database>> open_database_for_reading(const StoreLocation& location) {
  if (location.kind == StoreKind::postgresql) {
    auto connected = sql::PostgresDatabase::connect(location.target);
    if (!connected) return connected.error();
    return std::unique_ptr<sql::Database>(std::move(*connected));
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(location.target.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_close(raw);
    return Error{fmt::format("cannot open {}: {}", location.target, sqlite3_errstr(rc))};
  }
  sqlite3_busy_timeout(raw, 2000);
  return std::unique_ptr<sql::Database>(std::make_unique<sql::SqliteDatabase>(raw));
}

}  // namespace riposte::controller
