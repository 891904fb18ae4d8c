#pragma once

// Which remote endpoints this host talked to, and when: sampled from the live socket table and
// kept on disk (SQLite) for a retention period, so "did this host talk to X in the last 30 days?"
// has an answer long after the connection closed.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "platform/network_table.h"

struct sqlite3;

namespace riposte::agent {

struct SeenEndpoint {
  std::string remote_address;
  std::uint16_t remote_port = 0;
  std::string protocol;
  pid_t pid = 0;
  std::string process;
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;
};

class ConnectionHistory {
 public:
  static constexpr std::int64_t kDefaultRetentionMs = 30LL * 24 * 3600 * 1000;

  static Result<std::unique_ptr<ConnectionHistory>> open(
      const std::filesystem::path& path, std::int64_t retention_ms = kDefaultRetentionMs);
  ~ConnectionHistory();

  // Records every connection with a remote end (listeners and unconnected UDP are skipped):
  // a new (remote, port, protocol, pid, process) row, or a later last_seen on an existing one.
  Status record(const std::vector<platform::Connection>& connections, std::int64_t now_ms);
  // Rows for `remote_address` seen at or after `since_ms`.
  Result<std::vector<SeenEndpoint>> contacts(const std::string& remote_address,
                                             std::int64_t since_ms);
  // Drops rows last seen before now - retention; returns how many.
  Result<int> prune(std::int64_t now_ms);

 private:
  ConnectionHistory(sqlite3* db, std::int64_t retention_ms)
      : db_(db), retention_ms_(retention_ms) {}
  std::mutex mutex_;
  sqlite3* db_;
  std::int64_t retention_ms_;
};

}  // namespace riposte::agent
