#include "platform/linux/procfs.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
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
  const auto text = read_proc_file(fmt::format("/proc/{}/stat", pid));
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

Pidfd::~Pidfd() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<Pidfd>> open_verified(const ProcessRef& target) {
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
  return handle;
}

}  // namespace riposte::platform::linux_impl
