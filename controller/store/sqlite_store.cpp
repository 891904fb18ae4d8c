#include "controller/store/sqlite_store.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/sqlite_statement.h"
#include "controller/store/sqlite_database.h"

namespace riposte::controller {

namespace {

// SQLite's schema history (SchemaMigration: append only).
constexpr SchemaMigration kMigrations[] = {
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
    {3, "response actions, evidence, hash-chained audit log",
     R"sql(
CREATE TABLE actions (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  kind TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  spec BLOB NOT NULL,
  signature BLOB NOT NULL,
  requester TEXT NOT NULL,
  approver TEXT NOT NULL DEFAULT '',
  case_id TEXT NOT NULL DEFAULT '',
  playbook_run_id TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  issued_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  delivered_at_ms INTEGER,
  started_at_ms INTEGER,
  finished_at_ms INTEGER,
  result BLOB,
  progress_done INTEGER NOT NULL DEFAULT 0,
  progress_total INTEGER NOT NULL DEFAULT 0,
  progress_unit TEXT NOT NULL DEFAULT ''
);
CREATE INDEX actions_open ON actions (agent_id, state)
  WHERE state IN ('queued', 'delivered', 'running');
CREATE INDEX actions_issued ON actions (issued_at_ms);
CREATE TABLE evidence (
  sha256 TEXT NOT NULL,
  action_id TEXT NOT NULL REFERENCES actions (id),
  agent_id TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  stored INTEGER NOT NULL DEFAULT 0,
  offered_at_ms INTEGER NOT NULL,
  stored_at_ms INTEGER,
  PRIMARY KEY (sha256, action_id)
);
CREATE INDEX evidence_by_action ON evidence (action_id);
CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  event TEXT NOT NULL,
  subject TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
)sql"},
    {4, "agent labels for fan-out; audit lookups by subject",
     R"sql(
ALTER TABLE agents ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
CREATE INDEX audit_by_subject ON audit_log (subject);
)sql"},
    {5, "alerts and the cases that group them",
     R"sql(
CREATE TABLE cases (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  status TEXT NOT NULL,
  severity TEXT NOT NULL,
  host_name TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  source_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  rule_name TEXT NOT NULL,
  severity TEXT NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  host_name TEXT NOT NULL,
  host_ips TEXT NOT NULL,
  user_name TEXT NOT NULL,
  observables TEXT NOT NULL,
  notes TEXT NOT NULL,
  raw TEXT NOT NULL,
  case_id TEXT NOT NULL REFERENCES cases (id),
  status TEXT NOT NULL,
  assets TEXT NOT NULL,
  confidence TEXT NOT NULL,
  validation TEXT NOT NULL,
  enrichment TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE INDEX alerts_by_host ON alerts (host_name, timestamp_ms);
CREATE INDEX alerts_by_case ON alerts (case_id, timestamp_ms);
-- The newest case each (observable, host) was seen in: one small row per pair, updated in place,
-- so case grouping costs one lookup and one write per observable however many alerts arrive.
CREATE TABLE observable_cases (
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  host_name TEXT NOT NULL,
  case_id TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (type, value, host_name)
) WITHOUT ROWID;
)sql"},
    {6, "operators: named people with a role, who can be disabled",
     R"sql(
CREATE TABLE operators (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  disabled_at_ms INTEGER,
  disabled_by TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
-- Tokens made before operators existed (init's admin, up's local-admin) become their operators.
INSERT INTO operators (name, role, created_at_ms, created_by)
  SELECT name, role, MIN(created_at_ms), 'controller' FROM api_tokens GROUP BY name;
CREATE INDEX api_tokens_by_name ON api_tokens (name);
)sql"},
    {7, "playbook runs and their steps, approvals, case notes and milestones",
     R"sql(
ALTER TABLE cases ADD COLUMN assignee TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN validated_at_ms INTEGER;
ALTER TABLE cases ADD COLUMN contained_at_ms INTEGER;
ALTER TABLE cases ADD COLUMN resolved_at_ms INTEGER;
CREATE INDEX cases_by_created ON cases (created_at_ms);
CREATE TABLE case_notes (
  case_id TEXT NOT NULL REFERENCES cases (id),
  at_ms INTEGER NOT NULL,
  author TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE INDEX case_notes_by_case ON case_notes (case_id, at_ms);
CREATE TABLE playbook_runs (
  id TEXT PRIMARY KEY,
  playbook TEXT NOT NULL,
  playbook_version TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  case_id TEXT NOT NULL,
  started_by TEXT NOT NULL,
  simulate_only INTEGER NOT NULL,
  state TEXT NOT NULL,
  step TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  waiting_for TEXT NOT NULL,
  step_started_at_ms INTEGER NOT NULL,
  wake_at_ms INTEGER NOT NULL,
  context TEXT NOT NULL,
  error TEXT NOT NULL,
  started_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER
);
CREATE INDEX runs_by_case ON playbook_runs (case_id, started_at_ms);
CREATE INDEX runs_unfinished ON playbook_runs (started_at_ms) WHERE finished_at_ms IS NULL;
CREATE TABLE run_steps (
  run_id TEXT NOT NULL REFERENCES playbook_runs (id),
  seq INTEGER NOT NULL,
  step_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  mode TEXT NOT NULL,
  mode_reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  started_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  step_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  case_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  what TEXT NOT NULL,
  reason TEXT NOT NULL,
  impact TEXT NOT NULL,
  state TEXT NOT NULL,
  decided_by TEXT NOT NULL DEFAULT '',
  decision_reason TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  decided_at_ms INTEGER
);
CREATE INDEX approvals_pending ON approvals (expires_at_ms) WHERE state = 'pending';
CREATE INDEX actions_by_case ON actions (case_id) WHERE case_id != '';
CREATE INDEX actions_by_run ON actions (playbook_run_id) WHERE playbook_run_id != '';
)sql"},
    {8, "content-addressed objects (YARA rule sets) named by actions",
     R"sql(
CREATE TABLE content_objects (
  sha256 TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  size INTEGER NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  created_by TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  content BLOB NOT NULL
);
CREATE INDEX content_objects_by_kind ON content_objects (kind, created_at_ms);
ALTER TABLE actions ADD COLUMN object_sha256 TEXT NOT NULL DEFAULT '';
CREATE INDEX actions_by_object ON actions (object_sha256, agent_id) WHERE object_sha256 != '';
)sql"},
    {9,
     "bounded authority: who submitted an alert and with what ceiling, integrations, who a run "
     "acts for, automatic actions for rate limits",
     R"sql(
ALTER TABLE operators ADD COLUMN max_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN submitted_by TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN submitter_role TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN source_max_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE playbook_runs ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN not_deciders TEXT NOT NULL DEFAULT '[]';
ALTER TABLE actions ADD COLUMN automatic INTEGER NOT NULL DEFAULT 0;
CREATE INDEX actions_automatic ON actions (issued_at_ms) WHERE automatic = 1;
CREATE INDEX runs_by_alert ON playbook_runs (alert_id, playbook);
)sql"},
    {10, "labels an enrollment token gives the agents enrolled with it",
     R"sql(
ALTER TABLE enrollment_tokens ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
CREATE INDEX agents_by_hostname ON agents (hostname, id);
)sql"},
    {11, "the expiry sweep reads only actions still waiting, not the whole history",
     R"sql(
CREATE INDEX actions_expiring ON actions (expires_at_ms) WHERE state IN ('queued', 'delivered');
)sql"},
    {12,
     "controllers sharing the store, which one holds each agent's session, leases on playbook "
     "runs",
     R"sql(
ALTER TABLE agents ADD COLUMN controller_id TEXT NOT NULL DEFAULT '';
CREATE TABLE controllers (
  id TEXT PRIMARY KEY,
  agent_gateway TEXT NOT NULL,
  api TEXT NOT NULL,
  started_at_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  ca_fingerprint TEXT NOT NULL DEFAULT '',
  action_key_fingerprint TEXT NOT NULL DEFAULT ''
);
CREATE INDEX agents_by_controller ON agents (controller_id) WHERE connected = 1;
ALTER TABLE playbook_runs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE playbook_runs ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
    {13,
     "web console sessions in the store, so every controller sharing it knows them; a run's "
     "cancel asked through a controller not holding it",
     R"sql(
ALTER TABLE playbook_runs ADD COLUMN cancel_request TEXT NOT NULL DEFAULT '';
CREATE TABLE console_sessions (
  secret_hash TEXT PRIMARY KEY,
  csrf_token TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  operator_name TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at_ms);
)sql"},
    {14,
     "leases on alerts being processed, so one controller sharing the store validates and "
     "enriches each; a controller's graceful stop",
     R"sql(
ALTER TABLE alerts ADD COLUMN processing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET processing = 1 WHERE status IN ('new', 'validating');
ALTER TABLE controllers ADD COLUMN stopped_at_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX alerts_processing ON alerts (lease_owner, lease_until_ms) WHERE processing = 1;
)sql"},
    {15,
     "which addresses each agent held when, so an alert's address resolves to the agent that "
     "held it at the alert's time; the addresses held now are taken as held since ever",
     R"sql(
CREATE TABLE agent_addresses (
  agent_id TEXT NOT NULL,
  ip TEXT NOT NULL,
  since_ms INTEGER NOT NULL,
  until_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (agent_id, ip, since_ms)
);
INSERT OR IGNORE INTO agent_addresses (agent_id, ip, since_ms, until_ms)
  SELECT agents.id, address.value, 0, 0 FROM agents, json_each(agents.ip_addresses) AS address
  WHERE json_valid(agents.ip_addresses);
)sql"},
};

}  // namespace

int SqliteStore::latest_schema_version() { return std::size(kMigrations); }

SqliteStore::SqliteStore(std::unique_ptr<sql::SqliteDatabase> db)
    : SqliteStore(db.get(), std::move(db)) {}

// SQLite has one writer at a time: a pool of one connection.
SqliteStore::SqliteStore(sql::SqliteDatabase* connection, std::unique_ptr<sql::SqliteDatabase>&& db)
    : SqlStore(std::move(db), 1, {}), sqlite_(connection) {}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path) {
  return open_at_version(path, latest_schema_version());
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open_at_version(const std::filesystem::path& path,
                                                                  int target_version) {
  sqlite::create_owner_only(path.string());
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Error{fmt::format("cannot open database {}: {}", path.string(), message)};
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::make_unique<sql::SqliteDatabase>(db)));
  sqlite3_busy_timeout(db, 5000);
  // Alert intake writes tens of thousands of rows a second: a 64 MiB page cache and memory-mapped
  // reads keep the index lookups of case grouping out of pread().
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
        "PRAGMA cache_size=-65536", "PRAGMA mmap_size=268435456", "PRAGMA temp_store=MEMORY",
        "PRAGMA wal_autocheckpoint=16384"}) {
    if (auto status = store->connection()->exec(pragma); !status) return status.error();
  }
  if (auto status = store->migrate(kMigrations, target_version); !status) return status.error();
  return store;
}

std::uint64_t SqliteStore::full_scan_steps() {
  const auto db = connection();
  return sqlite_->full_scan_steps();
}

Result<std::string> SqliteStore::read_object(const std::string& sha256, std::uint64_t offset,
                                             std::size_t max_bytes) {
  const auto db = connection();  // the pool's one connection: sqlite_
  sql::Query q(*db, "SELECT rowid, size FROM content_objects WHERE sha256 = ?");
  q.bind(sha256);
  const int rc = q.step();
  if (rc == sql::kDone) return Error{fmt::format("no content object {}", sha256)};
  if (rc != sql::kRow) return db->error("read content object");
  const auto size = static_cast<std::uint64_t>(q.integer(1));
  if (offset >= size) return std::string();
  sqlite3_blob* blob = nullptr;
  if (sqlite3_blob_open(sqlite_->handle(), "main", "content_objects", "content", q.integer(0), 0,
                        &blob) != SQLITE_OK) {
    sqlite3_blob_close(blob);
    return db->error("open content object");
  }
  std::string out(static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, size - offset)),
                  '\0');
  const int read =
      sqlite3_blob_read(blob, out.data(), static_cast<int>(out.size()), static_cast<int>(offset));
  sqlite3_blob_close(blob);
  if (read != SQLITE_OK) return db->error("read content object");
  return out;
}

}  // namespace riposte::controller
