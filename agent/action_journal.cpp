#include "agent/action_journal.h"

#include <fmt/format.h>

#include "common/sqlite_statement.h"

namespace riposte::agent {

using sqlite::Blob;
using sqlite::Statement;

namespace {

// WAL with synchronous=NORMAL survives a crash of the agent (and of the whole process tree); only a
// power cut or kernel crash can lose the last commits. That is acceptable for results and spool
// bookkeeping (a lost result shows the action as interrupted), but not for the replay check, so
// admit() commits with synchronous=FULL.
constexpr const char* kSchema = R"sql(
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
CREATE TABLE IF NOT EXISTS actions (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  state TEXT NOT NULL,            -- running | finished
  result BLOB,                    -- serialized ActionResult until acknowledged
  acknowledged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS actions_unacked ON actions (acknowledged, received_at_ms)
  WHERE acknowledged = 0;
CREATE TABLE IF NOT EXISTS uploads (
  sha256 TEXT NOT NULL,
  action_id TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (sha256, action_id)
);
)sql";

Error db_error(sqlite3* db, std::string_view what) {
  return Error{fmt::format("action journal: {}: {}", what, sqlite3_errmsg(db))};
}

}  // namespace

Result<std::unique_ptr<ActionJournal>> ActionJournal::open(const std::filesystem::path& path) {
  auto db = sqlite::open_database(path.string(), kSchema);
  if (!db) return db.error();
  return std::unique_ptr<ActionJournal>(new ActionJournal(*db));
}

ActionJournal::~ActionJournal() { sqlite3_close_v2(db_); }

Result<bool> ActionJournal::admit(const std::string& action_id, const std::string& kind,
                                  std::int64_t expires_at_ms, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  // Durable before anything runs: a replay after a power cut must still be refused.
  if (auto s = sqlite::exec(db_, "PRAGMA synchronous=FULL"); !s) return s.error();
  struct RestoreNormal {
    sqlite3* db;
    ~RestoreNormal() { (void)sqlite::exec(db, "PRAGMA synchronous=NORMAL"); }
  } restore{db_};
  auto s = Statement(cache_,
                     "INSERT OR IGNORE INTO actions (id, kind, received_at_ms, expires_at_ms, "
                     "state) VALUES (?, ?, ?, ?, 'running')")
               .bind(action_id, kind, now_ms, expires_at_ms)
               .run();
  if (!s) return s.error();
  return sqlite3_changes(db_) > 0;
}

Status ActionJournal::finish(const proto::ActionResult& result,
                             const std::vector<PendingUpload>& uploads) {
  std::lock_guard lock(mutex_);
  if (auto s = sqlite::exec(db_, "BEGIN IMMEDIATE"); !s) return s;
  auto body = [&]() -> Status {
    auto updated =
        Statement(cache_, "UPDATE actions SET state = 'finished', result = ? WHERE id = ?")
            .bind(Blob{result.SerializeAsString()}, result.action_id())
            .run();
    if (!updated) return updated;
    for (const auto& u : uploads) {
      auto inserted = Statement(cache_,
                                "INSERT OR REPLACE INTO uploads (sha256, action_id, name, size, "
                                "path) VALUES (?, ?, ?, ?, ?)")
                          .bind(u.evidence.sha256(), u.action_id, u.evidence.name(),
                                u.evidence.size(), u.path.string())
                          .run();
      if (!inserted) return inserted;
    }
    return ok_status();
  };
  if (auto s = body(); !s) {
    (void)sqlite::exec(db_, "ROLLBACK");
    return s;
  }
  return sqlite::exec(db_, "COMMIT");
}

Result<std::vector<proto::ActionResult>> ActionJournal::unacknowledged_results() {
  std::lock_guard lock(mutex_);
  Statement q(cache_,
              "SELECT result FROM actions WHERE acknowledged = 0 AND state = 'finished' "
              "ORDER BY received_at_ms, id");
  std::vector<proto::ActionResult> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    proto::ActionResult r;
    if (r.ParseFromString(q.blob(0))) out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return db_error(db_, "read spooled results");
  return out;
}

Status ActionJournal::acknowledge(const std::string& action_id) {
  std::lock_guard lock(mutex_);
  return Statement(cache_,
                   "UPDATE actions SET acknowledged = 1, result = NULL WHERE id = ? AND "
                   "state = 'finished'")
      .bind(action_id)
      .run();
}

Result<std::vector<PendingUpload>> ActionJournal::pending_uploads() {
  std::lock_guard lock(mutex_);
  Statement q(cache_, "SELECT sha256, action_id, name, size, path FROM uploads ORDER BY rowid");
  std::vector<PendingUpload> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) {
    PendingUpload u;
    u.evidence.set_sha256(q.text(0));
    u.action_id = q.text(1);
    u.evidence.set_name(q.text(2));
    u.evidence.set_size(static_cast<std::uint64_t>(q.integer(3)));
    u.path = q.text(4);
    out.push_back(std::move(u));
  }
  if (rc != SQLITE_DONE) return db_error(db_, "read pending uploads");
  return out;
}

Status ActionJournal::remove_upload(const std::string& sha256, const std::string& action_id) {
  std::lock_guard lock(mutex_);
  return Statement(cache_, "DELETE FROM uploads WHERE sha256 = ? AND action_id = ?")
      .bind(sha256, action_id)
      .run();
}

Result<std::uint64_t> ActionJournal::spool_bytes() {
  std::lock_guard lock(mutex_);
  Statement q(cache_, "SELECT COALESCE(SUM(size), 0) FROM uploads");
  if (q.step() != SQLITE_ROW) return db_error(db_, "measure spool");
  return static_cast<std::uint64_t>(q.integer(0));
}

Result<int> ActionJournal::recover_interrupted(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  Statement q(cache_, "SELECT id, received_at_ms FROM actions WHERE state = 'running'");
  std::vector<std::pair<std::string, std::int64_t>> interrupted;
  while (q.step() == SQLITE_ROW) interrupted.emplace_back(q.text(0), q.integer(1));
  for (const auto& [id, received] : interrupted) {
    proto::ActionResult r;
    r.set_action_id(id);
    r.set_status(proto::ActionResult::STATUS_FAILED);
    r.set_message("the agent stopped while this action was running; it was not re-run");
    r.set_started_at_unix_ms(received);
    r.set_finished_at_unix_ms(now_ms);
    auto s = Statement(cache_, "UPDATE actions SET state = 'finished', result = ? WHERE id = ?")
                 .bind(Blob{r.SerializeAsString()}, id)
                 .run();
    if (!s) return s.error();
  }
  return static_cast<int>(interrupted.size());
}

Status ActionJournal::prune(std::int64_t before_ms) {
  std::lock_guard lock(mutex_);
  return Statement(cache_, "DELETE FROM actions WHERE acknowledged = 1 AND expires_at_ms < ?")
      .bind(before_ms)
      .run();
}

}  // namespace riposte::agent
