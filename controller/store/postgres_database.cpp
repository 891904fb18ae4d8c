#include "controller/store/postgres_database.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

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

  void bind_text(int index, std::string_view value) override {
    // Text parameters travel as C strings: a NUL would silently end the value there. Refused
    // instead (the statement fails saying so); SQLite keeps such text, PostgreSQL cannot.
    if (value.find('\0') != std::string_view::npos && refusal_.empty())
      refusal_ = fmt::format("text parameter {} holds a NUL byte, which PostgreSQL text cannot "
                             "store",
                             index);
    set(index, value, false);
  }
  void bind_blob(int index, std::string_view value) override { set(index, value, true); }
  void bind_integer(int index, std::int64_t value) override {
    set(index, std::to_string(value), false);
  }
  void bind_null(int index) override {
    slot(index);
    params_[static_cast<std::size_t>(index - 1)].reset();
  }

  int step() override {
    if (!refusal_.empty()) {
      db_.note_error(refusal_);
      return kError;
    }
    if (!executed_) {
      executed_ = true;
      return execute();
    }
    if (result_ == nullptr) return kError;
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
    db_.note_error(trimmed_error(result_ == nullptr ? PQerrorMessage(db_.handle())
                                                    : PQresultErrorMessage(result_)),
                   result_);
    return kError;
  }

  PostgresDatabase& db_;
  std::string name_;
  std::vector<std::optional<std::string>> params_;
  std::vector<int> binary_;
  PGresult* result_ = nullptr;
  bool executed_ = false;
  std::string refusal_;  // why the statement is not sent
  int row_ = 0;
};

}  // namespace

namespace {

// Whether `word` names one of libpq's connection options ("port", "sslmode", ...).
bool is_connection_keyword(const std::string& word) {
  PQconninfoOption* defaults = PQconndefaults();
  bool found = false;
  for (auto* o = defaults; o != nullptr && o->keyword != nullptr; ++o)
    found = found || word == o->keyword;
  PQconninfoFree(defaults);
  return found;
}

}  // namespace

std::optional<PostgresDatabase::Parts> PostgresDatabase::parse(const std::string& url) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
  if (parse_error != nullptr) PQfreemem(parse_error);
  if (options == nullptr) return std::nullopt;
  Parts parts;
  for (auto* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "user") parts.user = o->val;
    if (key == "host") parts.host = o->val;
    if (key == "port") parts.port = o->val;
    if (key == "dbname") parts.dbname = o->val;
    if (key == "password") parts.password = o->val;
  }
  PQconninfoFree(options);
  const auto digits = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
  };
  const auto plain = [](const std::string& s) {
    return s.find_first_of("@:/?&= ") == std::string::npos;
  };
  if (!digits(parts.port)) parts.port.clear();
  if (!plain(parts.user)) parts.user.clear();
  if (!plain(parts.dbname)) parts.dbname.clear();
  if (!parts.host.starts_with("/") && parts.host.find_first_of("@/?&= ") != std::string::npos)
    parts.host.clear();
  return parts;
}

Result<std::unique_ptr<PostgresDatabase>> PostgresDatabase::connect(const std::string& url) {
  // Parsed first: libpq's own message about a malformed URI quotes the URI, or the bad part of
  // it, which may be the password. Ours says only that it does not parse.
  const auto parts = parse(url);
  if (!parts) {
    return Error{
        "cannot connect to PostgreSQL: the database URL does not parse (expected "
        "postgresql://USER@HOST:PORT/DBNAME?PARAMETER=VALUE&...; a password in it must be "
        "percent-encoded, and is better kept in ~/.pgpass)"};
  }
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return Error{"cannot connect to PostgreSQL: out of memory"};
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names user, host and port, and quotes a value it could not use ("invalid
    // integer value \"...\" for connection option \"port\""), which may be part of a password
    // that was not percent-encoded: only quoted text known to be safe to show is kept.
    auto message = trimmed_error(PQerrorMessage(conn));
    PQfinish(conn);
    std::string shown;
    for (std::size_t at = 0; at < message.size();) {
      const auto open = message.find('"', at);
      const auto close = open == std::string::npos ? open : message.find('"', open + 1);
      if (close == std::string::npos) {
        shown += message.substr(at);
        break;
      }
      const auto quoted = message.substr(open + 1, close - open - 1);
      const bool safe = !quoted.empty() && (quoted == parts->host || quoted == parts->user ||
                                            quoted == parts->dbname || quoted == parts->port ||
                                            is_connection_keyword(quoted));
      shown += message.substr(at, open - at) + "\"" + (safe ? quoted : "...") + "\"";
      at = close + 1;
    }
    if (!parts->password.empty())
      for (auto p = shown.find(parts->password); p != std::string::npos;
           p = shown.find(parts->password, p))
        shown.replace(p, parts->password.size(), "***");
    return Error{fmt::format("cannot connect to PostgreSQL: {}", shown)};
  }
  std::unique_ptr<PostgresDatabase> db(new PostgresDatabase(conn));
  // Text is UTF-8 both ways, whatever the server's default; notices (IF NOT EXISTS skipped) are
  // not the controller's log's business.
  if (PQsetClientEncoding(conn, "UTF8") != 0)
    return Error{fmt::format("PostgreSQL at {}: cannot use UTF8", db->describe())};
  // A controller that freezes or loses its machine inside a transaction must not hold its locks
  // (the intake and audit locks every controller takes) until TCP gives up, hours later: the
  // server ends such a session after 60 s. And no call waits for a lock longer than that; it
  // fails and says so instead of hanging every controller behind the frozen one.
  if (auto s = db->exec("SET idle_in_transaction_session_timeout = '60s'; SET lock_timeout = '60s'");
      !s)
    return Error{fmt::format("PostgreSQL at {}: {}", db->describe(), s.error().message)};
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
    // Comments are copied as they are: a `?` or a quote in one is not SQL.
    if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      const auto end = sql.find('\n', i);
      const auto stop = end == std::string::npos ? sql.size() : end;
      out.append(sql, i, stop - i);
      i = stop - 1;
      continue;
    }
    if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      const auto end = sql.find("*/", i + 2);
      const auto stop = end == std::string::npos ? sql.size() : end + 2;
      out.append(sql, i, stop - i);
      i = stop - 1;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    std::size_t digits = i + 1;
    // At most 4 digits: the store's statements have a few dozen parameters.
    while (digits < sql.size() && digits < i + 5 && sql[digits] >= '0' && sql[digits] <= '9')
      ++digits;
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
    // No result at all (the connection is gone): the connection says why.
    std::string message = ok               ? ""
                          : r == nullptr   ? trimmed_error(PQerrorMessage(conn_))
                                           : trimmed_error(PQresultErrorMessage(r));
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
  std::string message = ok             ? ""
                        : r == nullptr ? trimmed_error(PQerrorMessage(conn_))
                                       : trimmed_error(PQresultErrorMessage(r));
  if (!ok) note_error(message, r);
  PQclear(r);
  if (!ok) return Error{fmt::format("database: {}", message)};
  conflict_ = false;
  return ok_status();
}

void PostgresDatabase::note_error(std::string message, const PGresult* result) {
  last_error_ = std::move(message);
  const char* state =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  conflict_ = state != nullptr && (std::string_view(state) == "40P01" ||
                                   std::string_view(state) == "40001");
}

}  // namespace riposte::controller::sql
