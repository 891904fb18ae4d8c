#include "controller/store/postgres_store.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "controller/store/postgres_database.h"

namespace riposte::controller {

namespace {

// PostgreSQL's schema history (SchemaMigration: append only). Version 1 is SQLite's schema 11 in
// PostgreSQL's types: BIGINT for times and sizes, BYTEA for signed specs, results and content,
// and an identity column named `rowid` where the store orders by arrival.
constexpr SchemaMigration kMigrations[] = {
    {1,
     "the schema of SQLite's version 11: agents, actions, evidence, audit log, alerts, cases, "
     "operators, playbook runs, approvals, content objects",
     R"sql(
CREATE TABLE enrollment_tokens (
  id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  max_uses INTEGER NOT NULL CHECK (max_uses > 0),
  uses INTEGER NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL DEFAULT '',
  labels TEXT NOT NULL DEFAULT '[]'
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
  enrolled_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT,
  connected INTEGER NOT NULL DEFAULT 0,
  connected_since_ms BIGINT,
  last_heartbeat_ms BIGINT,
  last_seen_ms BIGINT,
  remote_address TEXT NOT NULL DEFAULT '',
  last_disconnect_reason TEXT NOT NULL DEFAULT '',
  protocol_version BIGINT NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX agents_revoked ON agents (revoked_at_ms) WHERE revoked_at_ms IS NOT NULL;
CREATE INDEX agents_by_hostname ON agents (hostname, id);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at_ms BIGINT NOT NULL
);
CREATE INDEX api_tokens_by_name ON api_tokens (name);
CREATE TABLE operators (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  disabled_at_ms BIGINT,
  disabled_by TEXT NOT NULL DEFAULT '',
  max_mode TEXT NOT NULL DEFAULT ''
);
CREATE TABLE actions (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents (id),
  kind TEXT NOT NULL,
  batch_id TEXT NOT NULL,
  spec BYTEA NOT NULL,
  signature BYTEA NOT NULL,
  requester TEXT NOT NULL,
  approver TEXT NOT NULL DEFAULT '',
  case_id TEXT NOT NULL DEFAULT '',
  playbook_run_id TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  issued_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  delivered_at_ms BIGINT,
  started_at_ms BIGINT,
  finished_at_ms BIGINT,
  result BYTEA,
  progress_done BIGINT NOT NULL DEFAULT 0,
  progress_total BIGINT NOT NULL DEFAULT 0,
  progress_unit TEXT NOT NULL DEFAULT '',
  object_sha256 TEXT NOT NULL DEFAULT '',
  automatic INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX actions_open ON actions (agent_id, state) WHERE state IN ('queued', 'delivered', 'running');
CREATE INDEX actions_issued ON actions (issued_at_ms);
CREATE INDEX actions_by_case ON actions (case_id) WHERE case_id != '';
CREATE INDEX actions_by_run ON actions (playbook_run_id) WHERE playbook_run_id != '';
CREATE INDEX actions_by_object ON actions (object_sha256, agent_id) WHERE object_sha256 != '';
CREATE INDEX actions_automatic ON actions (issued_at_ms) WHERE automatic = 1;
CREATE INDEX actions_expiring ON actions (expires_at_ms) WHERE state IN ('queued', 'delivered');
CREATE TABLE evidence (
  sha256 TEXT NOT NULL,
  action_id TEXT NOT NULL REFERENCES actions (id),
  agent_id TEXT NOT NULL,
  name TEXT NOT NULL,
  size BIGINT NOT NULL,
  stored INTEGER NOT NULL DEFAULT 0,
  offered_at_ms BIGINT NOT NULL,
  stored_at_ms BIGINT,
  PRIMARY KEY (sha256, action_id)
);
CREATE INDEX evidence_by_action ON evidence (action_id);
CREATE INDEX evidence_by_agent ON evidence (agent_id, offered_at_ms);
CREATE TABLE audit_log (
  seq BIGINT PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  actor TEXT NOT NULL,
  event TEXT NOT NULL,
  subject TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log (subject);
CREATE TABLE cases (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  status TEXT NOT NULL,
  severity TEXT NOT NULL,
  host_name TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  assignee TEXT NOT NULL DEFAULT '',
  validated_at_ms BIGINT,
  contained_at_ms BIGINT,
  resolved_at_ms BIGINT
);
CREATE INDEX cases_by_created ON cases (created_at_ms);
CREATE TABLE alerts (
  rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  source_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  rule_name TEXT NOT NULL,
  severity TEXT NOT NULL,
  timestamp_ms BIGINT NOT NULL,
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
  received_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  submitted_by TEXT NOT NULL DEFAULT '',
  submitter_role TEXT NOT NULL DEFAULT '',
  source_max_mode TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alerts_by_host ON alerts (host_name, timestamp_ms);
CREATE INDEX alerts_by_case ON alerts (case_id, timestamp_ms);
CREATE TABLE observable_cases (
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  host_name TEXT NOT NULL,
  case_id TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  PRIMARY KEY (type, value, host_name)
);
CREATE INDEX observable_cases_newest ON observable_cases (type, value, at_ms);
CREATE TABLE case_notes (
  rowid BIGINT GENERATED ALWAYS AS IDENTITY,
  case_id TEXT NOT NULL REFERENCES cases (id),
  at_ms BIGINT NOT NULL,
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
  step_started_at_ms BIGINT NOT NULL,
  wake_at_ms BIGINT NOT NULL,
  context TEXT NOT NULL,
  error TEXT NOT NULL,
  started_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  finished_at_ms BIGINT,
  requested_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_case ON playbook_runs (case_id, started_at_ms);
CREATE INDEX runs_unfinished ON playbook_runs (started_at_ms) WHERE finished_at_ms IS NULL;
CREATE INDEX runs_by_alert ON playbook_runs (alert_id, playbook);
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
  started_at_ms BIGINT NOT NULL,
  finished_at_ms BIGINT NOT NULL,
  PRIMARY KEY (run_id, seq)
);
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
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  decided_at_ms BIGINT,
  not_deciders TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX approvals_pending ON approvals (expires_at_ms) WHERE state = 'pending';
CREATE INDEX approvals_by_run ON approvals (run_id);
CREATE TABLE content_objects (
  sha256 TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  size BIGINT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  created_by TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  content BYTEA NOT NULL
);
CREATE INDEX content_objects_by_kind ON content_objects (kind, created_at_ms);
)sql"},
    {2,
     "controllers sharing the store, which one holds each agent's session, leases on playbook "
     "runs (SQLite's 12)",
     R"sql(
ALTER TABLE agents ADD COLUMN controller_id TEXT NOT NULL DEFAULT '';
CREATE TABLE controllers (
  id TEXT PRIMARY KEY,
  agent_gateway TEXT NOT NULL,
  api TEXT NOT NULL,
  started_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL,
  ca_fingerprint TEXT NOT NULL DEFAULT '',
  action_key_fingerprint TEXT NOT NULL DEFAULT ''
);
CREATE INDEX agents_by_controller ON agents (controller_id) WHERE connected = 1;
ALTER TABLE playbook_runs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE playbook_runs ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
)sql"},
    {3,
     "web console sessions in the store; a run's cancel asked through a controller not holding "
     "it (SQLite's 13)",
     R"sql(
ALTER TABLE playbook_runs ADD COLUMN cancel_request TEXT NOT NULL DEFAULT '';
CREATE TABLE console_sessions (
  secret_hash TEXT PRIMARY KEY,
  csrf_token TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  operator_name TEXT NOT NULL,
  expires_at_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at_ms);
)sql"},
    {4,
     "leases on alerts being processed, so one controller sharing the store validates and "
     "enriches each; a controller's graceful stop (SQLite's 14)",
     R"sql(
ALTER TABLE alerts ADD COLUMN processing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
UPDATE alerts SET processing = 1 WHERE status IN ('new', 'validating');
ALTER TABLE controllers ADD COLUMN stopped_at_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX alerts_processing ON alerts (lease_owner, lease_until_ms) WHERE processing = 1;
)sql"},
    {5, "which addresses each agent held when (SQLite's 15)",
     R"sql(
CREATE TABLE agent_addresses (
  agent_id TEXT NOT NULL,
  ip TEXT NOT NULL,
  since_ms BIGINT NOT NULL,
  until_ms BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (agent_id, ip, since_ms)
);
INSERT INTO agent_addresses (agent_id, ip, since_ms, until_ms)
  SELECT agents.id, address, 0, 0 FROM agents,
         jsonb_array_elements_text(agents.ip_addresses::jsonb) AS address
  ON CONFLICT DO NOTHING;
)sql"},
};

}  // namespace

int PostgresStore::latest_schema_version() { return std::size(kMigrations); }

PostgresStore::PostgresStore(std::unique_ptr<sql::Database> db, std::string url,
                             std::size_t connections)
    : SqlStore(std::move(db), connections,
               [url]() -> Result<std::unique_ptr<sql::Database>> {
                 auto opened = sql::PostgresDatabase::connect(url);
                 if (!opened) return opened.error();
                 return std::unique_ptr<sql::Database>(std::move(*opened));
               }),
      url_(std::move(url)) {}

PostgresStore::~PostgresStore() {
  if (listener_.joinable()) {
    const std::uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) spdlog::warn("store: cannot wake the listener");
    listener_.join();
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status PostgresStore::watch_queued_actions(QueuedElsewhere callback) {
  if (listener_.joinable()) return Error{"already watching queued actions"};
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Error{"cannot make an eventfd for the listener"};
  listener_ = std::thread([this, callback = std::move(callback)] { listen(callback); });
  return ok_status();
}

void PostgresStore::listen(QueuedElsewhere callback) {
  const std::string own = controller_id();
  const std::string listen_sql = fmt::format("LISTEN {}", kQueuedActionsChannel);
  std::unique_ptr<sql::PostgresDatabase> conn;
  bool missed = false;  // a (re)connection: notices sent meanwhile are lost
  for (;;) {
    if (!conn) {
      auto opened = sql::PostgresDatabase::connect(url_);
      if (opened && (*opened)->exec(listen_sql)) {
        conn = std::move(*opened);
        if (missed) callback({});
        missed = true;
      } else {
        spdlog::warn("store: cannot listen for other controllers' actions ({}); retrying",
                     opened ? "LISTEN failed" : opened.error().message);
      }
    }
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {conn ? PQsocket(conn->handle()) : -1, POLLIN, 0}};
    const int ready = ::poll(fds, conn ? 2 : 1, conn ? -1 : 2'000);
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) return;  // stopping
    if (!conn) continue;
    if (PQconsumeInput(conn->handle()) == 0 || PQstatus(conn->handle()) != CONNECTION_OK) {
      spdlog::warn("store: lost the connection listening for other controllers' actions");
      conn.reset();
      continue;
    }
    std::vector<std::string> agents;
    while (PGnotify* notice = PQnotifies(conn->handle())) {
      const std::string payload = notice->extra != nullptr ? notice->extra : "";
      PQfreemem(notice);
      const auto space = payload.find(' ');
      if (space == std::string::npos || payload.compare(0, space, own) == 0) continue;
      for (std::size_t at = space + 1; at < payload.size();) {
        auto comma = payload.find(',', at);
        if (comma == std::string::npos) comma = payload.size();
        if (comma > at) agents.push_back(payload.substr(at, comma - at));
        at = comma + 1;
      }
    }
    if (!agents.empty()) callback(agents);
  }
}

Result<bool> PostgresStore::holds_foreign_tables(const std::string& url) {
  auto db = sql::PostgresDatabase::connect(url);
  if (!db) return db.error();
  sql::Query q(**db,
               "SELECT COUNT(*) FILTER (WHERE table_name = 'schema_migrations'), COUNT(*) FROM "
               "information_schema.tables WHERE table_schema = current_schema()");
  if (q.step() != sql::kRow) return (*db)->error("list the tables");
  return q.integer(0) == 0 && q.integer(1) > 0;
}

Result<std::unique_ptr<PostgresStore>> PostgresStore::open(const std::string& url,
                                                           std::size_t connections) {
  if (connections < 1 || connections > kMaxDatabaseConnections)
    return Error{
        fmt::format("database connections must be 1 to {}, not {}", kMaxDatabaseConnections, connections)};
  auto db = sql::PostgresDatabase::connect(url);
  if (!db) return db.error();
  std::unique_ptr<PostgresStore> store(new PostgresStore(std::move(*db), url, connections));
  if (auto status = store->migrate(kMigrations, latest_schema_version()); !status)
    return status.error();
  return store;
}

}  // namespace riposte::controller
