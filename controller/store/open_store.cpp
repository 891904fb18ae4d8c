#include "controller/store/open_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>

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
  // Not repeated: whatever it is (a libpq key=value string, a JDBC URL), it may hold a password.
  // Its scheme, if it has one a person would recognize, says enough.
  const auto colon = database.find(':');
  const auto head = database.substr(0, colon == std::string::npos ? 0 : colon);
  const bool plain = !head.empty() && head.size() <= 32 &&
                     std::all_of(head.begin(), head.end(), [](unsigned char c) {
                       return std::isalnum(c) || c == '+' || c == '-' || c == '.';
                     });
  return Error{fmt::format(
      "database: the value{} is neither sqlite:PATH nor a postgresql:// URI (not shown: it may "
      "hold a password)",
      plain ? " (scheme '" + head + "')" : std::string())};
}

std::string redacted_database_url(const std::string& url) {
  // Rebuilt from what libpq itself reads out of it (sql::PostgresDatabase::parse), leaving the
  // password and every other parameter out: no pattern over the text can know where a password
  // holding '/' or '@' ends.
  const auto parts = sql::PostgresDatabase::parse(url);
  if (!parts) return "(a database URL that does not parse; not shown)";
  std::string out = "postgresql://";
  if (!parts->user.empty()) out += parts->user + "@";
  const bool socket_dir = parts->host.starts_with("/");
  if (!socket_dir) out += parts->host;
  if (!parts->port.empty()) out += ":" + parts->port;
  out += "/" + parts->dbname;
  if (socket_dir) out += "?host=" + parts->host;
  return out;
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
