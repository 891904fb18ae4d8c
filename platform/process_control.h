#pragma once

// Processes on the endpoint: listing, and signals that can never hit the wrong process.
// A process is named by pid *and* start time, so a pid the kernel recycled is never touched.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace riposte::platform {

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string name;          // comm
  std::string exe;           // resolved /proc/PID/exe, empty when not readable (kernel threads)
  bool exe_deleted = false;  // the executable was unlinked after the process started
  // /proc/PID/ns/{mnt,pid} ("mnt:[4026531841]"): a process in another mount namespace (a
  // container) names files that are not the host's files at the same paths.
  std::string mount_namespace, pid_namespace;
  std::string cmdline;  // arguments joined by spaces
  // For an interpreter (sh, bash, python3, perl, ruby, node, php, ...): the script file it runs,
  // as the process names it, made absolute with its working directory (interpreter_script.h);
  // read it with Files::stream_script. Empty otherwise.
  std::string script;
  // How `script` was confirmed: "open by the process (fd N)" or "named on the command line of
  // interpreter X, readable by the process".
  std::string script_proof;
  // When looked up by the id of one of its threads (inspect(TID)): that thread id; `pid` is the
  // process (thread group) it belongs to. 0 otherwise.
  pid_t thread_id = 0;
  uid_t uid = 0;
  std::string user;
  // Start time in clock ticks after boot (/proc/PID/stat field 22): exact and stable, the value
  // to quote back when acting on the process.
  std::uint64_t start_ticks = 0;
  std::int64_t start_time_unix_ms = 0;  // the same instant on the wall clock, for people
  std::uint64_t rss_bytes = 0;
  bool kernel_thread = false;
  // proc(5) state in words: running, sleeping, disk-sleep, stopped, tracing-stop, zombie (exited,
  // not yet reaped by its parent), dead, idle.
  std::string state;
};

// Which process: pid plus its start time, as seen in a listing or an alert.
struct ProcessRef {
  pid_t pid = 0;
  std::uint64_t start_ticks = 0;
};

// What a ProcessRef turned out to name: the process to act on and, when the pid given was one of
// its threads, that thread (alerts from Java, Go and .NET services often log thread ids).
struct ResolvedProcess {
  ProcessRef process;
  pid_t thread_id = 0;  // the thread id given, when it was not the process's own pid
  std::string name;     // the process's comm
  // For people: "thread 1235 of process 1234 (java)"; "" when the pid was the process's own.
  std::string description;
};

enum class KillOutcome {
  kTerminated,   // exited after SIGTERM within the grace period
  kKilled,       // needed SIGKILL
  kAlreadyGone,  // had exited before it was signalled (detail: a zombie names its parent)
  kFailed,
};

struct KillReport {
  pid_t pid = 0;
  std::string name;
  KillOutcome outcome = KillOutcome::kFailed;
  std::string detail;
};

struct KillOptions {
  std::chrono::milliseconds grace{5000};
  bool tree = false;  // also every descendant
};

std::string to_string(KillOutcome outcome);

class ProcessControl {
 public:
  virtual ~ProcessControl() = default;

  virtual Result<std::vector<ProcessInfo>> list() = 0;
  // A thread id gives the process it belongs to, with `thread_id` set.
  virtual Result<ProcessInfo> inspect(pid_t pid) = 0;
  // The process and its descendants, parents before children (a thread id: its process's tree).
  virtual Result<std::vector<ProcessInfo>> tree(pid_t pid) = 0;

  // Which process `target` names, before anything acts on it. A thread id resolves to its
  // process: `target.start_ticks` may be the thread's own start or the process's, and the result
  // carries the process's. Errors, saying why and that nothing was done: no such pid, a kernel
  // thread (nothing to kill, suspend or capture), or a start time that is neither.
  virtual Result<ResolvedProcess> resolve(const ProcessRef& target) = 0;

  // SIGTERM (with SIGCONT, so a stopped process handles it within the grace period too), then
  // SIGKILL after the grace period. Errors (nothing was signalled) when the pid does not exist, no
  // start time is given or it differs from `target.start_ticks`. A process that had already exited
  // (zombie) is reported kAlreadyGone with its unreaping parent, never as terminated.
  virtual Result<std::vector<KillReport>> kill(const ProcessRef& target,
                                               const KillOptions& options) = 0;
  // SIGSTOP / SIGCONT. Refused, with the reason, for a process that has already exited.
  virtual Status suspend(const ProcessRef& target) = 0;
  virtual Status resume(const ProcessRef& target) = 0;
};

std::unique_ptr<ProcessControl> make_process_control();

}  // namespace riposte::platform
