#pragma once

// YARA through libyara: rules compiled from text (errors with line numbers), scans of files,
// directories and live process memory, with timeouts.
//
// External variables, as LOKI and THOR define them for their rule sets (Neo23x0 signature-base),
// so such sets compile and match here as there. All are strings, set for every target:
//   filename   the file's name ("sshd"); for a process, its executable's
//   filepath   the directory holding it ("/usr/sbin"), no trailing slash
//   extension  the name's extension, lower case, with its dot (".exe"), or ""
//   filetype   from the first bytes: ELF, EXE, ZIP, PDF, GZIP, RAR, 7ZIP, JAVA, OLE, SCRIPT (#!),
//              else UNKNOWN (LOKI's names for the same magics)
//   owner      the file owner's account name; for a process, the account it runs as
// A process's executable is read through /proc/PID/exe, so a deleted binary or one in another
// mount namespace is described as the process sees it. LOKI's `md5` is not defined: a rule
// that uses it fails to compile, with libyara's "undefined identifier" and its line.

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
