#pragma once

// The agent's durable record of actions (SQLite, actions.db in the state directory):
// - every action id admitted, kept past its expiry, so a replayed action is refused even after
//   a restart (the replay check);
// - each action's result until the controller acknowledges it (the result spool), so results
//   produced while the controller is unreachable arrive after it comes back;
// - evidence objects waiting to be uploaded, with their files' paths and sizes (the evidence
//   spool, bounded by a size limit).
// An action found "running" at start was interrupted by a crash or restart: it gets a failed
// result and is never re-run on its own.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/sqlite_statement.h"
#include "protocol/agent_channel.pb.h"

namespace riposte::agent {

struct PendingUpload {
  std::string action_id;
  proto::EvidenceRef evidence;
  std::filesystem::path path;
};

class ActionJournal {
 public:
  static Result<std::unique_ptr<ActionJournal>> open(const std::filesystem::path& path);
  ~ActionJournal();

  // Records the action id; false if it was seen before (a replay).
  Result<bool> admit(const std::string& action_id, const std::string& kind,
                     std::int64_t expires_at_ms, std::int64_t now_ms);
  // Stores the final result and queues its evidence files for upload, in one transaction.
  Status finish(const proto::ActionResult& result, const std::vector<PendingUpload>& uploads);
  // Results not yet acknowledged by the controller, oldest first.
  Result<std::vector<proto::ActionResult>> unacknowledged_results();
  Status acknowledge(const std::string& action_id);

  Result<std::vector<PendingUpload>> pending_uploads();
  // The upload is complete (or refused): drop it from the spool.
  Status remove_upload(const std::string& sha256, const std::string& action_id);
  // Bytes of evidence waiting for upload.
  Result<std::uint64_t> spool_bytes();

  // Actions left running by a previous process get a failed result; returns how many.
  Result<int> recover_interrupted(std::int64_t now_ms);
  // Forgets acknowledged actions that expired before `before_ms` (a replay of them would be
  // refused as expired anyway).
  Status prune(std::int64_t before_ms);

 private:
  explicit ActionJournal(sqlite3* db) : db_(db) {}
  std::mutex mutex_;
  sqlite3* db_;
  sqlite::StatementCache cache_{db_};  // used under mutex_
};

}  // namespace riposte::agent
