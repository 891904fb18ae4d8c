#pragma once

// YARA through libyara: rules compiled from text (errors with line numbers), scans of files,
// directories and live process memory, with timeouts.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "platform/process_control.h"

struct YR_RULES;

namespace riposte::platform {

struct YaraStringMatch {
  std::string identifier;    // "$a"
  std::uint64_t offset = 0;  // file offset, or virtual address for process scans
  std::uint32_t length = 0;
  std::string data;  // the first bytes matched (at most 64), printable ASCII kept, others as \xNN
};

struct YaraMatch {
  std::string rule;
  std::string rule_namespace;
  std::vector<std::string> tags;
  std::map<std::string, std::string> metadata;
  std::vector<YaraStringMatch> strings;
  std::string target;  // file path, or "pid N"
};

struct YaraScanReport {
  std::vector<YaraMatch> matches;
  std::uint64_t bytes_scanned = 0;
  int targets_scanned = 0;
  std::vector<std::string> errors;  // targets that could not be scanned, and why
  bool timed_out = false;
};

class YaraRules {
 public:
  // Errors list every compiler message as "line N: message".
  static Result<std::shared_ptr<YaraRules>> compile(const std::string& source);
  ~YaraRules();
  YR_RULES* get() const { return rules_; }
  int rule_count() const;

 private:
  explicit YaraRules(YR_RULES* rules) : rules_(rules) {}
  YR_RULES* rules_;
};

struct YaraScanOptions {
  int timeout_seconds = 60;  // per target
  bool recursive = true;     // for directories
  // Threads for process scans. Regions are split between threads and each part is scanned as one
  // YARA memory scan, so a rule whose condition combines strings found in regions given to
  // different threads is evaluated per part (string matches themselves are unaffected).
  int threads = 2;
  // Path scans: called after each file with files scanned so far and the total found.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

class YaraScanner {
 public:
  virtual ~YaraScanner() = default;
  virtual Result<YaraScanReport> scan_path(const YaraRules& rules, const std::string& path,
                                           const YaraScanOptions& options) = 0;
  virtual Result<YaraScanReport> scan_process(const YaraRules& rules, const ProcessRef& target,
                                              const YaraScanOptions& options) = 0;
};

std::unique_ptr<YaraScanner> make_yara_scanner();

}  // namespace riposte::platform
