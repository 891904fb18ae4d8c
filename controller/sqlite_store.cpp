#include "controller/sqlite_store.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace riposte::controller {

namespace {

// Schema history. Append only: a released migration is never edited, so every database, however
// old, reaches the same schema by applying the missing steps in order.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "enrollment tokens, agents, API tokens",
     R"sql(
CREATE TABLE enrollment_tokens (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  max_uses INTEGER NOT NULL CHECK (max_uses > 0),
  uses INTEGER NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL DEFAULT '',
  os_name TEXT NOT NULL DEFAULT '',
  os_version TEXT NOT NULL DEFAULT '',
  kernel TEXT NOT NULL DEFAULT '',
  arch TEXT NOT NULL DEFAULT '',
  agent_version TEXT NOT NULL DEFAULT '',
  ip_addresses TEXT NOT NULL DEFAULT '[]',
  mac_addresses TEXT NOT NULL DEFAULT '[]',
  capabilities TEXT NOT NULL DEFAULT '[]',
  cert_serial TEXT NOT NULL,
  cert_fingerprint TEXT NOT NULL,
  enrolled_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER,
  connected INTEGER NOT NULL DEFAULT 0,
  connected_since_ms INTEGER,
  last_heartbeat_ms INTEGER,
  last_seen_ms INTEGER,
  remote_address TEXT NOT NULL DEFAULT ''
);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at_ms INTEGER NOT NULL
);
)sql"},
    {2, "disconnect reasons and protocol version per agent",
     R"sql(
ALTER TABLE agents ADD COLUMN last_disconnect_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN protocol_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX agents_revoked ON agents (revoked_at_ms) WHERE revoked_at_ms IS NOT NULL;
)sql"},
};

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// A prepared statement with positional binding: Statement(db, sql).bind(a, b, c).
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
      // SQL text is ours: a failure to prepare is a programming error.
      throw std::logic_error(fmt::format("cannot prepare '{}': {}", sql, sqlite3_errmsg(db)));
    }
    stmt_.reset(raw);
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

  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_.get(), col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  std::optional<std::int64_t> optional_integer(int col) const {
    if (sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL) return std::nullopt;
    return integer(col);
  }

 private:
  void bind_one(int i, const std::string& v) {
    sqlite3_bind_text(stmt_.get(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_one(int i, const char* v) {
    sqlite3_bind_text(stmt_.get(), i, v, -1, SQLITE_TRANSIENT);
  }
  void bind_one(int i, std::int64_t v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void bind_one(int i, int v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void bind_one(int i, std::uint32_t v) { sqlite3_bind_int64(stmt_.get(), i, v); }
  void bind_one(int i, const std::optional<std::int64_t>& v) {
    if (v)
      sqlite3_bind_int64(stmt_.get(), i, *v);
    else
      sqlite3_bind_null(stmt_.get(), i);
  }

  sqlite3* db_;
  StmtPtr stmt_;
};

std::string to_json_list(const std::vector<std::string>& values) {
  return nlohmann::json(values).dump();
}

std::vector<std::string> from_json_list(const std::string& text) {
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array()) return {};
  std::vector<std::string> out;
  for (const auto& v : parsed)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

constexpr const char* kAgentColumns =
    "id, hostname, os_name, os_version, kernel, arch, agent_version, ip_addresses, mac_addresses, "
    "capabilities, cert_serial, cert_fingerprint, enrolled_at_ms, revoked_at_ms, connected, "
    "connected_since_ms, last_heartbeat_ms, last_seen_ms, remote_address, last_disconnect_reason, "
    "protocol_version";

AgentRecord agent_from_row(const Statement& row) {
  AgentRecord a;
  a.id = row.text(0);
  a.facts.hostname = row.text(1);
  a.facts.os_name = row.text(2);
  a.facts.os_version = row.text(3);
  a.facts.kernel = row.text(4);
  a.facts.arch = row.text(5);
  a.facts.agent_version = row.text(6);
  a.facts.ip_addresses = from_json_list(row.text(7));
  a.facts.mac_addresses = from_json_list(row.text(8));
  a.facts.capabilities = from_json_list(row.text(9));
  a.cert_serial = row.text(10);
  a.cert_fingerprint = row.text(11);
  a.enrolled_at_ms = row.integer(12);
  a.revoked_at_ms = row.optional_integer(13);
  a.connected = row.integer(14) != 0;
  a.connected_since_ms = row.optional_integer(15);
  a.last_heartbeat_ms = row.optional_integer(16);
  a.last_seen_ms = row.optional_integer(17);
  a.remote_address = row.text(18);
  a.last_disconnect_reason = row.text(19);
  a.facts.protocol_version = static_cast<std::uint32_t>(row.integer(20));
  return a;
}

Error db_error(sqlite3* db, std::string_view what) {
  return Error{fmt::format("database: {}: {}", what, sqlite3_errmsg(db))};
}

}  // namespace

int SqliteStore::latest_schema_version() { return std::size(kMigrations); }

SqliteStore::SqliteStore(sqlite3* db) : db_(db) {}

SqliteStore::~SqliteStore() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path) {
  return open_at_version(path, latest_schema_version());
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open_at_version(const std::filesystem::path& path,
                                                                  int target_version) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Error{fmt::format("cannot open database {}: {}", path.string(), message)};
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (auto status = store->exec(pragma); !status) return status.error();
  }
  if (auto status = store->migrate(target_version); !status) return status.error();
  return store;
}

Status SqliteStore::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    Error error{fmt::format("database: {}", message != nullptr ? message : "unknown error")};
    sqlite3_free(message);
    return error;
  }
  return ok_status();
}

Status SqliteStore::migrate(int target_version) {
  std::lock_guard lock(mutex_);
  if (auto s =
          exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
               "description TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))");
      !s) {
    return s;
  }
  Statement current(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  current.step();
  const int have = static_cast<int>(current.integer(0));
  if (have > latest_schema_version()) {
    return Error{
        fmt::format("database schema version {} is newer than this controller supports ({}); "
                    "upgrade the controller",
                    have, latest_schema_version())};
  }
  for (const auto& m : kMigrations) {
    if (m.version <= have || m.version > target_version) continue;
    if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
    auto applied = exec(m.sql);
    if (applied) {
      applied = Statement(db_, "INSERT INTO schema_migrations (version, description) VALUES (?, ?)")
                    .bind(m.version, m.description)
                    .run();
    }
    if (!applied) {
      (void)exec("ROLLBACK");  // the migration's own error is the one to report
      return Error{fmt::format("migration {} ({}) failed: {}", m.version, m.description,
                               applied.error().message)};
    }
    if (auto s = exec("COMMIT"); !s) return s;
  }
  return ok_status();
}

int SqliteStore::schema_version() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  q.step();
  return static_cast<int>(q.integer(0));
}

Status SqliteStore::insert_enrollment_token(const EnrollmentTokenRecord& t) {
  std::lock_guard lock(mutex_);
  return Statement(db_,
                   "INSERT INTO enrollment_tokens (id, token_hash, created_at_ms, expires_at_ms, "
                   "max_uses, uses, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .bind(t.id, t.token_hash, t.created_at_ms, t.expires_at_ms, t.max_uses, t.uses, t.created_by)
      .run();
}

Result<EnrollmentTokenRecord> SqliteStore::consume_enrollment_token(const std::string& token_hash,
                                                                    std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return s.error();
  auto finish = [&](Result<EnrollmentTokenRecord> result) -> Result<EnrollmentTokenRecord> {
    if (!result) {
      (void)exec("ROLLBACK");
      return result;
    }
    if (auto committed = exec("COMMIT"); !committed) return committed.error();
    return result;
  };
  Statement q(db_,
              "SELECT id, token_hash, created_at_ms, expires_at_ms, max_uses, uses, created_by "
              "FROM enrollment_tokens WHERE token_hash = ?");
  q.bind(token_hash);
  if (q.step() != SQLITE_ROW) return finish(Error{"unknown enrollment token"});
  EnrollmentTokenRecord t{q.text(0),
                          q.text(1),
                          q.integer(2),
                          q.integer(3),
                          static_cast<int>(q.integer(4)),
                          static_cast<int>(q.integer(5)),
                          q.text(6)};
  if (now_ms >= t.expires_at_ms) return finish(Error{"enrollment token expired"});
  if (t.uses >= t.max_uses) return finish(Error{"enrollment token has no uses left"});
  auto updated =
      Statement(db_, "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?").bind(t.id).run();
  if (!updated) return finish(updated.error());
  ++t.uses;
  return finish(t);
}

Status SqliteStore::insert_agent(const AgentRecord& a) {
  std::lock_guard lock(mutex_);
  return Statement(
             db_,
             "INSERT INTO agents (id, hostname, os_name, os_version, kernel, arch, agent_version, "
             "ip_addresses, mac_addresses, capabilities, cert_serial, cert_fingerprint, "
             "enrolled_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .bind(a.id, a.facts.hostname, a.facts.os_name, a.facts.os_version, a.facts.kernel,
            a.facts.arch, a.facts.agent_version, to_json_list(a.facts.ip_addresses),
            to_json_list(a.facts.mac_addresses), to_json_list(a.facts.capabilities), a.cert_serial,
            a.cert_fingerprint, a.enrolled_at_ms)
      .run();
}

Result<std::optional<AgentRecord>> SqliteStore::find_agent(const std::string& id) {
  std::lock_guard lock(mutex_);
  Statement q(db_, fmt::format("SELECT {} FROM agents WHERE id = ?", kAgentColumns).c_str());
  q.bind(id);
  const int rc = q.step();
  if (rc == SQLITE_DONE) return std::optional<AgentRecord>();
  if (rc != SQLITE_ROW) return db_error(db_, "find agent");
  return std::optional<AgentRecord>(agent_from_row(q));
}

Result<std::vector<AgentRecord>> SqliteStore::list_agents() {
  std::lock_guard lock(mutex_);
  Statement q(db_,
              fmt::format("SELECT {} FROM agents ORDER BY hostname, id", kAgentColumns).c_str());
  std::vector<AgentRecord> agents;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) agents.push_back(agent_from_row(q));
  if (rc != SQLITE_DONE) return db_error(db_, "list agents");
  return agents;
}

Status SqliteStore::record_agent_connected(const std::string& id, const AgentFactsRecord& f,
                                           const std::string& remote_address, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  return Statement(
             db_,
             "UPDATE agents SET hostname = ?, os_name = ?, os_version = ?, kernel = ?, arch = ?, "
             "agent_version = ?, ip_addresses = ?, mac_addresses = ?, capabilities = ?, "
             "protocol_version = ?, connected = 1, connected_since_ms = ?, last_seen_ms = ?, "
             "last_heartbeat_ms = ?, remote_address = ?, last_disconnect_reason = '' WHERE id = ?")
      .bind(f.hostname, f.os_name, f.os_version, f.kernel, f.arch, f.agent_version,
            to_json_list(f.ip_addresses), to_json_list(f.mac_addresses),
            to_json_list(f.capabilities), f.protocol_version, now_ms, now_ms, now_ms,
            remote_address, id)
      .run();
}

Status SqliteStore::record_agent_facts(const std::string& id, const AgentFactsRecord& f,
                                       std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  return Statement(
             db_,
             "UPDATE agents SET hostname = ?, os_name = ?, os_version = ?, kernel = ?, arch = ?, "
             "ip_addresses = ?, mac_addresses = ?, capabilities = ?, last_seen_ms = ? WHERE id = ?")
      .bind(f.hostname, f.os_name, f.os_version, f.kernel, f.arch, to_json_list(f.ip_addresses),
            to_json_list(f.mac_addresses), to_json_list(f.capabilities), now_ms, id)
      .run();
}

Status SqliteStore::record_agent_heartbeat(const std::string& id, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  return Statement(db_, "UPDATE agents SET last_heartbeat_ms = ?, last_seen_ms = ? WHERE id = ?")
      .bind(now_ms, now_ms, id)
      .run();
}

Status SqliteStore::record_agent_disconnected(const std::string& id, const std::string& reason,
                                              std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  return Statement(db_,
                   "UPDATE agents SET connected = 0, connected_since_ms = NULL, last_seen_ms = ?, "
                   "last_disconnect_reason = ? WHERE id = ?")
      .bind(now_ms, reason, id)
      .run();
}

Status SqliteStore::mark_all_agents_disconnected(const std::string& reason) {
  std::lock_guard lock(mutex_);
  return Statement(db_,
                   "UPDATE agents SET connected = 0, connected_since_ms = NULL, "
                   "last_disconnect_reason = ? WHERE connected = 1")
      .bind(reason)
      .run();
}

Status SqliteStore::revoke_agent(const std::string& id, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto s =
      Statement(db_, "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, ?) WHERE id = ?")
          .bind(now_ms, id)
          .run();
  if (!s) return s;
  if (sqlite3_changes(db_) == 0) return Error{fmt::format("no agent with id {}", id)};
  return ok_status();
}

Result<std::vector<std::string>> SqliteStore::revoked_agent_ids() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT id FROM agents WHERE revoked_at_ms IS NOT NULL");
  std::vector<std::string> ids;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) ids.push_back(q.text(0));
  if (rc != SQLITE_DONE) return db_error(db_, "list revoked agents");
  return ids;
}

Status SqliteStore::insert_api_token(const ApiTokenRecord& t) {
  std::lock_guard lock(mutex_);
  return Statement(db_,
                   "INSERT INTO api_tokens (id, name, role, token_hash, created_at_ms) "
                   "VALUES (?, ?, ?, ?, ?)")
      .bind(t.id, t.name, t.role, t.token_hash, t.created_at_ms)
      .run();
}

Result<std::optional<ApiTokenRecord>> SqliteStore::find_api_token(const std::string& token_hash) {
  std::lock_guard lock(mutex_);
  Statement q(
      db_, "SELECT id, name, role, token_hash, created_at_ms FROM api_tokens WHERE token_hash = ?");
  q.bind(token_hash);
  const int rc = q.step();
  if (rc == SQLITE_DONE) return std::optional<ApiTokenRecord>();
  if (rc != SQLITE_ROW) return db_error(db_, "find API token");
  return std::optional<ApiTokenRecord>(
      ApiTokenRecord{q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4)});
}

Result<int> SqliteStore::count_api_tokens() {
  std::lock_guard lock(mutex_);
  Statement q(db_, "SELECT COUNT(*) FROM api_tokens");
  if (q.step() != SQLITE_ROW) return db_error(db_, "count API tokens");
  return static_cast<int>(q.integer(0));
}

}  // namespace riposte::controller
