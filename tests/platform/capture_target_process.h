#pragma once

// Test helpers around tests/platform/capture_target.cpp: start it and wait until it is ready, and
// read what the `yara` CLI says about it, so tests and benchmarks compare against the same thing.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "platform/process_control.h"
#include "tests/build_paths.h"

namespace riposte::testing {

// The capture target with `megabytes` of touched heap, killed on destruction.
class CaptureTarget {
 public:
  explicit CaptureTarget(int megabytes) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      // Dies with the test: a crashed test must not leave a target holding ctest's output pipe.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(fds[1], 1);
      const std::string mb = std::to_string(megabytes);
      ::execl(::riposte::testing::capture_target(), ::riposte::testing::capture_target(),
              mb.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(fds[1]);
    char line[64] = {};
    ready_ = ::read(fds[0], line, sizeof(line) - 1) > 0;  // "ready ..." once the heap is filled
    ::close(fds[0]);
  }
  ~CaptureTarget() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  CaptureTarget(const CaptureTarget&) = delete;
  CaptureTarget& operator=(const CaptureTarget&) = delete;

  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  platform::ProcessRef ref() const {
    return {pid_, platform::make_process_control()->inspect(pid_)->start_ticks};
  }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
};

// (rule + string identifier, offset) pairs.
using YaraMatchSet = std::set<std::pair<std::string, std::uint64_t>>;

// `yara -s` prints a "RULE TARGET" line, then "0xOFFSET:$id: data" for each string match.
inline YaraMatchSet parse_yara_cli_matches(const std::string& output) {
  YaraMatchSet out;
  std::string rule;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, std::regex(R"(0x([0-9a-f]+):(\$\w+):.*)"))) {
      out.insert({rule + m[2].str(), std::stoull(m[1], nullptr, 16)});
    } else if (!line.empty()) {
      rule = line.substr(0, line.find(' '));
    }
  }
  return out;
}

}  // namespace riposte::testing
