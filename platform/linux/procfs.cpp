#include "platform/linux/procfs.h"

#include <fmt/format.h>
#include <pwd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "platform/interpreter_script.h"
#include <vector>

namespace riposte::platform::linux_impl {

std::string read_proc_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// /proc/PID/stat: "pid (comm) state ppid ...". comm may hold spaces and parentheses, so split at
// the last ')'.
std::optional<StatFields> read_stat(pid_t pid) {
  return read_stat_file(fmt::format("/proc/{}/stat", pid));
}

std::optional<StatFields> read_stat_file(const std::string& path) {
  const auto text = read_proc_file(path);
  const auto open = text.find('(');
  const auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open ||
      close + 2 >= text.size()) {
    return std::nullopt;
  }
  StatFields f;
  f.comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 2));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  for (std::string field; rest >> field;) fields.push_back(field);
  if (fields.size() < 22) return std::nullopt;
  f.state = fields[0][0];
  f.ppid = static_cast<pid_t>(std::stol(fields[1]));
  f.flags = static_cast<unsigned>(std::stoul(fields[6]));
  f.start_ticks = std::stoull(fields[19]);
  f.rss_pages = std::stoull(fields[21]);
  return f;
}

bool Credentials::may(const struct stat& st, unsigned what) const {
  if (uid == 0) return true;
  unsigned bits = st.st_mode & 07;
  if (st.st_uid == uid) {
    bits = (st.st_mode >> 6) & 07;
  } else if (st.st_gid == gid || std::find(groups.begin(), groups.end(), st.st_gid) != groups.end()) {
    bits = (st.st_mode >> 3) & 07;
  }
  return (bits & what) == what;
}

Result<Credentials> credentials_of(pid_t pid) {
  std::istringstream status(read_proc_file(fmt::format("/proc/{}/status", pid)));
  Credentials c;
  bool uid = false, gid = false;
  for (std::string line; std::getline(status, line);) {
    std::istringstream fields(line.substr(line.find(':') + 1));
    unsigned long real = 0, effective = 0;
    if (line.starts_with("Uid:") && fields >> real >> effective) {
      c.uid = static_cast<uid_t>(effective);
      uid = true;
    } else if (line.starts_with("Gid:") && fields >> real >> effective) {
      c.gid = static_cast<gid_t>(effective);
      gid = true;
    } else if (line.starts_with("Groups:")) {
      for (unsigned long g = 0; fields >> g;) c.groups.push_back(static_cast<gid_t>(g));
    }
  }
  if (!uid || !gid) return Error{fmt::format("cannot read the credentials of process {}", pid)};
  return c;
}

pid_t thread_group_of(pid_t id) {
  std::istringstream status(read_proc_file(fmt::format("/proc/{}/status", id)));
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("Tgid:")) return static_cast<pid_t>(std::stol(line.substr(5)));
  }
  return 0;
}

namespace {

// The descriptor of `pid` that is open on `path` (the same inode, or the link's text when the
// file was deleted since), as "fd N"; "" when none is. Bounded: a process with more descriptors
// than this (a database) is not a script interpreter worth the walk.
std::string open_descriptor(pid_t pid, const std::string& path, const struct stat* file) {
  constexpr int kMaxDescriptors = 4096;
  std::error_code ec;
  int seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
    if (++seen > kMaxDescriptors) break;
    const auto fd = entry.path().filename().string();
    if (fd == "0" || fd == "1" || fd == "2") continue;  // a file redirected in is not run
    struct stat st {};
    if (file != nullptr && ::stat(entry.path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_dev == file->st_dev && st.st_ino == file->st_ino)
      return "fd " + fd;
    std::error_code link_ec;
    const auto target = std::filesystem::read_symlink(entry.path(), link_ec).string();
    if (!link_ec && target == path + " (deleted)") return "fd " + fd + ", deleted since";
  }
  return "";
}

}  // namespace

ScriptOf script_of(pid_t pid, const std::string& exe, const std::string& cmdline) {
  std::vector<std::string> argv;
  std::size_t start = 0;
  while (start <= cmdline.size() && !cmdline.empty()) {
    const auto end = cmdline.find('\0', start);
    argv.push_back(cmdline.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  const auto argument = script_argument(exe, argv);
  if (argument.path.empty()) return {};
  std::string path = argument.path;
  if (path.front() != '/') {
    std::error_code ec;
    const auto cwd = std::filesystem::read_symlink(fmt::format("/proc/{}/cwd", pid), ec);
    if (ec || !cwd.is_absolute()) return {};
    // Not normalized as text: ".." after a linked directory means its target's parent, which the
    // walk that opens the script resolves.
    path = (cwd / path).string();
  }
  // Seen from the process's own root (a container's /tmp is not the host's). Only a proof: the
  // file is read later by Files::stream_script, walking from that root with the process's rights.
  struct stat st {};
  const bool exists =
      ::stat(fmt::format("/proc/{}/root{}", pid, path).c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (const auto fd = open_descriptor(pid, path, exists ? &st : nullptr); !fd.empty())
    return {path, fmt::format("open by the process ({})", fd)};
  if (argument.interpreter.empty() || !exists) return {};
  const auto creds = credentials_of(pid);
  if (!creds || !creds->may(st, 4)) return {};
  return {path, fmt::format("named on the command line of interpreter {}, readable by the process",
                            argument.interpreter)};
}

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(uid, &pw, buffer, sizeof(buffer), &found) == 0 && found != nullptr)
    return pw.pw_name;
  return std::to_string(uid);
}

std::string namespace_of(pid_t pid, const char* kind) {
  std::error_code ec;
  return std::filesystem::read_symlink(fmt::format("/proc/{}/ns/{}", pid, kind), ec).string();
}

std::string state_name(char state) {
  switch (state) {
    case 'R':
      return "running";
    case 'S':
      return "sleeping";
    case 'D':
      return "disk-sleep";
    case 'T':
      return "stopped";
    case 't':
      return "tracing-stop";
    case 'Z':
      return "zombie";
    case 'X':
      return "dead";
    case 'I':
      return "idle";
    default:
      return std::string(1, state);
  }
}

// Whether any thread of `pid` other than a zombie leader still runs: a main thread that called
// pthread_exit shows as Z in /proc/PID/stat while the rest of the process goes on.
bool has_live_thread(pid_t pid) {
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    const auto thread = read_stat_file((task.path() / "stat").string());
    if (thread && thread->state != 'Z' && thread->state != 'X') return true;
  }
  return false;
}

std::optional<std::string> exited_unreaped(pid_t pid, const StatFields& stat) {
  if (stat.state != 'Z' && stat.state != 'X') return std::nullopt;
  if (has_live_thread(pid)) return std::nullopt;
  const auto parent = read_stat(stat.ppid);
  return fmt::format(
      "process {} ({}) has already exited: it is a zombie that its parent, pid {} ({}), has not "
      "reaped",
      pid, stat.comm, stat.ppid, parent ? parent->comm : "gone");
}

std::optional<std::string> has_exited(pid_t pid) {
  const auto stat = read_stat(pid);
  if (!stat) return fmt::format("process {} exited", pid);
  return exited_unreaped(pid, *stat);
}

ExeLink read_exe_link(pid_t pid) {
  std::error_code ec;
  ExeLink link{std::filesystem::read_symlink(fmt::format("/proc/{}/exe", pid), ec).string()};
  constexpr std::string_view kDeleted = " (deleted)";
  if (link.path.ends_with(kDeleted)) {
    link.path.resize(link.path.size() - kDeleted.size());
    link.deleted = true;
  }
  return link;
}

Result<std::unique_ptr<Pidfd>> open_verified(const ProcessRef& target, bool allow_exited) {
  if (target.start_ticks == 0) {
    return Error{fmt::format(
        "no start time given for pid {}: process actions need the pid and its start time "
        "(start_ticks, field 22 of /proc/{}/stat, as process.list shows it) so that a recycled pid "
        "is never hit; nothing was done",
        target.pid, target.pid)};
  }
  const int fd = ::pidfd_open(target.pid, 0);
  if (fd < 0) {
    if (errno == ESRCH) return Error{fmt::format("no process with pid {}", target.pid)};
    return Error{fmt::format("pidfd_open({}): {}", target.pid, std::strerror(errno))};
  }
  auto handle = std::make_unique<Pidfd>(fd);
  auto stat = read_stat(target.pid);
  if (!stat) return Error{fmt::format("process {} exited", target.pid)};
  if (stat->start_ticks != target.start_ticks) {
    return Error{
        fmt::format("pid {} now belongs to another process (start time {}, expected {}); "
                    "nothing was done to it",
                    target.pid, stat->start_ticks, target.start_ticks)};
  }
  if (!allow_exited) {
    if (auto exited = exited_unreaped(target.pid, *stat)) {
      return Error{*exited + "; nothing was done to it"};
    }
  }
  return handle;
}

std::vector<Mapping> read_maps(pid_t pid) {
  std::vector<Mapping> maps;
  std::istringstream in(read_proc_file(fmt::format("/proc/{}/maps", pid)));
  for (std::string line; std::getline(in, line);) {
    Mapping m;
    char perms[8] = {};
    unsigned long long start = 0, end = 0, offset = 0, inode = 0;
    int path_pos = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %llu %n", &start, &end, perms, &offset,
                    &inode, &path_pos) < 5) {
      continue;
    }
    m.start = start;
    m.end = end;
    m.offset = offset;
    m.perms = perms;
    if (path_pos > 0 && static_cast<std::size_t>(path_pos) <= line.size())
      m.path = line.substr(path_pos);
    maps.push_back(std::move(m));
  }
  return maps;
}

StoppedProcess::StoppedProcess(pid_t pid) : pid_(pid) {
  for (bool grew = true; grew;) {
    grew = false;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
      const pid_t tid = static_cast<pid_t>(std::stol(entry.path().filename().string()));
      if (seized_.contains(tid) || failed_.contains(tid)) continue;
      grew = true;
      if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0 ||
          ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
        failed_.insert(tid);
        continue;
      }
      int status = 0;
      ::waitpid(tid, &status, __WALL);
      seized_.insert(tid);
      order_.push_back(tid);
    }
  }
}

StoppedProcess::~StoppedProcess() {
  for (pid_t tid : order_) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
}

std::vector<pid_t> StoppedProcess::threads() const {
  auto out = order_;
  std::stable_partition(out.begin(), out.end(), [&](pid_t t) { return t == pid_; });
  return out;
}

}  // namespace riposte::platform::linux_impl
