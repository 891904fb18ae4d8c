#include "controller/store/postgres_database.h"

#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace riposte::controller::sql {

namespace {

constexpr Oid kByteaOid = 17;  // pg_type.h: BYTEAOID
constexpr Oid kBoolOid = 16;   // pg_type.h: BOOLOID

std::string trimmed_error(const char* message) {
  std::string out = message != nullptr ? message : "unknown error";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

class PostgresCursor final : public Cursor {
 public:
  PostgresCursor(PostgresDatabase& db, std::string name) : db_(db), name_(std::move(name)) {}
  ~PostgresCursor() override { PQclear(result_); }

  void bind_text(int index, std::string_view value) override { set(index, value, false); }
  void bind_blob(int index, std::string_view value) override { set(index, value, true); }
  void bind_integer(int index, std::int64_t value) override {
    set(index, std::to_string(value), false);
  }
  void bind_null(int index) override {
    slot(index);
    params_[static_cast<std::size_t>(index - 1)].reset();
  }

  int step() override {
    if (result_ == nullptr) return execute();
    if (++row_ < PQntuples(result_)) return kRow;
    return kDone;
  }

  bool is_null(int column) const override { return PQgetisnull(result_, row_, column) != 0; }
  std::string text(int column) const override {
    return std::string(PQgetvalue(result_, row_, column),
                       static_cast<std::size_t>(PQgetlength(result_, row_, column)));
  }
  std::string blob(int column) const override {
    if (PQftype(result_, column) != kByteaOid) return text(column);
    std::size_t length = 0;
    unsigned char* bytes = PQunescapeBytea(
        reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row_, column)), &length);
    if (bytes == nullptr) throw std::bad_alloc();
    std::string out(reinterpret_cast<const char*>(bytes), length);
    PQfreemem(bytes);
    return out;
  }
  std::int64_t integer(int column) const override {
    if (is_null(column)) return 0;
    const char* value = PQgetvalue(result_, row_, column);
    if (PQftype(result_, column) == kBoolOid) return value[0] == 't' ? 1 : 0;
    return std::strtoll(value, nullptr, 10);  // bigint, integer, or a whole numeric (SUM)
  }

 private:
  void slot(int index) {
    if (params_.size() < static_cast<std::size_t>(index)) {
      params_.resize(static_cast<std::size_t>(index));
      binary_.resize(static_cast<std::size_t>(index), 0);
    }
  }
  void set(int index, std::string_view value, bool binary) {
    slot(index);
    params_[static_cast<std::size_t>(index - 1)] = std::string(value);
    binary_[static_cast<std::size_t>(index - 1)] = binary ? 1 : 0;
  }

  int execute() {
    std::vector<const char*> values(params_.size());
    std::vector<int> lengths(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      values[i] = params_[i] ? params_[i]->data() : nullptr;
      lengths[i] = params_[i] ? static_cast<int>(params_[i]->size()) : 0;
    }
    result_ = PQexecPrepared(db_.handle(), name_.c_str(), static_cast<int>(params_.size()),
                             values.data(), lengths.data(), binary_.data(), /*resultFormat=*/0);
    const auto status = PQresultStatus(result_);
    if (status == PGRES_COMMAND_OK) {
      db_.note_changes(std::strtoll(PQcmdTuples(result_), nullptr, 10));
      return kDone;
    }
    if (status == PGRES_TUPLES_OK) {
      // UPDATE ... RETURNING both changes rows and returns them.
      db_.note_changes(std::strtoll(PQcmdTuples(result_), nullptr, 10));
      row_ = 0;
      return PQntuples(result_) > 0 ? kRow : kDone;
    }
    db_.note_error(trimmed_error(PQresultErrorMessage(result_)));
    return kError;
  }

  PostgresDatabase& db_;
  std::string name_;
  std::vector<std::optional<std::string>> params_;
  std::vector<int> binary_;
  PGresult* result_ = nullptr;
  int row_ = 0;
};

}  // namespace

Result<std::unique_ptr<PostgresDatabase>> PostgresDatabase::connect(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return Error{"cannot connect to PostgreSQL: out of memory"};
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names host and port, never the password.
    Error error{fmt::format("cannot connect to PostgreSQL: {}", trimmed_error(PQerrorMessage(conn)))};
    PQfinish(conn);
    return error;
  }
  std::unique_ptr<PostgresDatabase> db(new PostgresDatabase(conn));
  // Text is UTF-8 both ways, whatever the server's default; notices (IF NOT EXISTS skipped) are
  // not the controller's log's business.
  if (PQsetClientEncoding(conn, "UTF8") != 0)
    return Error{fmt::format("PostgreSQL at {}: cannot use UTF8", db->describe())};
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return db;
}

PostgresDatabase::~PostgresDatabase() { PQfinish(conn_); }

std::string PostgresDatabase::describe() const {
  const char* host = PQhost(conn_);
  return fmt::format("{}@{}:{}/{}", PQuser(conn_), host != nullptr ? host : "",
                     PQport(conn_), PQdb(conn_));
}

std::string PostgresDatabase::numbered_placeholders(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int largest = 0;
  char quote = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote != 0) {
      out += c;
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    std::size_t digits = i + 1;
    while (digits < sql.size() && sql[digits] >= '0' && sql[digits] <= '9') ++digits;
    int index;
    if (digits > i + 1) {
      index = std::atoi(sql.substr(i + 1, digits - i - 1).c_str());
      i = digits - 1;
    } else {
      index = largest + 1;
    }
    largest = std::max(largest, index);
    out += fmt::format("${}", index);
  }
  return out;
}

void PostgresDatabase::reconnect_if_lost() {
  if (PQstatus(conn_) != CONNECTION_BAD) return;
  // The server restarted or the network dropped: a new session has none of the prepared
  // statements. Whatever transaction was open is gone with the old session.
  PQreset(conn_);
  prepared_.clear();
}

std::unique_ptr<Cursor> PostgresDatabase::prepare(const std::string& sql) {
  reconnect_if_lost();
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    std::string name = fmt::format("s{}", prepared_.size() + 1);
    PGresult* r = PQprepare(conn_, name.c_str(), numbered_placeholders(sql).c_str(), 0, nullptr);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    std::string message = ok ? "" : trimmed_error(PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) {
      // Also what a broken connection looks like: report it as an error of the statement, which
      // the caller turns into a failed call, rather than as a bug.
      if (PQstatus(conn_) != CONNECTION_OK) {
        note_error(message);
        return std::make_unique<PostgresCursor>(*this, "");
      }
      throw std::logic_error(fmt::format("cannot prepare '{}': {}", sql, message));
    }
    found = prepared_.emplace(sql, std::move(name)).first;
  }
  return std::make_unique<PostgresCursor>(*this, found->second);
}

Status PostgresDatabase::exec(const std::string& sql) {
  reconnect_if_lost();
  PGresult* r = PQexec(conn_, sql.c_str());
  const auto status = PQresultStatus(r);
  const bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  std::string message = ok ? "" : trimmed_error(PQresultErrorMessage(r));
  PQclear(r);
  if (!ok) {
    note_error(message);
    return Error{fmt::format("database: {}", message)};
  }
  return ok_status();
}

}  // namespace riposte::controller::sql
