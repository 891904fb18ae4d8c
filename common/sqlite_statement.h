#pragma once

// A prepared SQLite statement with positional binding, shared by the controller's store and the
// agent's local databases: Statement(db, sql).bind(a, b, c).run(). Header-only; users link SQLite.

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace riposte::sqlite {

// A BLOB parameter (std::string binds as TEXT).
struct Blob {
  std::string_view bytes;
};

inline sqlite3_stmt* prepare_or_throw(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    // SQL text is ours: a failure to prepare is a programming error.
    throw std::logic_error(fmt::format("cannot prepare '{}': {}", sql, sqlite3_errmsg(db)));
  }
  return raw;
}

// Prepared statements kept for reuse: parsing SQL costs more than running the small queries the
// controller and agent make on every action. Not thread-safe; use under the owner's lock.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, entry] : entries_) sqlite3_finalize(entry.stmt);
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;
  sqlite3* db() const { return db_; }
  // Rows the cached statements stepped through in full-table scans, all time: a query that ought
  // to use an index and does not shows here (SQLITE_STMTSTATUS_FULLSCAN_STEP).
  std::uint64_t full_scan_steps() const { return full_scan_steps_; }

  // A reset statement for `sql`, or nullptr if that statement is already in use (the caller
  // then prepares its own).
  sqlite3_stmt* acquire(const std::string& sql) {
    auto& entry = entries_[sql];
    if (entry.in_use) return nullptr;
    if (entry.stmt == nullptr) entry.stmt = prepare_or_throw(db_, sql.c_str());
    entry.in_use = true;
    return entry.stmt;
  }
  void release(sqlite3_stmt* stmt) {
    full_scan_steps_ += static_cast<std::uint64_t>(
        sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, /*reset=*/1));
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (auto& [sql, entry] : entries_) {
      if (entry.stmt == stmt) entry.in_use = false;
    }
  }

 private:
  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  sqlite3* db_;
  std::map<std::string, Entry> entries_;
  std::uint64_t full_scan_steps_ = 0;
};

// Finalizes a statement of its own, hands a cached one back.
struct StatementReleaser {
  StatementCache* cache = nullptr;
  void operator()(sqlite3_stmt* s) const {
    if (cache != nullptr)
      cache->release(s);
    else
      sqlite3_finalize(s);
  }
};

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db), stmt_(prepare_or_throw(db, sql)) {}
  Statement(sqlite3* db, const std::string& sql) : Statement(db, sql.c_str()) {}
  Statement(StatementCache& cache, const std::string& sql) : db_(cache.db()) {
    if (auto* cached = cache.acquire(sql)) {
      stmt_.reset(cached);
      stmt_.get_deleter().cache = &cache;
    } else {
      stmt_.reset(prepare_or_throw(db_, sql.c_str()));
    }
  }

  template <typename... Args>
  Statement& bind(const Args&... args) {
    int index = 0;
    (bind_one(++index, args), ...);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int step() { return sqlite3_step(stmt_.get()); }

  Status run() {
    const int rc = step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      return Error{fmt::format("database: {}", sqlite3_errmsg(db_))};
    return ok_status();
  }

  // All of the text, a NUL inside it included (a C string would end there).
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_.get(), col);
    const int n = sqlite3_column_bytes(stmt_.get(), col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  std::string blob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), col));
    const int n = sqlite3_column_bytes(stmt_.get(), col);
    return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(n));
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  std::optional<std::int64_t> optional_integer(int col) const {
    if (is_null(col)) return std::nullopt;
    return integer(col);
  }

  // One parameter, numbered from 1 (what bind() does for each of its arguments).
  template <typename T>
  void bind_at(int index, const T& value) {
    bind_one(index, value);
  }

 private:
  void bind_one(int i, std::string_view v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_one(int i, const std::string& v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_one(int i, const char* v) {
    sqlite3_bind_text(stmt_.get(), i, v, -1, SQLITE_TRANSIENT);
  }
  void bind_one(int i, Blob v) {
    sqlite3_bind_blob(stmt_.get(), i, v.bytes.data(), static_cast<int>(v.bytes.size()),
                      SQLITE_TRANSIENT);
  }
  void bind_one(int i, std::int64_t v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void bind_one(int i, std::uint64_t v) {
    sqlite3_bind_int64(stmt_.get(), i, static_cast<std::int64_t>(v));
  }
  void bind_one(int i, int v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void bind_one(int i, std::uint32_t v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void bind_one(int i, const std::optional<std::int64_t>& v) {
    if (v)
      sqlite3_bind_int64(stmt_.get(), i, *v);
    else
      sqlite3_bind_null(stmt_.get(), i);
  }

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, StatementReleaser> stmt_;
};

inline Error db_error(sqlite3* db, std::string_view what) {
  return Error{fmt::format("database: {}: {}", what, sqlite3_errmsg(db))};
}

// Steps `q` to the end, turning each row into a T; a step error becomes "database: WHAT: ...".
template <typename Row>
auto collect_rows(sqlite3* db, Statement& q, Row row, std::string_view what)
    -> Result<std::vector<decltype(row(q))>> {
  std::vector<decltype(row(q))> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(row(q));
  if (rc != SQLITE_DONE) return db_error(db, what);
  return out;
}

// Runs SQL text without results (schema, pragmas, BEGIN/COMMIT).
inline Status exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    Error error{fmt::format("database: {}", message != nullptr ? message : "unknown error")};
    sqlite3_free(message);
    return error;
  }
  return ok_status();
}

// Databases hold what is private to the host or the SOC (tokens' hashes, the audit log, action
// journals, connection history): owner-only. SQLite creates a database's -wal and -shm files with
// the database file's permissions, so creating the file 0600 first (and tightening one made
// earlier) covers all three. ":memory:" and "" are left alone.
inline void create_owner_only(const std::string& path) {
  if (path.empty() || path == ":memory:") return;
  if (const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600); fd >= 0) {
    ::fchmod(fd, 0600);
    ::close(fd);
  }
}

// Opens (creating, owner-only) a database for use from several threads and runs `schema`
// (idempotent SQL: pragmas, CREATE ... IF NOT EXISTS). The caller owns the handle
// (sqlite3_close_v2).
inline Result<sqlite3*> open_database(const std::string& path, const char* schema) {
  create_owner_only(path);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return Error{fmt::format("cannot open database {}: {}", path, message)};
  }
  sqlite3_busy_timeout(db, 5000);
  if (auto s = exec(db, schema); !s) {
    sqlite3_close_v2(db);
    return Error{fmt::format("database {}: {}", path, s.error().message)};
  }
  return db;
}

}  // namespace riposte::sqlite
