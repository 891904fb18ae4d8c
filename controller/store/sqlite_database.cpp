#include "controller/store/sqlite_database.h"

namespace riposte::controller::sql {

namespace {

// A statement from the connection's cache (or its own, while the cached one is in use by an
// enclosing loop), bound and stepped through sqlite::Statement.
class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(sqlite::StatementCache& cache, const std::string& sql) : stmt_(cache, sql) {}
  void bind_text(int index, std::string_view value) override { stmt_.bind_at(index, value); }
  void bind_blob(int index, std::string_view value) override {
    stmt_.bind_at(index, sqlite::Blob{value});
  }
  void bind_integer(int index, std::int64_t value) override { stmt_.bind_at(index, value); }
  void bind_null(int index) override {
    stmt_.bind_at(index, std::optional<std::int64_t>());
  }
  int step() override {
    const int rc = stmt_.step();
    if (rc == SQLITE_ROW) return kRow;
    if (rc == SQLITE_DONE) return kDone;
    return kError;
  }
  bool is_null(int column) const override { return stmt_.is_null(column); }
  std::string text(int column) const override { return stmt_.text(column); }
  std::string blob(int column) const override { return stmt_.blob(column); }
  std::int64_t integer(int column) const override { return stmt_.integer(column); }

 private:
  sqlite::Statement stmt_;
};

}  // namespace

SqliteDatabase::~SqliteDatabase() {
  cache_.reset();
  sqlite3_close_v2(db_);
}

std::unique_ptr<Cursor> SqliteDatabase::prepare(const std::string& sql) {
  return std::make_unique<SqliteCursor>(*cache_, sql);
}

Status SqliteDatabase::exec(const std::string& sql) { return sqlite::exec(db_, sql.c_str()); }

}  // namespace riposte::controller::sql
