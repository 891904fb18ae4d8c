#pragma once

// The few things the store asks of a SQL database, so that one implementation of the Store
// (sql_store.h) runs on SQLite and on PostgreSQL: prepared statements with positional
// parameters, rows read column by column, transactions, and how many rows a write changed.
//
// SQL text is written once, in the dialect both accept: `?` or `?N` placeholders (PostgreSQL's
// driver renumbers them `$N`), `ON CONFLICT ... DO NOTHING` rather than `INSERT OR IGNORE`, CASE
// rather than two-argument MAX/MIN, and a name for every subquery. The handful of queries that
// cannot be written so ask `dialect()`.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace riposte::controller::sql {

enum class Dialect { sqlite, postgresql };

// A binary parameter (SQLite BLOB, PostgreSQL bytea); a std::string binds as text.
struct Blob {
  std::string_view bytes;
};

// What step() returns.
inline constexpr int kRow = 100;   // a row is ready to read
inline constexpr int kDone = 101;  // no more rows (or a write finished)
inline constexpr int kError = 1;   // Database::error() says what

// One execution of a prepared statement. Parameters are numbered from 1. Integers are read as
// 64-bit; a PostgreSQL boolean reads as 0 or 1. Text and blobs are returned as bytes.
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual void bind_text(int index, std::string_view value) = 0;
  virtual void bind_blob(int index, std::string_view value) = 0;
  virtual void bind_integer(int index, std::int64_t value) = 0;
  virtual void bind_null(int index) = 0;
  virtual int step() = 0;
  virtual bool is_null(int column) const = 0;
  virtual std::string text(int column) const = 0;
  virtual std::string blob(int column) const = 0;
  virtual std::int64_t integer(int column) const = 0;
};

// A connection. Not thread-safe: the store uses it under its own mutex.
class Database {
 public:
  virtual ~Database() = default;
  virtual Dialect dialect() const = 0;
  // A statement for `sql`, prepared once per connection and reused. A statement that does not
  // prepare is a programming error (the SQL text is ours): std::logic_error.
  virtual std::unique_ptr<Cursor> prepare(const std::string& sql) = 0;
  // SQL without parameters or results (schema, transaction control); may hold several statements.
  virtual Status exec(const std::string& sql) = 0;
  // Opens a write transaction: SQLite's BEGIN IMMEDIATE (take the write lock now rather than fail
  // to upgrade later), PostgreSQL's BEGIN.
  virtual Status begin() = 0;
  // Rows changed by the last INSERT, UPDATE or DELETE.
  virtual std::int64_t changes() const = 0;
  // The last error the database reported, for messages.
  virtual std::string last_error() const = 0;
  // Whether that error was a conflict with a concurrent transaction, which the database resolved
  // by failing this one (PostgreSQL: deadlock_detected 40P01, serialization_failure 40001): the
  // same transaction may succeed when run again. SQLite waits instead (busy timeout): never.
  virtual bool last_error_was_conflict() const { return false; }

  // "database: WHAT: <the database's message>".
  Error error(std::string_view what) const;
};

// A prepared statement with variadic binding: Query(db, sql).bind(a, b, c).run().
class Query {
 public:
  Query(Database& db, const std::string& sql) : db_(&db), cursor_(db.prepare(sql)) {}

  template <typename... Args>
  Query& bind(const Args&... args) {
    return bind_from(1, args...);
  }
  // Binds `args` to the placeholders numbered from `first` (1-based): a multi-row VALUES list
  // binds each row after the one before.
  template <typename... Args>
  Query& bind_from(int first, const Args&... args) {
    int index = first - 1;
    (bind_one(++index, args), ...);
    return *this;
  }

  int step() { return cursor_->step(); }
  // Steps once; a failure becomes "database: ...".
  Status run();

  std::string text(int column) const { return cursor_->text(column); }
  std::string blob(int column) const { return cursor_->blob(column); }
  std::int64_t integer(int column) const { return cursor_->integer(column); }
  bool is_null(int column) const { return cursor_->is_null(column); }
  std::optional<std::int64_t> optional_integer(int column) const {
    if (is_null(column)) return std::nullopt;
    return cursor_->integer(column);
  }

 private:
  void bind_one(int i, const std::string& v) { cursor_->bind_text(i, v); }
  void bind_one(int i, const char* v) { cursor_->bind_text(i, v); }
  void bind_one(int i, Blob v) { cursor_->bind_blob(i, v.bytes); }
  void bind_one(int i, std::int64_t v) { cursor_->bind_integer(i, v); }
  void bind_one(int i, std::uint64_t v) { cursor_->bind_integer(i, static_cast<std::int64_t>(v)); }
  void bind_one(int i, int v) { cursor_->bind_integer(i, v); }
  void bind_one(int i, std::uint32_t v) { cursor_->bind_integer(i, v); }
  void bind_one(int i, const std::optional<std::int64_t>& v) {
    if (v)
      cursor_->bind_integer(i, *v);
    else
      cursor_->bind_null(i);
  }

  Database* db_;
  std::unique_ptr<Cursor> cursor_;
};

// Steps `q` to the end, turning each row into a T; a step error becomes "database: WHAT: ...".
template <typename Row>
auto collect_rows(Database& db, Query& q, Row row, std::string_view what)
    -> Result<std::vector<decltype(row(q))>> {
  std::vector<decltype(row(q))> out;
  int rc;
  while ((rc = q.step()) == kRow) out.push_back(row(q));
  if (rc != kDone) return db.error(what);
  return out;
}

}  // namespace riposte::controller::sql
