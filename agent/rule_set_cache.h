#pragma once

// YARA rule sets by SHA-256, as yara.scan actions name them (actions.proto YaraScanParams):
// compiled once and kept compiled for the next scans, their text kept on disk so a restarted
// agent does not fetch them again. A set missing from both is fetched from the controller
// (ObjectFetcher); text read back from disk is checked against its hash before it is used.
// Thread-safe: actions run on several workers.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "platform/yara_scanner.h"

namespace riposte::agent {

struct RuleSetCacheOptions {
  std::size_t compiled_sets = 4;  // kept in memory (a 2.8 MB public set compiles to ~3.5 MB)
  std::size_t files = 16;         // kept on disk, least recently used removed first
};

class RuleSetCache {
 public:
  // The bytes of a set (already checked against the hash), from the controller.
  using Fetch = std::function<Result<std::string>(const std::string& sha256, std::uint64_t size)>;

  RuleSetCache(std::filesystem::path dir, Fetch fetch, RuleSetCacheOptions options = {});

  // Errors: not a SHA-256, the fetch failed, or the rules do not compile (libyara's messages
  // with their line numbers, as yarac prints them).
  Result<std::shared_ptr<platform::YaraRules>> get(const std::string& sha256, std::uint64_t size);

  // How many times a set was compiled, and fetched, since start (tests, status).
  std::uint64_t compilations() const { return compilations_; }
  std::uint64_t fetches() const { return fetches_; }

 private:
  Result<std::string> source_of(const std::string& sha256, std::uint64_t size);
  void prune_files();

  std::filesystem::path dir_;
  Fetch fetch_;
  RuleSetCacheOptions options_;
  std::mutex mutex_;
  // Most recently used first.
  std::list<std::pair<std::string, std::shared_ptr<platform::YaraRules>>> compiled_;
  std::atomic<std::uint64_t> compilations_{0};
  std::atomic<std::uint64_t> fetches_{0};
};

}  // namespace riposte::agent
