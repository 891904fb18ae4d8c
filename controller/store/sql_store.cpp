#include "controller/store/sql_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "common/utf8.h"
#include "controller/observables/linking.h"
#include "controller/store/audit_chain.h"
#include "protocol/crypto.h"

namespace riposte::controller {

using sql::Blob;
using sql::collect_rows;
using sql::Query;

std::string_view to_string(ActionState state) {
  switch (state) {
    case ActionState::queued:
      return "queued";
    case ActionState::delivered:
      return "delivered";
    case ActionState::running:
      return "running";
    case ActionState::succeeded:
      return "succeeded";
    case ActionState::failed:
      return "failed";
    case ActionState::refused:
      return "refused";
    case ActionState::expired:
      return "expired";
    case ActionState::simulated:
      return "simulated";
  }
  return "unknown";
}

std::optional<ActionState> action_state_from(std::string_view text) {
  for (auto s :
       {ActionState::queued, ActionState::delivered, ActionState::running, ActionState::succeeded,
        ActionState::failed, ActionState::refused, ActionState::expired, ActionState::simulated}) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

bool is_terminal(ActionState state) {
  return state != ActionState::queued && state != ActionState::delivered &&
         state != ActionState::running;
}

namespace {

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
    "protocol_version, labels, controller_id";

AgentRecord agent_from_row(const Query& row) {
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
  a.labels = from_json_list(row.text(21));
  a.controller_id = row.text(22);
  return a;
}

// The observables that link an alert to others on its host (case grouping, history):
// observables/linking.h says which do not.
std::vector<Observable> linking_observables(const AlertRecord& a) {
  std::vector<Observable> out;
  for (const auto& o : a.observables)
    if (why_not_linking(o, a.host_name, a.host_ips).empty()) out.push_back(o);
  return out;
}

int severity_rank(std::string_view severity) {
  if (severity == "low") return 0;
  if (severity == "medium") return 1;
  if (severity == "high") return 2;
  return 3;
}

}  // namespace

SqlStore::SqlStore(std::unique_ptr<sql::Database> db, std::size_t connections,
                   ConnectionPool::Connect connect)
    : pool_(std::move(db), connections, std::move(connect)) {}

SqlStore::~SqlStore() = default;

Status SqlStore::migrate(std::span<const SchemaMigration> history, int target_version) {
  auto db = pool_.acquire();
  const int latest = static_cast<int>(history.size());
  if (auto s = db->exec(db->dialect() == sql::Dialect::sqlite
                            ? "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER "
                              "PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL "
                              "DEFAULT (datetime('now')))"
                            : "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER "
                              "PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ "
                              "NOT NULL DEFAULT now())");
      !s) {
    return s;
  }
  for (const auto& m : history) {
    if (m.version > target_version) continue;
    // Several controllers may start at once on one PostgreSQL database: each step is applied in
    // a transaction that first re-reads the version, so only one of them applies it.
    if (auto s = db->begin(); !s) return s;
    if (db->dialect() == sql::Dialect::postgresql) {
      if (auto s = db->exec("LOCK TABLE schema_migrations IN EXCLUSIVE MODE"); !s) {
        (void)db->exec("ROLLBACK");
        return s;
      }
    }
    Query current(*db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (current.step() != sql::kRow) {
      auto error = db->error("read the schema version");
      (void)db->exec("ROLLBACK");
      return error;
    }
    const int have = static_cast<int>(current.integer(0));
    if (have > latest) {
      (void)db->exec("ROLLBACK");
      return Error{
          fmt::format("database schema version {} is newer than this controller supports ({}); "
                      "upgrade the controller",
                      have, latest)};
    }
    if (m.version <= have) {
      if (auto s = db->exec("COMMIT"); !s) return s;
      continue;
    }
    auto applied = db->exec(m.sql);
    if (applied) {
      applied = Query(*db, "INSERT INTO schema_migrations (version, description) VALUES (?, ?)")
                    .bind(m.version, m.description)
                    .run();
    }
    if (!applied) {
      (void)db->exec("ROLLBACK");  // the migration's own error is the one to report
      return Error{fmt::format("migration {} ({}) failed: {}", m.version, m.description,
                               applied.error().message)};
    }
    if (auto s = db->exec("COMMIT"); !s) return s;
  }
  return ok_status();
}

int SqlStore::schema_version() {
  auto db = pool_.acquire();
  Query q(*db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  q.step();
  return static_cast<int>(q.integer(0));
}

Status SqlStore::insert_enrollment_token(const EnrollmentTokenRecord& t) {
  auto db = pool_.acquire();
  return Query(*db,
               "INSERT INTO enrollment_tokens (id, token_hash, created_at_ms, expires_at_ms, "
               "max_uses, uses, created_by, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
      .bind(t.id, t.token_hash, t.created_at_ms, t.expires_at_ms, t.max_uses, t.uses, t.created_by,
            to_json_list(t.labels))
      .run();
}

Result<EnrollmentTokenRecord> SqlStore::consume_enrollment_token(const std::string& token_hash,
                                                                    std::int64_t now_ms) {
  auto db = pool_.acquire();
  if (auto s = db->begin(); !s) return s.error();
  auto finish = [&](Result<EnrollmentTokenRecord> result) -> Result<EnrollmentTokenRecord> {
    if (!result) {
      (void)db->exec("ROLLBACK");
      return result;
    }
    if (auto committed = db->exec("COMMIT"); !committed) return committed.error();
    return result;
  };
  // FOR UPDATE: two controllers on one PostgreSQL database must not both spend the last use
  // (SQLite's BEGIN IMMEDIATE already holds the only write lock).
  Query q(*db, fmt::format("SELECT id, token_hash, created_at_ms, expires_at_ms, max_uses, uses, "
                           "created_by, labels FROM enrollment_tokens WHERE token_hash = ?{}",
                           db->dialect() == sql::Dialect::postgresql ? " FOR UPDATE" : ""));
  q.bind(token_hash);
  const int found = q.step();
  if (found == sql::kDone) return finish(Error{"unknown enrollment token"});
  if (found != sql::kRow) return finish(db->error("find the enrollment token"));
  EnrollmentTokenRecord t{q.text(0),
                          q.text(1),
                          q.integer(2),
                          q.integer(3),
                          static_cast<int>(q.integer(4)),
                          static_cast<int>(q.integer(5)),
                          q.text(6),
                          from_json_list(q.text(7))};
  if (now_ms >= t.expires_at_ms) return finish(Error{"enrollment token expired"});
  if (t.uses >= t.max_uses) return finish(Error{"enrollment token has no uses left"});
  auto updated =
      Query(*db, "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?").bind(t.id).run();
  if (!updated) return finish(updated.error());
  ++t.uses;
  return finish(t);
}

namespace {

// How long an address an agent no longer holds is remembered: longer than alerts wait to be
// processed, short enough that the table stays the size of the fleet.
constexpr std::int64_t kAddressHistoryMs = 30LL * 24 * 3600 * 1000;

// Keeps agent_addresses in step with the addresses `agent_id` reports now (inside the caller's
// transaction): a new address opens a span at `now_ms`, one no longer reported closes at it.
Status record_addresses(sql::Database& db, const std::string& agent_id,
                        const std::vector<std::string>& ips, std::int64_t now_ms) {
  std::set<std::string> open;
  Query held(db, "SELECT ip FROM agent_addresses WHERE agent_id = ? AND until_ms = 0");
  held.bind(agent_id);
  int rc;
  while ((rc = held.step()) == sql::kRow) open.insert(held.text(0));
  if (rc != sql::kDone) return db.error("read an agent's addresses");
  const std::set<std::string> now_held(ips.begin(), ips.end());
  for (const auto& ip : now_held) {
    if (open.contains(ip)) continue;
    auto added = Query(db,
                       "INSERT INTO agent_addresses (agent_id, ip, since_ms, until_ms) VALUES "
                       "(?, ?, ?, 0) ON CONFLICT DO NOTHING")
                     .bind(agent_id, ip, now_ms)
                     .run();
    if (!added) return added;
  }
  for (const auto& ip : open) {
    if (now_held.contains(ip)) continue;
    auto closed = Query(db,
                        "UPDATE agent_addresses SET until_ms = ? WHERE agent_id = ? AND ip = ? "
                        "AND until_ms = 0")
                      .bind(std::max<std::int64_t>(now_ms, 1), agent_id, ip)
                      .run();
    if (!closed) return closed;
  }
  return Query(db,
               "DELETE FROM agent_addresses WHERE agent_id = ? AND until_ms > 0 AND until_ms < ?")
      .bind(agent_id, now_ms - kAddressHistoryMs)
      .run();
}

}  // namespace

Status SqlStore::insert_agent(const AgentRecord& a) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto inserted =
        Query(*db,
              "INSERT INTO agents (id, hostname, os_name, os_version, kernel, arch, agent_version, "
              "ip_addresses, mac_addresses, capabilities, cert_serial, cert_fingerprint, "
              "enrolled_at_ms, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(a.id, a.facts.hostname, a.facts.os_name, a.facts.os_version, a.facts.kernel,
                  a.facts.arch, a.facts.agent_version, to_json_list(a.facts.ip_addresses),
                  to_json_list(a.facts.mac_addresses), to_json_list(a.facts.capabilities),
                  a.cert_serial, a.cert_fingerprint, a.enrolled_at_ms, to_json_list(a.labels))
            .run();
    if (!inserted) return inserted;
    return record_addresses(*db, a.id, a.facts.ip_addresses, a.enrolled_at_ms);
  });
}

Result<AgentPage> SqlStore::find_agents(const AgentFilter& f, Page page) {
  // ?1 status, ?2 label, ?3 part of the hostname; pages walk agents_by_hostname in order.
  // Labels are a JSON list and hostnames are matched on a part: the two dialects' own functions.
  auto db = pool_.acquire();
  const bool sqlite = db->dialect() == sql::Dialect::sqlite;
  const std::string kWhere = fmt::format(
      "(?1 = '' OR (?1 = 'revoked' AND revoked_at_ms IS NOT NULL) OR (?1 = 'online' AND "
      "revoked_at_ms IS NULL AND connected = 1) OR (?1 = 'offline' AND revoked_at_ms IS NULL AND "
      "connected = 0)) AND (?2 = '' OR EXISTS (SELECT 1 FROM {} WHERE value = ?2)) AND "
      "(?3 = '' OR {}(hostname, ?3) > 0)",
      sqlite ? "json_each(agents.labels)"
             : "jsonb_array_elements_text(agents.labels::jsonb) AS label(value)",
      sqlite ? "instr" : "strpos");
  AgentPage out;
  Query count(*db, fmt::format("SELECT COUNT(*) FROM agents WHERE {}", kWhere));
  count.bind(f.status, f.label, f.host);
  if (count.step() != sql::kRow) return db->error("count agents");
  out.total = static_cast<std::uint64_t>(count.integer(0));
  Query q(*db, fmt::format("SELECT {} FROM agents WHERE {} ORDER BY hostname, id LIMIT ?4 "
                           "OFFSET ?5",
                           kAgentColumns, kWhere));
  q.bind(f.status, f.label, f.host, page.limit, page.offset);
  auto rows = collect_rows(*db, q, agent_from_row, "find agents");
  if (!rows) return rows.error();
  out.agents = std::move(*rows);
  return out;
}

Result<std::optional<AgentRecord>> SqlStore::find_agent(const std::string& id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM agents WHERE id = ?", kAgentColumns).c_str());
  q.bind(id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<AgentRecord>();
  if (rc != sql::kRow) return db->error("find agent");
  return std::optional<AgentRecord>(agent_from_row(q));
}

Result<std::vector<AgentRecord>> SqlStore::list_agents() {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM agents ORDER BY hostname, id", kAgentColumns).c_str());
  auto agents = collect_rows(*db, q, agent_from_row, "list agents");
  if (!agents) return agents;
  std::map<std::string, AgentRecord*> by_id;
  for (auto& a : *agents) by_id.emplace(a.id, &a);
  Query spans(*db,
              "SELECT agent_id, ip, since_ms, until_ms FROM agent_addresses ORDER BY agent_id, "
              "since_ms, ip");
  int rc;
  while ((rc = spans.step()) == sql::kRow) {
    if (const auto it = by_id.find(spans.text(0)); it != by_id.end())
      it->second->address_history.push_back({spans.text(1), spans.integer(2), spans.integer(3)});
  }
  if (rc != sql::kDone) return db->error("list agents' addresses");
  return agents;
}

Status SqlStore::record_agent_connected(const std::string& id, const AgentFactsRecord& f,
                                           const std::string& remote_address, std::int64_t now_ms) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto updated =
        Query(*db,
              "UPDATE agents SET hostname = ?, os_name = ?, os_version = ?, kernel = ?, arch = ?, "
              "agent_version = ?, ip_addresses = ?, mac_addresses = ?, capabilities = ?, "
              "protocol_version = ?, connected = 1, connected_since_ms = ?, last_seen_ms = ?, "
              "last_heartbeat_ms = ?, remote_address = ?, last_disconnect_reason = '', "
              "controller_id = ? WHERE id = ?")
            .bind(f.hostname, f.os_name, f.os_version, f.kernel, f.arch, f.agent_version,
                  to_json_list(f.ip_addresses), to_json_list(f.mac_addresses),
                  to_json_list(f.capabilities), f.protocol_version, now_ms, now_ms, now_ms,
                  remote_address, controller_id(), id)
            .run();
    if (!updated) return updated;
    return record_addresses(*db, id, f.ip_addresses, now_ms);
  });
}

Status SqlStore::record_agent_facts(const std::string& id, const AgentFactsRecord& f,
                                       std::int64_t now_ms) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto updated =
        Query(*db,
              "UPDATE agents SET hostname = ?, os_name = ?, os_version = ?, kernel = ?, "
              "arch = ?, ip_addresses = ?, mac_addresses = ?, capabilities = ?, last_seen_ms = ? "
              "WHERE id = ?")
            .bind(f.hostname, f.os_name, f.os_version, f.kernel, f.arch,
                  to_json_list(f.ip_addresses), to_json_list(f.mac_addresses),
                  to_json_list(f.capabilities), now_ms, id)
            .run();
    if (!updated) return updated;
    return record_addresses(*db, id, f.ip_addresses, now_ms);
  });
}

Status SqlStore::record_agent_heartbeats(
    const std::vector<std::pair<std::string, std::int64_t>>& heartbeats) {
  // In agent id order: two writers never take the same rows in opposite orders.
  auto sorted = heartbeats;
  std::sort(sorted.begin(), sorted.end());
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    for (const auto& [id, at_ms] : sorted) {
      auto updated = Query(*db,
                           "UPDATE agents SET last_heartbeat_ms = CASE WHEN "
                           "last_heartbeat_ms > ?1 THEN last_heartbeat_ms ELSE ?1 END, "
                           "last_seen_ms = CASE WHEN last_seen_ms > ?1 THEN last_seen_ms "
                           "ELSE ?1 END WHERE id = ?2")
                         .bind(at_ms, id)
                         .run();
      if (!updated) return updated;
    }
    return ok_status();
  }, /*retry_conflicts=*/true);
}

Status SqlStore::record_agent_disconnected(const std::string& id, const std::string& reason,
                                              std::int64_t now_ms) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  return Query(*db,
               "UPDATE agents SET connected = 0, connected_since_ms = NULL, last_seen_ms = ?, "
               "last_disconnect_reason = ? WHERE id = ? AND controller_id = ?")
      .bind(now_ms, reason, id, controller_id())
      .run();
}

Status SqlStore::mark_all_agents_disconnected(const std::string& reason) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  return Query(*db,
               "UPDATE agents SET connected = 0, connected_since_ms = NULL, "
               "last_disconnect_reason = ? WHERE connected = 1 AND controller_id IN (?, '')")
      .bind(reason, controller_id())
      .run();
}

Status SqlStore::watch_queued_actions(QueuedElsewhere) { return ok_status(); }

std::string SqlStore::controller_id() {
  std::lock_guard lock(id_mutex_);
  return controller_id_;
}

void SqlStore::set_controller_id(const std::string& id) {
  std::lock_guard lock(id_mutex_);
  controller_id_ = id;
}

Result<int> SqlStore::controller_heartbeat(const ControllerRecord& me, std::int64_t now_ms,
                                           std::int64_t silent_before_ms) {
  auto db = pool_.acquire();
  int cleared = 0;
  auto s = in_transaction(*db, [&]() -> Status {
    auto seen = Query(*db,
                      "INSERT INTO controllers (id, agent_gateway, api, started_at_ms, "
                      "last_seen_ms, ca_fingerprint, action_key_fingerprint) VALUES (?, ?, ?, ?, "
                      "?, ?, ?) ON CONFLICT (id) DO UPDATE SET agent_gateway = "
                      "excluded.agent_gateway, api = excluded.api, started_at_ms = "
                      "excluded.started_at_ms, last_seen_ms = excluded.last_seen_ms, "
                      "ca_fingerprint = excluded.ca_fingerprint, action_key_fingerprint = "
                      "excluded.action_key_fingerprint, stopped_at_ms = 0")
                    .bind(me.id, me.agent_gateway, me.api, me.started_at_ms, now_ms,
                          me.ca_fingerprint, me.action_key_fingerprint)
                    .run();
    if (!seen) return seen;
    // A controller that stopped without a word (killed, its machine lost) held sessions that
    // are gone: its agents are offline until they reconnect, here or elsewhere.
    auto swept = Query(*db,
                       "UPDATE agents SET connected = 0, connected_since_ms = NULL, "
                       "last_disconnect_reason = 'controller ' || controller_id || ' stopped "
                       "answering' WHERE connected = 1 AND controller_id IN (SELECT id FROM "
                       "controllers WHERE last_seen_ms < ? AND id != ?)")
                     .bind(silent_before_ms, me.id)
                     .run();
    if (!swept) return swept;
    cleared = static_cast<int>(db->changes());
    return ok_status();
  });
  if (!s) return s.error();
  if (cleared > 0) ++agents_generation_;
  return cleared;
}

Result<std::vector<ControllerRecord>> SqlStore::list_controllers() {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT id, agent_gateway, api, started_at_ms, last_seen_ms, ca_fingerprint, "
          "action_key_fingerprint, stopped_at_ms FROM controllers ORDER BY id");
  return collect_rows(
      *db, q,
      [](const Query& r) {
        return ControllerRecord{r.text(0),    r.text(1), r.text(2), r.integer(3),
                                r.integer(4), r.text(5), r.text(6), r.integer(7)};
      },
      "list controllers");
}

Status SqlStore::record_controller_stopped(const std::string& id, std::int64_t now_ms) {
  auto db = pool_.acquire();
  return Query(*db, "UPDATE controllers SET stopped_at_ms = ? WHERE id = ?").bind(now_ms, id).run();
}

Status SqlStore::insert_console_session(const ConsoleSessionRecord& session, std::int64_t now_ms,
                                        std::size_t max_per_operator) {
  auto db = pool_.acquire();
  return in_transaction(
      *db,
      [&]() -> Status {
        if (auto s = Query(*db, "DELETE FROM console_sessions WHERE expires_at_ms <= ?")
                         .bind(now_ms)
                         .run();
            !s)
          return s;
        Query count(*db, "SELECT COUNT(*) FROM console_sessions WHERE operator_name = ?");
        count.bind(session.operator_name);
        if (count.step() != sql::kRow) return db->error("count console sessions");
        const auto held = static_cast<std::uint64_t>(count.integer(0));
        if (max_per_operator > 0 && held >= max_per_operator) {
          // This operator's sessions that expire first make room (all have one lifetime).
          if (auto s = Query(*db,
                             "DELETE FROM console_sessions WHERE secret_hash IN (SELECT "
                             "secret_hash FROM console_sessions WHERE operator_name = ? ORDER BY "
                             "expires_at_ms, secret_hash LIMIT ?)")
                           .bind(session.operator_name,
                                 static_cast<std::int64_t>(held - max_per_operator + 1))
                           .run();
              !s)
            return s;
        }
        return Query(*db,
                     "INSERT INTO console_sessions (secret_hash, csrf_token, token_hash, "
                     "operator_name, expires_at_ms) VALUES (?, ?, ?, ?, ?)")
            .bind(session.secret_hash, session.csrf_token, session.token_hash,
                  session.operator_name, session.expires_at_ms)
            .run();
      },
      /*retry_conflicts=*/true);
}

Result<std::optional<ConsoleSessionRecord>> SqlStore::find_console_session(
    const std::string& secret_hash, std::int64_t now_ms) {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT secret_hash, csrf_token, token_hash, operator_name, expires_at_ms FROM "
          "console_sessions WHERE secret_hash = ?");
  q.bind(secret_hash);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<ConsoleSessionRecord>();
  if (rc != sql::kRow) return db->error("find console session");
  ConsoleSessionRecord found{q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4)};
  if (found.expires_at_ms > now_ms) return std::optional<ConsoleSessionRecord>(std::move(found));
  if (auto s =
          Query(*db, "DELETE FROM console_sessions WHERE secret_hash = ?").bind(secret_hash).run();
      !s)
    return s.error();
  return std::optional<ConsoleSessionRecord>();
}

Result<bool> SqlStore::delete_console_session(const std::string& secret_hash) {
  auto db = pool_.acquire();
  if (auto s =
          Query(*db, "DELETE FROM console_sessions WHERE secret_hash = ?").bind(secret_hash).run();
      !s)
    return s.error();
  return db->changes() > 0;
}

Status SqlStore::revoke_agent(const std::string& id, std::int64_t now_ms) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  auto s = Query(*db, "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, ?) WHERE id = ?")
               .bind(now_ms, id)
               .run();
  if (!s) return s;
  if (db->changes() == 0) return Error{fmt::format("no agent with id {}", id)};
  return ok_status();
}

Result<std::vector<std::string>> SqlStore::revoked_agent_ids() {
  auto db = pool_.acquire();
  Query q(*db, "SELECT id FROM agents WHERE revoked_at_ms IS NOT NULL");
  return collect_rows(
      *db, q, [](const Query& row) { return row.text(0); }, "list revoked agents");
}

Result<std::vector<std::string>> SqlStore::agents_connected_elsewhere(std::int64_t since_ms) {
  return ids_for_this_controller(
      "SELECT id FROM agents WHERE connected = 1 AND controller_id NOT IN (?, '') AND "
      "connected_since_ms >= ? ORDER BY id",
      since_ms, "list agents connected elsewhere");
}

Status SqlStore::insert_token_locked(sql::Database& db, const ApiTokenRecord& t) {
  return Query(db,
               "INSERT INTO api_tokens (id, name, role, token_hash, created_at_ms) "
               "VALUES (?, ?, ?, ?, ?)")
      .bind(t.id, t.name, t.role, t.token_hash, t.created_at_ms)
      .run();
}

Status SqlStore::insert_api_token(const ApiTokenRecord& t) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto made = Query(*db,
                      "INSERT INTO operators (name, role, created_at_ms, created_by) "
                      "VALUES (?, ?, ?, 'controller') ON CONFLICT DO NOTHING")
                    .bind(t.name, t.role, t.created_at_ms)
                    .run();
    if (!made) return made;
    return insert_token_locked(*db, t);
  });
}

Result<std::optional<ApiTokenRecord>> SqlStore::find_api_token(const std::string& token_hash) {
  auto db = pool_.acquire();
  // The operator's role and state govern every token they hold.
  Query q(*db,
          "SELECT t.id, t.name, COALESCE(o.role, t.role), t.token_hash, t.created_at_ms, "
          "o.disabled_at_ms, COALESCE(o.max_mode, '') FROM api_tokens t "
          "LEFT JOIN operators o ON o.name = t.name WHERE t.token_hash = ?");
  q.bind(token_hash);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<ApiTokenRecord>();
  if (rc != sql::kRow) return db->error("find API token");
  return std::optional<ApiTokenRecord>(ApiTokenRecord{
      q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4), q.optional_integer(5), q.text(6)});
}

Status SqlStore::insert_operator(const OperatorRecord& op, const ApiTokenRecord& token,
                                    const AuditEvent& audit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto made = Query(*db,
                      "INSERT INTO operators (name, role, created_at_ms, created_by, "
                      "max_mode) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
                    .bind(op.name, op.role, op.created_at_ms, op.created_by, op.max_mode)
                    .run();
    if (!made) return made;
    if (db->changes() == 0) return Error{fmt::format("operator {} exists", op.name)};
    if (auto s = insert_token_locked(*db, token); !s) return s;
    return append_audit_locked(*db, audit, now_ms);
  });
}

Result<std::vector<OperatorRecord>> SqlStore::list_operators() {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT name, role, created_at_ms, created_by, disabled_at_ms, disabled_by, "
          "(SELECT COUNT(*) FROM api_tokens t WHERE t.name = o.name), max_mode "
          "FROM operators o ORDER BY name");
  return collect_rows(
      *db, q,
      [](const Query& row) {
        return OperatorRecord{row.text(0),
                              row.text(1),
                              row.integer(2),
                              row.text(3),
                              row.optional_integer(4),
                              row.text(5),
                              static_cast<int>(row.integer(6)),
                              row.text(7)};
      },
      "list operators");
}

Status SqlStore::disable_operator(const std::string& name, const AuditEvent& audit,
                                     std::int64_t now_ms) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    if (db->dialect() == sql::Dialect::postgresql) {
      // Two admins disabling each other at once (through two controllers or connections) must
      // take turns, or each would see the other still enabled and both go. SQLite's BEGIN
      // IMMEDIATE already makes them.
      Query lock(*db, "SELECT name FROM operators WHERE role = 'admin' FOR UPDATE");
      int rc;
      while ((rc = lock.step()) == sql::kRow) {
      }
      if (rc != sql::kDone) return db->error("lock the admins");
    }
    auto updated = Query(*db,
                         "UPDATE operators SET disabled_at_ms = ?, disabled_by = ? "
                         "WHERE name = ? AND disabled_at_ms IS NULL")
                       .bind(now_ms, audit.actor, name)
                       .run();
    if (!updated) return updated;
    if (db->changes() == 0) {
      Query exists(*db, "SELECT 1 FROM operators WHERE name = ?");
      exists.bind(name);
      return Error{exists.step() == sql::kRow
                       ? fmt::format("operator {} is already disabled", name)
                       : fmt::format("no operator {}", name)};
    }
    Query admins(*db,
                 "SELECT (SELECT role FROM operators WHERE name = ?), COUNT(*) FROM operators "
                 "WHERE role = 'admin' AND disabled_at_ms IS NULL");
    admins.bind(name);
    if (admins.step() != sql::kRow) return db->error("count the admins");
    if (admins.text(0) == "admin" && admins.integer(1) == 0)
      return Error{fmt::format(
          "operator {} is the last enabled admin; create another admin before disabling it", name)};
    return append_audit_locked(*db, audit, now_ms);
  });
}

Result<int> SqlStore::count_api_tokens() {
  auto db = pool_.acquire();
  Query q(*db, "SELECT COUNT(*) FROM api_tokens");
  if (q.step() != sql::kRow) return db->error("count API tokens");
  return static_cast<int>(q.integer(0));
}

namespace {

constexpr const char* kActionColumns =
    "id, agent_id, kind, batch_id, spec, signature, requester, approver, case_id, "
    "playbook_run_id, state, reason, issued_at_ms, expires_at_ms, delivered_at_ms, started_at_ms, "
    "finished_at_ms, result, progress_done, progress_total, progress_unit, object_sha256, "
    "automatic";

ActionRecord action_from_row(const Query& row) {
  ActionRecord a;
  a.id = row.text(0);
  a.agent_id = row.text(1);
  a.kind = row.text(2);
  a.batch_id = row.text(3);
  a.spec = row.blob(4);
  a.signature = row.blob(5);
  a.requester = row.text(6);
  a.approver = row.text(7);
  a.case_id = row.text(8);
  a.playbook_run_id = row.text(9);
  a.state = action_state_from(row.text(10)).value_or(ActionState::failed);
  a.reason = row.text(11);
  a.issued_at_ms = row.integer(12);
  a.expires_at_ms = row.integer(13);
  a.delivered_at_ms = row.optional_integer(14);
  a.started_at_ms = row.optional_integer(15);
  a.finished_at_ms = row.optional_integer(16);
  a.result = row.blob(17);
  a.progress_done = static_cast<std::uint64_t>(row.integer(18));
  a.progress_total = static_cast<std::uint64_t>(row.integer(19));
  a.progress_unit = row.text(20);
  a.object_sha256 = row.text(21);
  a.automatic = row.integer(22) != 0;
  return a;
}

constexpr const char* kEvidenceColumns =
    "sha256, action_id, agent_id, name, size, stored, offered_at_ms, stored_at_ms";

EvidenceRecord evidence_from_row(const Query& row) {
  return EvidenceRecord{row.text(0),
                        row.text(1),
                        row.text(2),
                        row.text(3),
                        static_cast<std::uint64_t>(row.integer(4)),
                        row.integer(5) != 0,
                        row.integer(6),
                        row.optional_integer(7)};
}

AuditEntry audit_from_row(const Query& q) {
  return AuditEntry{q.integer(0), q.integer(1), q.text(2), q.text(3),
                    q.text(4),    q.text(5),    q.text(6), q.text(7)};
}

constexpr const char* kAlertColumns =
    "id, source, source_id, rule_id, rule_name, severity, timestamp_ms, host_name, host_ips, "
    "user_name, observables, notes, raw, case_id, status, assets, confidence, validation, "
    "enrichment, received_at_ms, updated_at_ms, submitted_by, submitter_role, source_max_mode";

std::vector<Observable> observables_from_json(const std::string& text) {
  std::vector<Observable> out;
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array()) return out;
  for (const auto& item : parsed) {
    out.push_back({item.value("type", ""), item.value("value", ""), item.value("start", ""),
                   item.value("entity_id", "")});
  }
  return out;
}

AlertRecord alert_from_row(const Query& row) {
  AlertRecord a;
  a.id = row.text(0);
  a.source = row.text(1);
  a.source_id = row.text(2);
  a.rule_id = row.text(3);
  a.rule_name = row.text(4);
  a.severity = row.text(5);
  a.timestamp_ms = row.integer(6);
  a.host_name = row.text(7);
  a.host_ips = from_json_list(row.text(8));
  a.user_name = row.text(9);
  a.observables = observables_from_json(row.text(10));
  a.notes = from_json_list(row.text(11));
  a.raw = row.text(12);
  a.case_id = row.text(13);
  a.status = row.text(14);
  a.assets = row.text(15);
  a.confidence = row.text(16);
  a.validation = row.text(17);
  a.enrichment = row.text(18);
  a.received_at_ms = row.integer(19);
  a.updated_at_ms = row.integer(20);
  a.submitted_by = row.text(21);
  a.submitter_role = row.text(22);
  a.source_max_mode = row.text(23);
  return a;
}

// The advisory lock key that serializes audit appends on PostgreSQL ("RIPOSTEA" as a number).
constexpr std::int64_t kAuditChainLock = 0x524950'4f535445;
// ... and alert intake ("RIPOSTI"): see insert_alerts.
constexpr std::int64_t kAlertIntakeLock = 0x524950'4f535449;

constexpr const char* kAuditColumns = "seq, at_ms, actor, event, subject, details, prev_hash, hash";

// Alert intake's multi-row statements (insert_alerts).

// "(?, ?), (?, ?)": `rows` groups of `columns` placeholders.
std::string placeholder_rows(std::size_t rows, std::size_t columns) {
  std::string group = "(?";
  for (std::size_t c = 1; c < columns; ++c) group += ", ?";
  group += ")";
  std::string out;
  out.reserve(rows * (group.size() + 2));
  for (std::size_t r = 0; r < rows; ++r) {
    if (r > 0) out += ", ";
    out += group;
  }
  return out;
}

// Rows per multi-row statement: an alert row has 27 columns, so 5,400 parameters at most, within
// SQLite's 32,766 and PostgreSQL's 65,535.
constexpr std::size_t kRowsPerStatement = 200;

// Calls `chunk(first, count)` for each run of at most kRowsPerStatement of `total` rows.
Status in_chunks(std::size_t total, const std::function<Status(std::size_t, std::size_t)>& chunk) {
  for (std::size_t first = 0; first < total; first += kRowsPerStatement) {
    if (auto s = chunk(first, std::min(kRowsPerStatement, total - first)); !s) return s;
  }
  return ok_status();
}

// The case of each of the batch's alert ids already stored.
Result<std::map<std::string, std::string>> stored_alert_cases(
    sql::Database& db, const std::vector<AlertRecord>& alerts) {
  std::map<std::string, std::string> out;
  auto s = in_chunks(alerts.size(), [&](std::size_t first, std::size_t count) -> Status {
    Query q(db, "SELECT id, case_id FROM alerts WHERE id IN " + placeholder_rows(1, count));
    for (std::size_t i = 0; i < count; ++i)
      q.bind_from(static_cast<int>(i) + 1, alerts[first + i].id);
    int rc;
    while ((rc = q.step()) == sql::kRow) out.emplace(q.text(0), q.text(1));
    if (rc != sql::kDone) return db.error("find stored alerts");
    return ok_status();
  });
  if (!s) return s.error();
  return out;
}

// observable_cases rows as intake sees and changes them: (type, value, host name) -> the case of
// the newest alert on that host with that observable.
using ObservableKey = std::tuple<std::string, std::string, std::string>;
struct ObservableRow {
  std::string case_id;
  std::int64_t at_ms = 0;
  bool changed = false;  // to write back
};
struct ObservableRows {
  std::map<ObservableKey, ObservableRow> by_key;
  std::map<std::string, bool>
      case_open;  // the cases they name: neither resolved nor false positive
};

// The stored rows of every observable the batch links.
Result<ObservableRows> observable_rows(sql::Database& db, const std::vector<AlertRecord>& alerts) {
  std::set<ObservableKey> wanted;
  for (const auto& a : alerts) {
    for (const auto& o : linking_observables(a)) wanted.insert({o.type, o.value, a.host_name});
  }
  const std::vector<ObservableKey> keys(wanted.begin(), wanted.end());
  ObservableRows out;
  auto s = in_chunks(keys.size(), [&](std::size_t first, std::size_t count) -> Status {
    // Joined from the keys (not `(type, value, host_name) IN (VALUES ...)`, which SQLite answers
    // by scanning the whole table): a primary-key lookup per key on both databases.
    Query q(db, "WITH k (type, value, host_name) AS (VALUES " + placeholder_rows(count, 3) +
                    ") SELECT o.type, o.value, o.host_name, o.case_id, o.at_ms, c.status FROM k "
                    "JOIN observable_cases o ON o.type = k.type AND o.value = k.value AND "
                    "o.host_name = k.host_name LEFT JOIN cases c ON c.id = o.case_id");
    for (std::size_t i = 0; i < count; ++i) {
      const auto& [type, value, host] = keys[first + i];
      q.bind_from(static_cast<int>(3 * i) + 1, type, value, host);
    }
    int rc;
    while ((rc = q.step()) == sql::kRow) {
      out.by_key[{q.text(0), q.text(1), q.text(2)}] = {q.text(3), q.integer(4), false};
      const auto status = q.is_null(5) ? std::string() : q.text(5);
      out.case_open[q.text(3)] =
          !status.empty() && status != "resolved" && status != "false_positive";
    }
    if (rc != sql::kDone) return db.error("find observable cases");
    return ok_status();
  });
  if (!s) return s.error();
  return out;
}

// New cases, each titled and rated after the alert that opens it.
Status insert_case_rows(sql::Database& db,
                        const std::vector<std::pair<std::string, const AlertRecord*>>& cases,
                        std::int64_t now_ms) {
  return in_chunks(cases.size(), [&](std::size_t first, std::size_t count) -> Status {
    Query q(db,
            "INSERT INTO cases (id, title, status, severity, host_name, created_at_ms, "
            "updated_at_ms) VALUES " +
                placeholder_rows(count, 7));
    for (std::size_t i = 0; i < count; ++i) {
      const auto& [id, a] = cases[first + i];
      q.bind_from(static_cast<int>(7 * i) + 1, id, a->rule_name.empty() ? a->rule_id : a->rule_name,
                  "new", a->severity, a->host_name, now_ms, now_ms);
    }
    return q.run();
  });
}

// New alerts with their cases; the controller storing them holds them while they are processed
// (kAlertLeaseMs, named by `me`).
Status insert_alert_rows(sql::Database& db, const std::vector<const AlertRecord*>& alerts,
                         const std::vector<std::string>& case_ids, const std::string& me,
                         std::int64_t now_ms) {
  return in_chunks(alerts.size(), [&](std::size_t first, std::size_t count) -> Status {
    Query q(db, fmt::format("INSERT INTO alerts ({}, processing, lease_owner, lease_until_ms) "
                            "VALUES {}",
                            kAlertColumns, placeholder_rows(count, 27)));
    for (std::size_t i = 0; i < count; ++i) {
      const auto& a = *alerts[first + i];
      const bool processing = a.status == "new" || a.status == "validating";
      q.bind_from(
          static_cast<int>(27 * i) + 1, a.id, a.source, a.source_id, a.rule_id, a.rule_name,
          a.severity, a.timestamp_ms, a.host_name, to_json_list(a.host_ips), a.user_name,
          observables_json(a.observables).dump(), to_json_list(a.notes), a.raw, case_ids[first + i],
          a.status, a.assets.empty() ? "[]" : a.assets, a.confidence.empty() ? "{}" : a.confidence,
          a.validation.empty() ? "{}" : a.validation, a.enrichment.empty() ? "{}" : a.enrichment,
          a.received_at_ms, now_ms, a.submitted_by, a.submitter_role, a.source_max_mode,
          processing ? 1 : 0, me, now_ms + Store::kAlertLeaseMs);
    }
    return q.run();
  });
}

// The rows intake changed, in key order.
Status upsert_observable_rows(sql::Database& db,
                              const std::map<ObservableKey, ObservableRow>& rows) {
  std::vector<std::pair<const ObservableKey*, const ObservableRow*>> changed;
  for (const auto& [key, row] : rows)
    if (row.changed) changed.emplace_back(&key, &row);
  return in_chunks(changed.size(), [&](std::size_t first, std::size_t count) -> Status {
    Query q(db,
            "INSERT INTO observable_cases (type, value, host_name, case_id, at_ms) VALUES " +
                placeholder_rows(count, 5) +
                " ON CONFLICT (type, value, host_name) DO UPDATE SET case_id = excluded.case_id, "
                "at_ms = excluded.at_ms");
    for (std::size_t i = 0; i < count; ++i) {
      const auto& [key, row] = changed[first + i];
      const auto& [type, value, host] = *key;
      q.bind_from(static_cast<int>(5 * i) + 1, type, value, host, row->case_id, row->at_ms);
    }
    return q.run();
  });
}

}  // namespace

Status SqlStore::in_transaction(sql::Database& db, const std::function<Status()>& body,
                                bool retry_conflicts) {
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    if (auto s = db.begin(); !s) return s;
    Status outcome = ok_status();
    try {
      outcome = body();
    } catch (const std::exception& e) {
      // Never leave the transaction open: every later write would fail behind it.
      (void)db.exec("ROLLBACK");
      return Error{std::string("store: ") + e.what()};
    }
    if (outcome) outcome = db.exec("COMMIT");
    if (outcome) return outcome;
    const bool conflict = db.last_error_was_conflict();
    (void)db.exec("ROLLBACK");  // the body's error is the one to report
    if (!retry_conflicts || !conflict || attempt == kAttempts) return outcome;
    spdlog::warn("store: a transaction conflicted with a concurrent one ({}); running it again",
                 outcome.error().message);
  }
}

Status SqlStore::append_audit_locked(sql::Database& db, const AuditEvent& event,
                                     std::int64_t now_ms) {
  AuditEntry entry{0,
                   now_ms,
                   event.actor,
                   event.event,
                   event.subject,
                   event.details.empty() ? "{}" : event.details,
                   std::string(kAuditGenesisHash),
                   ""};
  if (db.dialect() == sql::Dialect::postgresql) {
    // One chain however many controllers append: each takes this transaction-scoped lock before
    // reading the head, so appends are serialized and no two entries claim the same link.
    Query lock(db, "SELECT pg_advisory_xact_lock(?)");
    if (lock.bind(kAuditChainLock).step() != sql::kRow) return db.error("lock the audit chain");
  }
  Query last(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
  if (last.step() == sql::kRow) {
    entry.seq = last.integer(0);
    entry.prev_hash = last.text(1);
  }
  ++entry.seq;
  try {
    entry.hash = audit_entry_hash(entry);
  } catch (const nlohmann::json::type_error&) {
    // A field that is not UTF-8 (a request path or an agent's string, say): JSON cannot hash
    // it. Store it with each invalid sequence replaced by U+FFFD, so what is stored is exactly
    // what is hashed and `audit verify` reads it back the same.
    for (auto* field : {&entry.actor, &entry.event, &entry.subject, &entry.details})
      *field = as_utf8(*field);
    entry.hash = audit_entry_hash(entry);
  }
  return Query(db,
               "INSERT INTO audit_log (seq, at_ms, actor, event, subject, details, prev_hash, "
               "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
      .bind(entry.seq, entry.at_ms, entry.actor, entry.event, entry.subject, entry.details,
            entry.prev_hash, entry.hash)
      .run();
}

Status SqlStore::append_audit(const AuditEvent& event, std::int64_t now_ms) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&] { return append_audit_locked(*db, event, now_ms); });
}

Result<std::vector<AuditEntry>> SqlStore::audit_entries(std::int64_t after_seq, int limit) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                           kAuditColumns));
  q.bind(after_seq, limit);
  return collect_rows(*db, q, audit_from_row, "read audit log");
}

Status SqlStore::insert_actions(const std::vector<ActionRecord>& actions,
                                   const std::vector<AuditEvent>& audit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    for (std::size_t i = 0; i < actions.size(); ++i) {
      const auto& a = actions[i];
      auto inserted = Query(*db,
                            "INSERT INTO actions (id, agent_id, kind, batch_id, spec, signature, "
                            "requester, approver, case_id, playbook_run_id, state, issued_at_ms, "
                            "expires_at_ms, object_sha256, automatic) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                          .bind(a.id, a.agent_id, a.kind, a.batch_id, Blob{a.spec},
                                Blob{a.signature}, a.requester, a.approver, a.case_id,
                                a.playbook_run_id, std::string(to_string(a.state)), a.issued_at_ms,
                                a.expires_at_ms, a.object_sha256, a.automatic ? 1 : 0)
                          .run();
      if (!inserted) return inserted;
      if (i < audit.size()) {
        if (auto s = append_audit_locked(*db, audit[i], now_ms); !s) return s;
      }
    }
    return notify_queued_locked(*db, actions);
  });
}

Status SqlStore::notify_queued_locked(sql::Database& db, const std::vector<ActionRecord>& actions) {
  if (db.dialect() != sql::Dialect::postgresql) return ok_status();  // one controller only
  std::set<std::string> agents;
  for (const auto& a : actions)
    if (a.state == ActionState::queued) agents.insert(a.agent_id);
  // Sent at commit, to every controller listening (watch_queued_actions); a notice carries at
  // most ~7,900 bytes, so a fan-out's agents go in a few hundred ids per notice.
  const std::string me = controller_id();
  std::string payload;
  auto flush = [&]() -> Status {
    if (payload.empty()) return ok_status();
    Query notify(db, "SELECT pg_notify(?, ?)");
    if (notify.bind(kQueuedActionsChannel, me + " " + payload).step() != sql::kRow)
      return db.error("notify other controllers");
    payload.clear();
    return ok_status();
  };
  for (const auto& agent : agents) {
    if (payload.size() + agent.size() + me.size() > 7'800) {
      if (auto s = flush(); !s) return s;
    }
    payload += (payload.empty() ? "" : ",") + agent;
  }
  return flush();
}

namespace {

constexpr const char* kObjectColumns = "sha256, kind, size, name, created_by, created_at_ms";

ContentObjectRecord object_from_row(const Query& row) {
  return {row.text(0), row.text(1), static_cast<std::uint64_t>(row.integer(2)),
          row.text(3), row.text(4), row.integer(5)};
}

}  // namespace

Result<bool> SqlStore::put_object(const ContentObjectRecord& meta, std::string_view bytes,
                                     const AuditEvent& audit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  bool created = false;
  auto s = in_transaction(*db, [&]() -> Status {
    auto inserted = Query(*db,
                          "INSERT INTO content_objects (sha256, kind, size, name, created_by, "
                          "created_at_ms, content) VALUES (?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT (sha256) DO NOTHING")
                        .bind(meta.sha256, meta.kind, static_cast<std::int64_t>(bytes.size()),
                              meta.name, meta.created_by, now_ms, Blob{bytes})
                        .run();
    if (!inserted) return inserted;
    created = db->changes() == 1;
    if (created) return append_audit_locked(*db, audit, now_ms);
    return ok_status();
  });
  if (!s) return s.error();
  return created;
}

Result<std::optional<ContentObjectRecord>> SqlStore::find_object(const std::string& sha256) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM content_objects WHERE sha256 = ?", kObjectColumns));
  q.bind(sha256);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<ContentObjectRecord>();
  if (rc != sql::kRow) return db->error("find content object");
  return std::optional<ContentObjectRecord>(object_from_row(q));
}

Result<std::vector<ContentObjectRecord>> SqlStore::list_objects(const std::string& kind,
                                                                   int limit) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM content_objects WHERE ? = '' OR kind = ? "
                           "ORDER BY created_at_ms DESC, sha256 LIMIT ?",
                           kObjectColumns));
  q.bind(kind, kind, limit);
  std::vector<ContentObjectRecord> out;
  int rc;
  while ((rc = q.step()) == sql::kRow) out.push_back(object_from_row(q));
  if (rc != sql::kDone) return db->error("list content objects");
  return out;
}

Result<std::string> SqlStore::read_object(const std::string& sha256, std::uint64_t offset,
                                          std::size_t max_bytes) {
  auto db = pool_.acquire();
  // Only the slice asked for leaves the server; SQL counts from 1.
  Query q(*db, "SELECT size, substr(content, ?, ?) FROM content_objects WHERE sha256 = ?");
  q.bind(static_cast<std::int64_t>(std::min<std::uint64_t>(offset, INT64_MAX - 1) + 1),
         static_cast<std::int64_t>(max_bytes), sha256);
  const int rc = q.step();
  if (rc == sql::kDone) return Error{fmt::format("no content object {}", sha256)};
  if (rc != sql::kRow) return db->error("read content object");
  if (offset >= static_cast<std::uint64_t>(q.integer(0))) return std::string();
  return q.blob(1);
}

Result<bool> SqlStore::object_named_for_agent(const std::string& agent_id,
                                                 const std::string& sha256) {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT 1 FROM actions WHERE object_sha256 = ? AND agent_id = ? AND state IN "
          "('queued', 'delivered', 'running') LIMIT 1");
  q.bind(sha256, agent_id);
  const int rc = q.step();
  if (rc != sql::kRow && rc != sql::kDone) return db->error("find actions of an object");
  return rc == sql::kRow;
}

Result<std::optional<ActionRecord>> SqlStore::find_action(const std::string& id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM actions WHERE id = ?", kActionColumns));
  q.bind(id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<ActionRecord>();
  if (rc != sql::kRow) return db->error("find action");
  auto action = action_from_row(q);
  Query ev(*db, fmt::format("SELECT {} FROM evidence WHERE action_id = ? ORDER BY name",
                            kEvidenceColumns));
  ev.bind(id);
  while (ev.step() == sql::kRow) action.evidence.push_back(evidence_from_row(ev));
  return std::optional<ActionRecord>(std::move(action));
}

Result<std::optional<ActionRecord>> SqlStore::last_network_action(const std::string& agent_id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM actions WHERE agent_id = ? AND state = "
                           "'succeeded' AND kind IN ('network.quarantine', "
                           "'network.release') ORDER BY finished_at_ms DESC, issued_at_ms "
                           "DESC LIMIT 1",
                           kActionColumns));
  q.bind(agent_id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<ActionRecord>();
  if (rc != sql::kRow) return db->error("find the last network action");
  return std::optional<ActionRecord>(action_from_row(q));
}

namespace {

// Fills each action's evidence, in a few statements for the whole list: a list of actions
// carries what each one stored, as one action does (never an empty list that reads as "none").
Result<std::vector<ActionRecord>> with_evidence(sql::Database& db,
                                                Result<std::vector<ActionRecord>> actions) {
  if (!actions || actions->empty()) return actions;
  std::map<std::string, ActionRecord*> by_id;
  for (auto& a : *actions) by_id.emplace(a.id, &a);
  auto s = in_chunks(actions->size(), [&](std::size_t first, std::size_t count) -> Status {
    Query q(db, fmt::format("SELECT {} FROM evidence WHERE action_id IN {} ORDER BY action_id, "
                            "name",
                            kEvidenceColumns, placeholder_rows(1, count)));
    for (std::size_t i = 0; i < count; ++i)
      q.bind_from(static_cast<int>(i) + 1, (*actions)[first + i].id);
    int rc;
    while ((rc = q.step()) == sql::kRow) {
      auto evidence = evidence_from_row(q);
      if (const auto it = by_id.find(evidence.action_id); it != by_id.end())
        it->second->evidence.push_back(std::move(evidence));
    }
    if (rc != sql::kDone) return db.error("list the evidence of actions");
    return ok_status();
  });
  if (!s) return s.error();
  return actions;
}

}  // namespace

Result<std::vector<ActionRecord>> SqlStore::list_actions(Page page) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM actions ORDER BY issued_at_ms DESC, id LIMIT ? "
                           "OFFSET ?",
                           kActionColumns));
  q.bind(page.limit, page.offset);
  return with_evidence(*db, collect_rows(*db, q, action_from_row, "list actions"));
}

Result<std::vector<ActionRecord>> SqlStore::actions_filed_under(const char* column,
                                                                   const std::string& value) {
  auto db = pool_.acquire();
  // `column` is one of two names in this file, never caller text; "" files nothing.
  Query q(*db, fmt::format("SELECT {} FROM actions WHERE {} = ? AND {} != '' ORDER BY "
                           "issued_at_ms, id",
                           kActionColumns, column, column));
  q.bind(value);
  return with_evidence(*db, collect_rows(*db, q, action_from_row, "list actions"));
}

Result<std::vector<ActionRecord>> SqlStore::case_actions(const std::string& case_id) {
  return actions_filed_under("case_id", case_id);
}

Result<std::vector<ActionRecord>> SqlStore::run_actions(const std::string& run_id) {
  return actions_filed_under("playbook_run_id", run_id);
}

Result<std::vector<ActionRecord>> SqlStore::actions_to_deliver(const std::string& agent_id) {
  auto db = pool_.acquire();
  // Asked on every agent connection. The partial index actions_open is used only when the query
  // repeats its condition word for word (SQLite does not see that one IN list implies another);
  // without it, every connection scanned the whole action history.
  Query q(*db, fmt::format("SELECT {} FROM actions WHERE agent_id = ? AND state IN "
                           "('queued', 'delivered', 'running') AND state != 'running' "
                           "ORDER BY issued_at_ms, id",
                           kActionColumns));
  q.bind(agent_id);
  return collect_rows(*db, q, action_from_row, "list actions to deliver");
}

Result<std::vector<std::string>> SqlStore::mark_actions_delivered(
    const std::vector<std::string>& ids, std::int64_t now_ms) {
  auto db = pool_.acquire();
  std::vector<std::string> changed;
  std::vector<std::string> sorted = ids;  // rows in id order, audit entries last
  std::sort(sorted.begin(), sorted.end());
  auto s = in_transaction(
      *db,
      [&]() -> Status {
        std::set<std::string> delivered;
        for (const auto& id : sorted) {
          auto updated = Query(*db,
                               "UPDATE actions SET state = 'delivered', delivered_at_ms = ? "
                               "WHERE id = ? AND state = 'queued'")
                             .bind(now_ms, id)
                             .run();
          if (!updated) return updated;
          if (db->changes() > 0) delivered.insert(id);
        }
        changed.clear();  // in the order asked
        for (const auto& id : ids) {
          if (delivered.erase(id) == 0) continue;
          changed.push_back(id);
          if (auto a = append_audit_locked(*db, {"controller", "action.delivered", id, "{}"},
                                           now_ms);
              !a)
            return a;
        }
        return ok_status();
      },
      /*retry_conflicts=*/true);
  if (!s) return s.error();
  return changed;
}

Result<bool> SqlStore::record_action_progress(const std::string& id, const std::string& agent_id,
                                                 std::uint64_t done, std::uint64_t total,
                                                 const std::string& unit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  bool started = false;
  bool known = false;
  auto s = in_transaction(*db, [&]() -> Status {
    auto updated =
        Query(*db,
              "UPDATE actions SET state = 'running', started_at_ms = COALESCE(started_at_ms, "
              "?), delivered_at_ms = COALESCE(delivered_at_ms, ?) WHERE id = ? AND "
              "agent_id = ? AND state IN ('queued', 'delivered')")
            .bind(now_ms, now_ms, id, agent_id)
            .run();
    if (!updated) return updated;
    started = db->changes() > 0;
    auto progress = Query(*db,
                          "UPDATE actions SET progress_done = ?, progress_total = ?, "
                          "progress_unit = ? WHERE id = ? AND agent_id = ? AND state = "
                          "'running'")
                        .bind(done, total, unit, id, agent_id)
                        .run();
    if (!progress) return progress;
    known = db->changes() > 0;
    if (!started) return ok_status();
    return append_audit_locked(*db, {"agent:" + agent_id, "action.started", id, "{}"}, now_ms);
  }, /*retry_conflicts=*/true);
  if (!s) return s.error();
  return known;
}

Result<bool> SqlStore::record_action_outcome(const std::string& id, const std::string& agent_id,
                                                const ActionOutcome& outcome, std::int64_t now_ms) {
  auto db = pool_.acquire();
  bool changed = false;
  auto s = in_transaction(
      *db,
      [&]() -> Status {
        auto audit = record_outcome_rows(*db, {id, agent_id, outcome}, now_ms);
        if (!audit) return audit.error();
        changed = audit->has_value();
        return changed ? append_audit_locked(*db, **audit, now_ms) : ok_status();
      },
      /*retry_conflicts=*/true);
  if (!s) return s.error();
  return changed;
}

Result<std::vector<bool>> SqlStore::record_action_outcomes(
    const std::vector<ActionOutcomeReport>& reports, std::int64_t now_ms) {
  auto db = pool_.acquire();
  std::vector<bool> changed(reports.size(), false);
  std::vector<std::size_t> by_action(reports.size());  // rows in action id order
  std::iota(by_action.begin(), by_action.end(), 0);
  std::sort(by_action.begin(), by_action.end(), [&](std::size_t x, std::size_t y) {
    return reports[x].action_id < reports[y].action_id;
  });
  auto s = in_transaction(
      *db,
      [&]() -> Status {
        std::vector<std::optional<AuditEvent>> audits(reports.size());
        for (const std::size_t i : by_action) {
          auto audit = record_outcome_rows(*db, reports[i], now_ms);
          if (!audit) return audit.error();
          audits[i] = std::move(*audit);
          changed[i] = audits[i].has_value();
        }
        for (const auto& audit : audits) {
          if (!audit) continue;
          if (auto a = append_audit_locked(*db, *audit, now_ms); !a) return a;
        }
        return ok_status();
      },
      /*retry_conflicts=*/true);
  if (!s) return s.error();
  return changed;
}

Result<std::optional<AuditEvent>> SqlStore::record_outcome_rows(sql::Database& db,
                                                                const ActionOutcomeReport& report,
                                                                std::int64_t now_ms) {
  const auto& id = report.action_id;
  const auto& agent_id = report.agent_id;
  const auto& outcome = report.outcome;
  // An action this agent was sent and that has not ended; or one the expiry sweep ended after it
  // had been delivered: the agent may accept it within its clock-skew allowance and run it past
  // the controller's deadline. What the agent did is then the truth, and is recorded.
  Query was(db,
            "SELECT state FROM actions WHERE id = ? AND agent_id = ? AND (state IN ('queued', "
            "'delivered', 'running') OR (state = 'expired' AND delivered_at_ms IS NOT NULL))");
  was.bind(id, agent_id);
  if (was.step() != sql::kRow) return std::optional<AuditEvent>();
  const bool after_expiry = was.text(0) == "expired";
  auto updated =
      Query(db,
            "UPDATE actions SET state = ?, reason = ?, result = ?, started_at_ms = "
            "COALESCE(started_at_ms, ?), finished_at_ms = ?, delivered_at_ms = "
            "COALESCE(delivered_at_ms, ?) WHERE id = ? AND agent_id = ?")
          .bind(std::string(to_string(outcome.state)), outcome.reason, Blob{outcome.result},
                outcome.started_at_ms, outcome.finished_at_ms, now_ms, id, agent_id)
          .run();
  if (!updated) return updated.error();
  if (db.changes() == 0) return std::optional<AuditEvent>();
  nlohmann::json evidence = nlohmann::json::array();
  for (const auto& e : outcome.evidence) {
    auto inserted = Query(db,
                          "INSERT INTO evidence (sha256, action_id, agent_id, name, size, "
                          "offered_at_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
                        .bind(e.sha256, id, agent_id, e.name, e.size, now_ms)
                        .run();
    if (!inserted) return inserted.error();
    evidence.push_back({{"sha256", e.sha256}, {"size", e.size}, {"name", e.name}});
  }
  nlohmann::json refused = nlohmann::json::array();
  for (const auto& e : outcome.evidence_refused)
    refused.push_back(
        {{"sha256", e.sha256}, {"size", e.size}, {"name", e.name}, {"reason", e.reason}});
  nlohmann::json details = {{"reason", outcome.reason},
                            {"result_sha256", crypto::sha256_hex(outcome.result)},
                            {"evidence", evidence}};
  if (!refused.empty()) details["evidence_refused"] = refused;
  if (after_expiry) details["after_expiry"] = true;
  // The agent's own words may not be UTF-8 (or cut inside a character): replaced, not thrown.
  return std::optional<AuditEvent>(
      AuditEvent{"agent:" + agent_id, fmt::format("action.{}", to_string(outcome.state)), id,
                 details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
}

Result<std::vector<std::string>> SqlStore::expire_actions(std::int64_t now_ms,
                                                             std::int64_t grace_ms) {
  auto db = pool_.acquire();
  std::vector<std::string> ids;
  // Every second: through the partial index actions_expiring (only actions still waiting), and a
  // transaction only when something is due. A scan of the whole history here made a
  // controller's idle CPU grow with every action it had ever sent.
  std::vector<std::pair<std::string, std::string>> due;
  {
    Query q(*db,
            "SELECT id, state, expires_at_ms FROM actions "
            "WHERE state IN ('queued', 'delivered') AND expires_at_ms <= ?");
    q.bind(now_ms);
    while (q.step() == sql::kRow) {
      const bool queued = q.text(1) == "queued";
      if (queued || q.integer(2) + grace_ms <= now_ms) due.emplace_back(q.text(0), q.text(1));
    }
  }
  if (due.empty()) return ids;
  std::sort(due.begin(), due.end());  // rows in id order, audit entries last
  auto s = in_transaction(
      *db,
      [&]() -> Status {
        ids.clear();
        std::vector<std::string> reasons;
        for (const auto& [id, was] : due) {
          const std::string reason = was == "queued"
                                         ? "expired before the agent could receive it"
                                         : "expired without an answer from the agent";
          // Only if still as read: a result (through another connection or controller) may
          // have come between.
          auto updated = Query(*db,
                               "UPDATE actions SET state = 'expired', reason = ?, "
                               "finished_at_ms = ? WHERE id = ? AND state = ?")
                             .bind(reason, now_ms, id, was)
                             .run();
          if (!updated) return updated;
          if (db->changes() == 0) continue;
          ids.push_back(id);
          reasons.push_back(reason);
        }
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (auto a = append_audit_locked(
                  *db,
                  {"controller", "action.expired", ids[i],
                   nlohmann::json{{"reason", reasons[i]}}.dump()},
                  now_ms);
              !a)
            return a;
        }
        return ok_status();
      },
      /*retry_conflicts=*/true);
  if (!s) return s.error();
  return ids;
}

Result<std::vector<EvidenceRecord>> SqlStore::find_evidence(const std::string& sha256) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM evidence WHERE sha256 = ? ORDER BY offered_at_ms",
                           kEvidenceColumns));
  q.bind(sha256);
  return collect_rows(*db, q, evidence_from_row, "find evidence");
}

Status SqlStore::mark_evidence_stored(const std::string& sha256, const std::string& action_id,
                                         std::int64_t now_ms, const AuditEvent& audit) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto updated = Query(*db,
                         "UPDATE evidence SET stored = 1, stored_at_ms = COALESCE("
                         "stored_at_ms, ?) WHERE sha256 = ? AND action_id = ?")
                       .bind(now_ms, sha256, action_id)
                       .run();
    if (!updated) return updated;
    return append_audit_locked(*db, audit, now_ms);
  });
}

Result<std::uint64_t> SqlStore::evidence_bytes_declared(const std::string& agent_id,
                                                           std::int64_t since_ms) {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT COALESCE(SUM(size), 0) FROM evidence WHERE agent_id = ? AND offered_at_ms >= ?");
  q.bind(agent_id, since_ms);
  if (q.step() != sql::kRow) return Error{fmt::format("cannot sum evidence: {}", db->last_error())};
  return static_cast<std::uint64_t>(q.integer(0));
}

Result<StoreMetrics> SqlStore::metrics() {
  auto db = pool_.acquire();
  StoreMetrics m;
  auto s = in_transaction(*db, [&]() -> Status {
    Query agents(*db,
                 "SELECT COUNT(*) FILTER (WHERE revoked_at_ms IS NULL AND connected = 1), "
                 "COUNT(*) FILTER (WHERE revoked_at_ms IS NULL AND connected = 0), "
                 "COUNT(*) FILTER (WHERE revoked_at_ms IS NOT NULL) FROM agents");
    if (agents.step() != sql::kRow) return db->error("count agents");
    m.agents_online = static_cast<std::uint64_t>(agents.integer(0));
    m.agents_offline = static_cast<std::uint64_t>(agents.integer(1));
    m.agents_revoked = static_cast<std::uint64_t>(agents.integer(2));
    Query quarantined(
        *db,
        "SELECT COUNT(*) FROM (SELECT a.kind, ROW_NUMBER() OVER (PARTITION BY a.agent_id ORDER BY "
        "a.finished_at_ms DESC, a.issued_at_ms DESC) AS n FROM actions a JOIN agents g ON g.id = "
        "a.agent_id WHERE g.revoked_at_ms IS NULL AND a.state = 'succeeded' AND a.kind IN "
        "('network.quarantine', 'network.release')) AS latest WHERE n = 1 AND kind = "
        "'network.quarantine'");
    if (quarantined.step() != sql::kRow) return db->error("count quarantined agents");
    m.agents_quarantined = static_cast<std::uint64_t>(quarantined.integer(0));
    Query sources(*db, "SELECT source, COUNT(*) FROM alerts GROUP BY source");
    while (sources.step() == sql::kRow)
      m.alerts_by_source[sources.text(0)] = static_cast<std::uint64_t>(sources.integer(1));
    Query decisions(*db, db->dialect() == sql::Dialect::sqlite
                             ? "SELECT COALESCE(json_extract(NULLIF(confidence, ''), "
                               "'$.decision'), 'none'), COUNT(*) FROM alerts GROUP BY 1"
                             : "SELECT COALESCE(NULLIF(confidence, '')::jsonb ->> 'decision', "
                               "'none'), COUNT(*) FROM alerts GROUP BY 1");
    while (decisions.step() == sql::kRow)
      m.alerts_by_decision[decisions.text(0)] = static_cast<std::uint64_t>(decisions.integer(1));
    Query actions(*db, "SELECT kind, state, COUNT(*) FROM actions GROUP BY kind, state");
    while (actions.step() == sql::kRow) {
      m.actions_by_kind_state[{actions.text(0), actions.text(1)}] =
          static_cast<std::uint64_t>(actions.integer(2));
    }
    // The start is when the controller heard the agent's "started" (its clock), the end the
    // agent's own time: an action quicker than that message's trip ends "before" it started,
    // and counts as 0 s.
    std::string buckets;
    for (const double bound : kActionDurationBounds)
      buckets += fmt::format("COUNT(*) FILTER (WHERE d <= {}), ", static_cast<std::int64_t>(bound * 1000));
    Query durations(*db, fmt::format("SELECT kind, {}COUNT(*), COALESCE(SUM(d), 0) FROM "
                                     "(SELECT kind, CASE WHEN finished_at_ms > started_at_ms "
                                     "THEN finished_at_ms - started_at_ms ELSE 0 END AS d "
                                     "FROM actions WHERE started_at_ms IS NOT NULL AND "
                                     "finished_at_ms IS NOT NULL) AS ended GROUP BY kind",
                                     buckets));
    constexpr int kBounds = std::size(kActionDurationBounds);
    while (durations.step() == sql::kRow) {
      auto& d = m.action_durations[durations.text(0)];
      for (int i = 0; i < kBounds; ++i)
        d.at_or_below.push_back(static_cast<std::uint64_t>(durations.integer(1 + i)));
      d.count = static_cast<std::uint64_t>(durations.integer(1 + kBounds));
      d.sum_s = static_cast<double>(durations.integer(2 + kBounds)) / 1000.0;
    }
    Query runs(*db, "SELECT playbook, state, COUNT(*) FROM playbook_runs GROUP BY playbook, state");
    while (runs.step() == sql::kRow) {
      m.runs_by_playbook_state[{runs.text(0), runs.text(1)}] =
          static_cast<std::uint64_t>(runs.integer(2));
    }
    Query scalars(
        *db,
        "SELECT (SELECT COUNT(*) FROM approvals WHERE state = 'pending'), "
        "(SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM evidence "
        "WHERE stored = 1 GROUP BY sha256) AS objects), (SELECT COALESCE(MAX(seq), 0) FROM "
        "audit_log)");
    if (scalars.step() != sql::kRow) return db->error("count approvals, evidence, audit");
    m.approvals_pending = static_cast<std::uint64_t>(scalars.integer(0));
    m.evidence_bytes = static_cast<std::uint64_t>(scalars.integer(1));
    m.audit_entries = static_cast<std::uint64_t>(scalars.integer(2));
    return ok_status();
  });
  if (!s) return s.error();
  return m;
}

Status SqlStore::set_agent_labels(const std::string& id, const std::vector<std::string>& labels,
                                     const AuditEvent& audit, std::int64_t now_ms) {
  ++agents_generation_;  // readers holding a copy of the fleet must re-read it
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto updated = Query(*db, "UPDATE agents SET labels = ? WHERE id = ?")
                       .bind(to_json_list(labels), id)
                       .run();
    if (!updated) return updated;
    if (db->changes() == 0) return Error{fmt::format("no agent with id {}", id)};
    return append_audit_locked(*db, audit, now_ms);
  });
}

Result<std::vector<AuditEntry>> SqlStore::audit_entries_about(const std::string& subject, int limit,
                                                              std::int64_t after_seq) {
  auto db = pool_.acquire();
  Query q(*db,
          fmt::format("SELECT {} FROM audit_log WHERE subject = ? AND seq > ? ORDER BY seq LIMIT ?",
                      kAuditColumns));
  q.bind(subject, after_seq, limit);
  return collect_rows(*db, q, audit_from_row, "read audit log");
}

Result<std::vector<AlertInsertOutcome>> SqlStore::insert_alerts(
    const std::vector<AlertRecord>& alerts, std::int64_t case_window_ms, const AuditEvent& audit,
    std::int64_t now_ms) {
  // Batches take turns (below); one waiting here holds no connection, so a burst of batches
  // cannot take every connection of the pool from the calls that would not wait.
  std::lock_guard intake(intake_mutex_);
  const std::string me = controller_id();
  auto db = pool_.acquire();
  std::vector<AlertInsertOutcome> outcomes;
  outcomes.reserve(alerts.size());
  auto s = in_transaction(*db, [&]() -> Status {
    if (db->dialect() == sql::Dialect::postgresql) {
      // Batches from several pool connections or controllers take turns: case grouping must see
      // every related alert already committed (under READ COMMITTED two concurrent batches would
      // each open a case for the same host and indicator), and two batches upserting the same
      // observables in different orders would deadlock. SQLite has one writer anyway.
      Query lock(*db, "SELECT pg_advisory_xact_lock(?)");
      if (lock.bind(kAlertIntakeLock).step() != sql::kRow) return db->error("lock alert intake");
    }
    // One round trip per statement is what intake costs on PostgreSQL, so the batch is read in
    // a few statements, grouped in memory exactly as one alert after another would be, and
    // written in multi-row statements.
    auto stored = stored_alert_cases(*db, alerts);
    if (!stored) return stored.error();
    auto rows = observable_rows(*db, alerts);
    if (!rows) return rows.error();
    std::map<std::string, bool>& case_open = rows->case_open;
    std::vector<const AlertRecord*> new_alerts;
    std::vector<std::pair<std::string, const AlertRecord*>> new_cases;  // id, the alert opening it
    std::map<std::string, const AlertRecord*> raised;  // case id -> its most severe new alert
    for (const auto& a : alerts) {
      AlertInsertOutcome outcome{a.id, "", false};
      if (auto it = stored->find(a.id); it != stored->end()) {
        outcome.case_id = it->second;
        outcome.duplicate = true;
        outcomes.push_back(std::move(outcome));
        continue;
      }
      const auto linking = linking_observables(a);
      // The open case of the newest related alert: same host, a shared observable, in the window.
      if (!a.host_name.empty()) {
        for (const auto& o : linking) {
          auto row = rows->by_key.find({o.type, o.value, a.host_name});
          if (row == rows->by_key.end() || !case_open[row->second.case_id]) continue;
          if (row->second.at_ms < a.timestamp_ms - case_window_ms ||
              row->second.at_ms > a.timestamp_ms + case_window_ms)
            continue;
          outcome.case_id = row->second.case_id;
          break;
        }
      }
      if (outcome.case_id.empty()) {
        outcome.case_id = crypto::random_uuid();
        case_open[outcome.case_id] = true;
        new_cases.emplace_back(outcome.case_id, &a);
      } else {
        auto& most = raised[outcome.case_id];
        if (most == nullptr || severity_rank(a.severity) > severity_rank(most->severity)) most = &a;
      }
      // The observable's row now points at this alert's case (the upsert's rule: a newer
      // sighting, or another case).
      for (const auto& o : linking) {
        auto [row, added] = rows->by_key.try_emplace(
            {o.type, o.value, a.host_name}, ObservableRow{outcome.case_id, a.timestamp_ms, true});
        if (!added &&
            (a.timestamp_ms >= row->second.at_ms || row->second.case_id != outcome.case_id)) {
          row->second = {outcome.case_id, a.timestamp_ms, true};
        }
      }
      stored->emplace(a.id, outcome.case_id);  // a second copy later in the batch: a duplicate
      new_alerts.push_back(&a);
      outcomes.push_back(std::move(outcome));
    }
    if (auto w = insert_case_rows(*db, new_cases, now_ms); !w) return w;
    for (const auto& [case_id, most] : raised) {
      auto touched = Query(*db,
                           "UPDATE cases SET updated_at_ms = ?, severity = CASE WHEN ? > "
                           "(CASE severity WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN "
                           "'high' THEN 2 ELSE 3 END) THEN ? ELSE severity END WHERE id = ?")
                         .bind(now_ms, severity_rank(most->severity), most->severity, case_id)
                         .run();
      if (!touched) return touched;
    }
    std::vector<std::string> case_ids;
    case_ids.reserve(new_alerts.size());
    for (const auto& outcome : outcomes)
      if (!outcome.duplicate) case_ids.push_back(outcome.case_id);
    if (auto w = insert_alert_rows(*db, new_alerts, case_ids, me, now_ms); !w) return w;
    if (auto w = upsert_observable_rows(*db, rows->by_key); !w) return w;
    return append_audit_locked(*db, audit, now_ms);
  });
  if (!s) return s.error();
  return outcomes;
}

Result<std::optional<AlertRecord>> SqlStore::find_alert(const std::string& id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM alerts WHERE id = ?", kAlertColumns));
  q.bind(id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<AlertRecord>();
  if (rc != sql::kRow) return db->error("find alert");
  return std::optional<AlertRecord>(alert_from_row(q));
}

Result<std::vector<AlertRecord>> SqlStore::list_alerts(const std::string& status, Page page) {
  auto db = pool_.acquire();
  // Rowid order is arrival order; no separate index on received_at_ms to maintain on intake.
  Query q(*db, fmt::format("SELECT {} FROM alerts WHERE (? = '' OR status = ?) ORDER BY "
                           "rowid DESC LIMIT ? OFFSET ?",
                           kAlertColumns));
  q.bind(status, status, page.limit, page.offset);
  return collect_rows(*db, q, alert_from_row, "list alerts");
}

Status SqlStore::update_alert(const std::string& id, const std::string& status,
                                 const std::string& column, const std::string& json_text,
                                 const AuditEvent& audit, std::int64_t now_ms) {
  // The column name is never caller text: only these three are accepted.
  if (column != "validation" && column != "enrichment" && column != "confidence")
    return Error{fmt::format("alerts have no '{}' to update", column)};
  const bool processing_step = column != "confidence";
  const bool ends_processing =
      column == "enrichment" || (column == "validation" && status == "not_relevant");
  const std::string me = controller_id();
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    // A validation or enrichment is stored only by the alert's holder (or, its lease expired,
    // a controller nobody has taken it from): one that lost its lease (frozen past it) does not
    // overwrite what the taker decides, before or after the taker has finished.
    Query q(*db, fmt::format("UPDATE alerts SET status = ?, {} = ?, updated_at_ms = ?, "
                             "processing = CASE WHEN ? = 1 THEN 0 ELSE processing END WHERE id = "
                             "? AND (? = 0 OR lease_owner IN (?, '') OR (processing = 1 AND "
                             "lease_until_ms < ?))",
                             column));
    q.bind(status, json_text, now_ms, ends_processing ? 1 : 0, id, processing_step ? 1 : 0, me,
           now_ms);
    if (auto r = q.run(); !r) return r;
    if (db->changes() == 0) {
      Query exists(*db, "SELECT lease_owner FROM alerts WHERE id = ?");
      exists.bind(id);
      const int rc = exists.step();
      if (rc == sql::kRow)
        return Error{
            fmt::format("alert '{}' is held by another controller ({})", id, exists.text(0))};
      if (rc != sql::kDone) return db->error("find alert");
      return Error{fmt::format("no alert '{}'", id)};
    }
    if (column == "validation" && status != "validating") {
      // Time to validate: the first of the case's alerts to be decided sets it.
      auto milestone = Query(*db,
                             "UPDATE cases SET validated_at_ms = ? WHERE validated_at_ms IS "
                             "NULL AND id = (SELECT case_id FROM alerts WHERE id = ?)")
                           .bind(now_ms, id)
                           .run();
      if (!milestone) return milestone;
    }
    return append_audit_locked(*db, audit, now_ms);
  });
}

// Alerts being processed: `processing = 1`.
Result<std::vector<std::string>> SqlStore::unfinished_alerts(std::int64_t now_ms) {
  return ids_for_this_controller(
      "SELECT id FROM alerts WHERE processing = 1 AND (lease_owner IN (?, '') OR "
      "lease_until_ms < ?) ORDER BY rowid",
      now_ms, "list unfinished alerts");
}

Result<bool> SqlStore::claim_alert(const std::string& id, std::int64_t now_ms,
                                   std::int64_t lease_ms) {
  return claim_lease("alerts", "processing = 1", id, now_ms, lease_ms);
}

Status SqlStore::renew_alert_leases(std::int64_t now_ms, std::int64_t lease_ms) {
  return renew_leases("alerts", "processing = 1", now_ms, lease_ms);
}

Result<std::vector<std::string>> SqlStore::take_over_alerts(std::int64_t now_ms,
                                                            std::int64_t lease_ms) {
  const std::string me = controller_id();
  auto db = pool_.acquire();
  // Claimed as they are listed: a backlog taken over is this controller's at once, not listed
  // again at every look while it works through it.
  Query q(*db,
          "UPDATE alerts SET lease_owner = ?, lease_until_ms = ? WHERE processing = 1 AND "
          "lease_owner NOT IN (?, '') AND lease_until_ms < ? RETURNING rowid, id");
  q.bind(me, now_ms + lease_ms, me, now_ms);
  auto taken = collect_rows(
      *db, q,
      [](const Query& r) {
        return std::pair{r.integer(0), r.text(1)};
      },
      "take over alerts");
  if (!taken) return taken.error();
  std::sort(taken->begin(), taken->end());
  std::vector<std::string> ids;
  ids.reserve(taken->size());
  for (auto& [rowid, id] : *taken) ids.push_back(std::move(id));
  return ids;
}

Result<std::vector<std::string>> SqlStore::ids_for_this_controller(const std::string& sql,
                                                                   std::int64_t ms,
                                                                   const char* what) {
  auto db = pool_.acquire();
  Query q(*db, sql);
  q.bind(controller_id(), ms);
  return collect_rows(
      *db, q, [](const Query& r) { return r.text(0); }, what);
}

Result<bool> SqlStore::claim_lease(const char* table, const char* unfinished, const std::string& id,
                                   std::int64_t now_ms, std::int64_t lease_ms) {
  const std::string me = controller_id();
  auto db = pool_.acquire();
  // One statement: the row lock it takes makes two controllers' claims take turns.
  auto claimed = Query(*db, fmt::format("UPDATE {} SET lease_owner = ?, lease_until_ms = ? WHERE "
                                        "id = ? AND {} AND (lease_owner IN (?, '') OR "
                                        "lease_until_ms < ?)",
                                        table, unfinished))
                     .bind(me, now_ms + lease_ms, id, me, now_ms)
                     .run();
  if (!claimed) return claimed.error();
  return db->changes() > 0;
}

Status SqlStore::renew_leases(const char* table, const char* unfinished, std::int64_t now_ms,
                              std::int64_t lease_ms) {
  auto db = pool_.acquire();
  return Query(*db, fmt::format("UPDATE {} SET lease_until_ms = ? WHERE {} AND lease_owner = ?",
                                table, unfinished))
      .bind(now_ms + lease_ms, controller_id())
      .run();
}

Result<std::vector<AlertRecord>> SqlStore::related_alerts(
    const std::string& host_name, const std::vector<Observable>& observables,
    const std::string& except_id, int limit) {
  auto db = pool_.acquire();
  // Every lookup here is bounded by `limit` and served by an index, so history stays cheap
  // however many alerts share a common observable.
  std::vector<std::string> ids;
  auto add = [&](std::string id) {
    if (id != except_id && std::find(ids.begin(), ids.end(), id) == ids.end())
      ids.push_back(std::move(id));
  };
  if (!host_name.empty()) {
    Query q(*db, "SELECT id FROM alerts WHERE host_name = ? ORDER BY timestamp_ms DESC LIMIT ?");
    q.bind(host_name, limit + 1);
    while (q.step() == sql::kRow) add(q.text(0));
  }
  // The newest alert of each case in which the same observable was seen, on any host.
  for (const auto& o : observables) {
    Query cases(*db,
                "SELECT case_id FROM observable_cases WHERE type = ? AND value = ? ORDER BY "
                "at_ms DESC LIMIT ?");
    cases.bind(o.type, o.value, limit);
    while (cases.step() == sql::kRow) {
      Query newest(*db,
                   "SELECT id FROM alerts WHERE case_id = ? ORDER BY timestamp_ms DESC LIMIT 2");
      newest.bind(cases.text(0));
      while (newest.step() == sql::kRow) add(newest.text(0));
    }
  }
  std::vector<AlertRecord> out;
  for (const auto& id : ids) {
    Query q(*db,
            "SELECT id, rule_name, severity, timestamp_ms, host_name, status, case_id FROM "
            "alerts WHERE id = ?");
    q.bind(id);
    if (q.step() != sql::kRow) continue;
    AlertRecord a;
    a.id = q.text(0);
    a.rule_name = q.text(1);
    a.severity = q.text(2);
    a.timestamp_ms = q.integer(3);
    a.host_name = q.text(4);
    a.status = q.text(5);
    a.case_id = q.text(6);
    out.push_back(std::move(a));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.timestamp_ms > b.timestamp_ms; });
  if (out.size() > static_cast<std::size_t>(limit)) out.resize(static_cast<std::size_t>(limit));
  return out;
}

}  // namespace riposte::controller
