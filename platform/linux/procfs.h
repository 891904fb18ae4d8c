#pragma once

// Shared by the Linux implementations: /proc parsing and pidfds checked against a start time.

#include <sys/stat.h>
#include <sys/types.h>

// glibc 2.36's <sys/pidfd.h> lacks __BEGIN_DECLS (fixed in 2.37): without extern "C", C++ callers
// look for mangled names and fail to link.
extern "C" {
#include <sys/pidfd.h>
}

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "platform/linux/fd.h"
#include "platform/process_control.h"

namespace riposte::platform::linux_impl {

struct StatFields {
  pid_t ppid = 0;
  std::string comm;
  char state = '?';
  unsigned flags = 0;
  std::uint64_t start_ticks = 0;
  std::uint64_t rss_pages = 0;
};

std::optional<StatFields> read_stat(pid_t pid);
// The thread group (process) a pid or thread id belongs to (/proc/ID/status Tgid): the id itself
// for a process, its process's pid for a thread, 0 when there is no such id.
pid_t thread_group_of(pid_t id);
// The same fields from a stat file's path (/proc/PID/task/TID/stat for one thread).
std::optional<StatFields> read_stat_file(const std::string& path);
std::string read_proc_file(const std::string& path);

// A process's effective credentials (/proc/PID/status Uid, Gid, Groups) and the classic
// permission check with them: `may(st, 4)` read, `may(st, 1)` search/execute. uid 0 may all
// (capabilities are not consulted: a root process could read anything anyway). ACLs are not
// consulted either, so a grant made only by an ACL is refused: the safe side.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  bool may(const struct stat& st, unsigned what) const;
};
Result<Credentials> credentials_of(pid_t pid);

// The account name of `uid` (passwd, NSS), or the number as text when it has none.
std::string user_name(uid_t uid);

// The namespace `kind` ("mnt", "pid", "net") of a process as /proc/PID/ns/ names it,
// "mnt:[4026531841]"; empty when it cannot be read.
std::string namespace_of(pid_t pid, const char* kind);

// The state letter of /proc/PID/stat (proc(5)) in words: "running", "sleeping", "disk-sleep",
// "stopped", "tracing-stop", "zombie", "dead", "idle"; the letter itself when unknown.
std::string state_name(char state);

// For a process that has exited but whose parent has not reaped it yet (state Z, or X while it
// is being reaped): why nothing can be done to it, naming that parent. nullopt for a live process.
std::optional<std::string> exited_unreaped(pid_t pid, const StatFields& stat);
// Why `pid` can no longer be acted on: gone from /proc, or exited and unreaped. nullopt while it
// lives.
std::optional<std::string> has_exited(pid_t pid);

// /proc/PID/exe: the executable's path as the process's mount namespace names it, and whether it
// was unlinked since (the kernel appends " (deleted)" to the link's text). Empty when unreadable.
struct ExeLink {
  std::string path;
  bool deleted = false;
};
ExeLink read_exe_link(pid_t pid);

// The script a process runs, and how that was confirmed (interpreter_script.h): the command
// line's script argument, made absolute with /proc/PID/cwd as the process sees it, kept only when
// the process holds that file open, or when the process is a known interpreter (by its
// executable's name, its argv[0], or BusyBox's applet) and may read the file. A command-line
// argument that is neither is no script. Empty when none.
struct ScriptOf {
  std::string path;
  std::string proof;
};
ScriptOf script_of(pid_t pid, const std::string& exe, const std::string& cmdline);

// An open pidfd; closed on destruction.
using Pidfd = Fd;

// Opens a pidfd for target.pid and only then checks its start time: once open, the descriptor
// names exactly one process, so a pid recycled after the check can never be acted on by mistake.
// A target without a start time is refused (saying where to find it). A process that has already
// exited (a zombie) is refused too, unless `allow_exited`: signalling a zombie "succeeds" without
// effect, and an action must not report that as done.
Result<std::unique_ptr<Pidfd>> open_verified(const ProcessRef& target, bool allow_exited = false);

// One line of /proc/PID/maps, plus what a capture decided about it.
struct Mapping {
  std::uint64_t start = 0, end = 0, offset = 0;
  std::string perms, path;
  bool write_data = false;
  std::string skip_reason;
};
std::vector<Mapping> read_maps(pid_t pid);

// Stops every thread with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT) so memory and registers are
// consistent, and resumes them on destruction. Threads created while seizing are picked up by
// listing /proc/PID/task until the set is stable.
class StoppedProcess {
 public:
  explicit StoppedProcess(pid_t pid);
  ~StoppedProcess();
  StoppedProcess(const StoppedProcess&) = delete;
  StoppedProcess& operator=(const StoppedProcess&) = delete;
  bool complete() const { return failed_.empty() && !order_.empty(); }
  // Main thread first: debuggers take the first NT_PRSTATUS as the current thread.
  std::vector<pid_t> threads() const;

 private:
  pid_t pid_;
  std::set<pid_t> seized_, failed_;
  std::vector<pid_t> order_;
};

}  // namespace riposte::platform::linux_impl
