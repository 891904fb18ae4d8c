#include "platform/process_control.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "platform/linux/procfs.h"

namespace riposte::platform {

namespace fs = std::filesystem;
using linux_impl::open_verified;
using linux_impl::read_stat;
using linux_impl::user_name;

namespace {

constexpr unsigned kPfKthread = 0x00200000;  // include/linux/sched.h

std::int64_t boot_time_unix_ms() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      std::int64_t seconds = 0;
      in >> seconds;
      return seconds * 1000;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

bool wait_exit(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

Status send(int pidfd, int sig, pid_t pid) {
  if (::pidfd_send_signal(pidfd, sig, nullptr, 0) != 0) {
    if (errno == ESRCH) return Error{fmt::format("process {} already exited", pid)};
    return Error{fmt::format("signal {} to {}: {}", sig, pid, std::strerror(errno))};
  }
  return ok_status();
}

// A cgroup v2 of its own for the members of one tree kill (/sys/fs/cgroup, or .../unified on a
// hybrid host): processes stay in their cgroup across fork and reparenting, so `cgroup.kill`
// takes everything the tree started, wherever it was reparented. Without cgroup v2 (or the right
// to create one) the kill works from the process tree alone.
class KillGroup {
 public:
  KillGroup() = default;
  KillGroup(const KillGroup&) = delete;
  KillGroup& operator=(const KillGroup&) = delete;
  ~KillGroup() {
    if (path_.empty()) return;
    // Empty once its members were killed and reaped; rmdir fails (harmlessly) until then.
    for (int i = 0; i < 50 && ::rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) ::usleep(20'000);
  }
  bool create() {
    static std::atomic<unsigned> counter{0};
    for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      std::error_code ec;
      if (!std::filesystem::exists(std::string(root) + "/cgroup.procs", ec) ||
          !std::filesystem::exists(std::string(root) + "/cgroup.max.depth", ec))
        continue;  // a cgroup v1 controller mount
      const auto path = fmt::format("{}/riposte-kill-{}-{}", root, ::getpid(), counter++);
      if (::mkdir(path.c_str(), 0700) == 0 &&
          std::filesystem::exists(path + "/cgroup.kill", ec)) {
        path_ = path;
        return true;
      }
      ::rmdir(path.c_str());
    }
    return false;
  }
  void add(pid_t pid) {
    if (!path_.empty()) (void)write(path_ + "/cgroup.procs", std::to_string(pid));
  }
  std::vector<pid_t> members() const {
    std::vector<pid_t> out;
    if (path_.empty()) return out;
    std::ifstream in(path_ + "/cgroup.procs");
    for (pid_t pid = 0; in >> pid;) out.push_back(pid);
    return out;
  }
  void kill_all() {
    if (!path_.empty()) (void)write(path_ + "/cgroup.kill", "1");
  }

 private:
  static bool write(const std::string& file, const std::string& text) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
  }
  std::string path_;
};

class LinuxProcessControl final : public ProcessControl {
 public:
  Result<std::vector<ProcessInfo>> list() override {
    std::vector<ProcessInfo> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
      const auto name = entry.path().filename().string();
      if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
      if (auto info = inspect(static_cast<pid_t>(std::stol(name)))) out.push_back(std::move(*info));
    }
    if (ec) return Error{"cannot read /proc: " + ec.message()};
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.pid < b.pid; });
    return out;
  }

  Result<ProcessInfo> inspect(pid_t pid) override {
    // /proc/TID answers for a thread too (hidden from the listing): report its process.
    if (const pid_t group = linux_impl::thread_group_of(pid); group != 0 && group != pid) {
      auto info = inspect(group);
      if (info) info->thread_id = pid;
      return info;
    }
    auto stat = read_stat(pid);
    if (!stat) return Error{fmt::format("no process with pid {}", pid)};
    ProcessInfo info;
    info.pid = pid;
    info.ppid = stat->ppid;
    info.name = stat->comm;
    info.start_ticks = stat->start_ticks;
    static const std::int64_t boot_ms = boot_time_unix_ms();
    static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    info.start_time_unix_ms =
        boot_ms + static_cast<std::int64_t>(stat->start_ticks * 1000 / ticks_per_second);
    static const long page = ::sysconf(_SC_PAGESIZE);
    info.rss_bytes = stat->rss_pages * static_cast<std::uint64_t>(page);
    info.kernel_thread = (stat->flags & kPfKthread) != 0;
    info.state = linux_impl::state_name(stat->state);
    auto exe = linux_impl::read_exe_link(pid);
    info.exe = std::move(exe.path);
    info.exe_deleted = exe.deleted;
    info.mount_namespace = linux_impl::namespace_of(pid, "mnt");
    info.pid_namespace = linux_impl::namespace_of(pid, "pid");
    auto cmdline = linux_impl::read_proc_file(fmt::format("/proc/{}/cmdline", pid));
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    auto script = linux_impl::script_of(pid, info.exe, cmdline);
    info.script = std::move(script.path);
    info.script_proof = std::move(script.proof);
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    info.cmdline = std::move(cmdline);
    std::istringstream status(linux_impl::read_proc_file(fmt::format("/proc/{}/status", pid)));
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("Uid:")) {
        info.uid = static_cast<uid_t>(std::stoul(line.substr(4)));
        break;
      }
    }
    info.user = user_name(info.uid);
    return info;
  }

  Result<ResolvedProcess> resolve(const ProcessRef& target) override {
    const auto stat = read_stat(target.pid);
    const pid_t group = linux_impl::thread_group_of(target.pid);
    if (!stat || group == 0) return Error{fmt::format("no process with pid {}", target.pid)};
    if ((stat->flags & kPfKthread) != 0) {
      return Error{fmt::format(
          "pid {} ({}) is a kernel thread: it has no process to kill, suspend or capture; "
          "nothing was done",
          target.pid, stat->comm)};
    }
    if (group == target.pid) return ResolvedProcess{target, 0, stat->comm, ""};
    const auto leader = read_stat(group);
    if (!leader) return Error{fmt::format("no process with pid {}", group)};
    // The thread's own start, or its process's: either names this process. Anything else is a
    // thread id the kernel gave to a later thread; open_verified refuses what has no start.
    if (target.start_ticks != 0 && target.start_ticks != stat->start_ticks &&
        target.start_ticks != leader->start_ticks) {
      return Error{fmt::format(
          "pid {} is now thread {} ({}) of process {} ({}), started at tick {}, not the {} "
          "given; nothing was done to it",
          target.pid, target.pid, stat->comm, group, leader->comm, stat->start_ticks,
          target.start_ticks)};
    }
    ResolvedProcess out;
    out.process = {group, target.start_ticks == 0 ? 0 : leader->start_ticks};
    out.thread_id = target.pid;
    out.name = leader->comm;
    out.description = fmt::format("thread {} ({}) of process {} ({})", target.pid, stat->comm,
                                  group, leader->comm);
    return out;
  }

  Result<std::vector<ProcessInfo>> tree(pid_t root) override {
    if (const pid_t group = linux_impl::thread_group_of(root); group != 0) root = group;
    auto all = list();
    if (!all) return all.error();
    std::multimap<pid_t, const ProcessInfo*> children;
    const ProcessInfo* root_info = nullptr;
    for (const auto& p : *all) {
      children.emplace(p.ppid, &p);
      if (p.pid == root) root_info = &p;
    }
    if (root_info == nullptr) return Error{fmt::format("no process with pid {}", root)};
    std::vector<ProcessInfo> out{*root_info};
    for (std::size_t i = 0; i < out.size(); ++i) {  // breadth first: parents before children
      auto [begin, end] = children.equal_range(out[i].pid);
      for (auto it = begin; it != end; ++it) out.push_back(*it->second);
    }
    return out;
  }

  Result<std::vector<KillReport>> kill(const ProcessRef& target,
                                       const KillOptions& options) override {
    KillGroup group;  // tree kills only: created below when cgroup v2 is there
    auto root = open_verified(target, /*allow_exited=*/true);
    if (!root) return root.error();
    struct Victim {
      ProcessInfo info;
      std::unique_ptr<linux_impl::Pidfd> pidfd;
    };
    std::vector<Victim> victims;
    auto root_info = inspect(target.pid);
    if (!root_info) return root_info.error();
    victims.push_back({*root_info, std::move(*root)});
    if (options.tree) {
      auto members = tree(target.pid);
      if (!members) return members.error();
      for (std::size_t i = 1; i < members->size(); ++i) {
        const auto& m = (*members)[i];
        if (auto fd = open_verified({m.pid, m.start_ticks}, /*allow_exited=*/true))
          victims.push_back({m, std::move(*fd)});
      }
    }
    // A zombie has exited already: signalling it "succeeds" and its pidfd reads as exited, which
    // would be reported as "exited after SIGTERM". Say what it is, and which parent holds it.
    std::vector<KillReport> reports;
    std::vector<Victim> live;
    for (auto& v : victims) {
      if (auto exited = linux_impl::has_exited(v.info.pid)) {
        reports.push_back({v.info.pid, v.info.name, KillOutcome::kAlreadyGone, *exited});
      } else {
        live.push_back(std::move(v));
      }
    }
    // Freeze the whole tree first so nobody forks replacements while we work through it: stop
    // every member, then look again for children forked before the stop landed, until none.
    std::set<pid_t> late;  // found only at the end of the grace period
    const auto freeze_descendants = [&](bool during_grace) {
      for (int round = 0; round < 16; ++round) {
        for (auto& v : live) (void)send(v.pidfd->get(), SIGSTOP, v.info.pid);
        auto all = list();
        if (!all) return;
        std::set<pid_t> known;
        for (const auto& v : live) known.insert(v.info.pid);
        bool found = false;
        for (const auto& p : *all) {
          if (known.contains(p.pid) || !known.contains(p.ppid)) continue;
          auto fd = open_verified({p.pid, p.start_ticks}, /*allow_exited=*/true);
          if (!fd) continue;
          live.push_back({p, std::move(*fd)});
          if (during_grace) late.insert(p.pid);
          known.insert(p.pid);
          found = true;
        }
        if (!found) return;
      }
    };
    if (options.tree) {
      freeze_descendants(false);
      // In a cgroup of their own, whatever the members fork from now on stays with them, even a
      // child that double-forks and is reparented out of the tree.
      if (group.create())
        for (const auto& v : live) group.add(v.info.pid);
    }
    // SIGTERM stays pending on a stopped process (one a playbook suspended, or the frozen tree)
    // until it continues: SIGCONT after it, so the grace period means what it says.
    for (auto& v : live) {
      (void)send(v.pidfd->get(), SIGTERM, v.info.pid);
      (void)send(v.pidfd->get(), SIGCONT, v.info.pid);
    }
    const auto deadline = std::chrono::steady_clock::now() + options.grace;
    if (options.tree) {
      // Members that outlive SIGTERM may fork during the grace period (a replacement, a
      // respawn): frozen again at its end with whatever they forked, which then shares their
      // SIGKILL. (A child whose parent exited is reparented and no longer found as a descendant.)
      const auto all_exited = [&] {
        return std::all_of(live.begin(), live.end(), [](const Victim& v) {
          return wait_exit(v.pidfd->get(), std::chrono::milliseconds(0));
        });
      };
      while (!all_exited() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!all_exited()) freeze_descendants(true);
      // What left the tree (reparented) but not the cgroup: killed with it, and named.
      std::set<pid_t> known;
      for (const auto& v : live) known.insert(v.info.pid);
      for (pid_t pid : group.members()) {
        if (known.contains(pid)) continue;
        auto info = inspect(pid);
        reports.push_back({pid, info ? info->name : "?", KillOutcome::kKilled,
                           "left the tree during the grace period (reparented); killed with the "
                           "tree's cgroup"});
      }
    }
    for (auto& v : live) {
      KillReport report{v.info.pid, v.info.name, KillOutcome::kFailed, ""};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (wait_exit(v.pidfd->get(), std::max(left, std::chrono::milliseconds(0)))) {
        report.outcome = KillOutcome::kTerminated;
        report.detail = "exited after SIGTERM";
      } else if (auto s = send(v.pidfd->get(), SIGKILL, v.info.pid); !s) {
        report.outcome = KillOutcome::kAlreadyGone;
        report.detail = s.error().message;
      } else if (wait_exit(v.pidfd->get(), std::chrono::seconds(5))) {
        report.outcome = KillOutcome::kKilled;
        report.detail = late.contains(v.info.pid)
                            ? "forked by a member during the grace period; killed with SIGKILL"
                            : fmt::format("still running after {} ms grace; killed with SIGKILL",
                                          options.grace.count());
      } else {
        report.detail = "did not exit even after SIGKILL (uninterruptible sleep?)";
      }
      reports.push_back(std::move(report));
    }
    // Then whatever is left in the tree's cgroup: the reparented ones named above.
    group.kill_all();
    return reports;
  }

  Status suspend(const ProcessRef& target) override { return signal_verified(target, SIGSTOP); }
  Status resume(const ProcessRef& target) override { return signal_verified(target, SIGCONT); }

 private:
  Status signal_verified(const ProcessRef& target, int sig) {
    auto fd = open_verified(target);
    if (!fd) return fd.error();
    if (auto sent = send((*fd)->get(), sig, target.pid); !sent) return sent;
    // It may have exited between the check and the signal: then the signal did nothing.
    if (auto exited = linux_impl::has_exited(target.pid)) return Error{*exited};
    return ok_status();
  }
};

}  // namespace

std::string to_string(KillOutcome outcome) {
  switch (outcome) {
    case KillOutcome::kTerminated:
      return "terminated";
    case KillOutcome::kKilled:
      return "killed";
    case KillOutcome::kAlreadyGone:
      return "already_gone";
    case KillOutcome::kFailed:
      return "failed";
  }
  return "unknown";
}

std::unique_ptr<ProcessControl> make_process_control() {
  return std::make_unique<LinuxProcessControl>();
}

}  // namespace riposte::platform
