#include "agent/connection_history.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include "common/sqlite_statement.h"

namespace riposte::agent {

namespace {

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS contacts (
  remote_address TEXT NOT NULL,
  remote_port INTEGER NOT NULL,
  protocol TEXT NOT NULL,
  pid INTEGER NOT NULL,
  process TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  PRIMARY KEY (remote_address, remote_port, protocol, pid, process)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contacts_last_seen ON contacts (last_seen_ms);
)sql";

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

Stmt prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  return Stmt(raw);
}

bool has_remote(const platform::Connection& c) {
  if (c.remote_port == 0) return false;
  return c.remote_address != "0.0.0.0" && c.remote_address != "::";
}

}  // namespace

Result<std::unique_ptr<ConnectionHistory>> ConnectionHistory::open(
    const std::filesystem::path& path, std::int64_t retention_ms) {
  sqlite::create_owner_only(path.string());
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return Error{fmt::format("cannot open connection history {}: {}", path.string(), message)};
  }
  char* error = nullptr;
  if (sqlite3_exec(db, kSchema, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    sqlite3_close_v2(db);
    return Error{fmt::format("connection history {}: {}", path.string(), message)};
  }
  return std::unique_ptr<ConnectionHistory>(new ConnectionHistory(db, retention_ms));
}

ConnectionHistory::~ConnectionHistory() { sqlite3_close_v2(db_); }

Status ConnectionHistory::record(const std::vector<platform::Connection>& connections,
                                 std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr);
  auto upsert =
      prepare(db_,
              "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
              "last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms)");
  for (const auto& c : connections) {
    if (!has_remote(c)) continue;
    sqlite3_reset(upsert.get());
    sqlite3_bind_text(upsert.get(), 1, c.remote_address.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(upsert.get(), 2, c.remote_port);
    sqlite3_bind_text(upsert.get(), 3, c.protocol.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(upsert.get(), 4, c.pid);
    sqlite3_bind_text(upsert.get(), 5, c.process.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(upsert.get(), 6, now_ms);
    sqlite3_bind_int64(upsert.get(), 7, now_ms);
    if (sqlite3_step(upsert.get()) != SQLITE_DONE) {
      Error error{fmt::format("connection history: {}", sqlite3_errmsg(db_))};
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return error;
    }
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Error{fmt::format("connection history: {}", sqlite3_errmsg(db_))};
  }
  return ok_status();
}

Result<std::vector<SeenEndpoint>> ConnectionHistory::contacts(const std::string& remote_address,
                                                              std::int64_t since_ms) {
  std::lock_guard lock(mutex_);
  auto query = prepare(
      db_,
      "SELECT remote_address, remote_port, protocol, pid, process, first_seen_ms, last_seen_ms "
      "FROM contacts WHERE remote_address = ? AND last_seen_ms >= ? ORDER BY last_seen_ms DESC");
  sqlite3_bind_text(query.get(), 1, remote_address.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(query.get(), 2, since_ms);
  std::vector<SeenEndpoint> out;
  while (sqlite3_step(query.get()) == SQLITE_ROW) {
    out.push_back({reinterpret_cast<const char*>(sqlite3_column_text(query.get(), 0)),
                   static_cast<std::uint16_t>(sqlite3_column_int(query.get(), 1)),
                   reinterpret_cast<const char*>(sqlite3_column_text(query.get(), 2)),
                   static_cast<pid_t>(sqlite3_column_int(query.get(), 3)),
                   reinterpret_cast<const char*>(sqlite3_column_text(query.get(), 4)),
                   sqlite3_column_int64(query.get(), 5), sqlite3_column_int64(query.get(), 6)});
  }
  return out;
}

Result<int> ConnectionHistory::prune(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto remove = prepare(db_, "DELETE FROM contacts WHERE last_seen_ms < ?");
  sqlite3_bind_int64(remove.get(), 1, now_ms - retention_ms_);
  if (sqlite3_step(remove.get()) != SQLITE_DONE)
    return Error{fmt::format("connection history: {}", sqlite3_errmsg(db_))};
  return sqlite3_changes(db_);
}

}  // namespace riposte::agent
