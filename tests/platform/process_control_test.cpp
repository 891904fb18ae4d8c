// Real processes, real signals: every test forks the processes it acts on.

#include "platform/process_control.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/local_policy.h"
#include "platform/memory_capture.h"
#include "platform/yara_scanner.h"
#include "tests/test_dir.h"

namespace riposte::platform {
namespace {

using namespace std::chrono_literals;

// A child running `argv`; reaped (and killed if needed) at the end of the test.
class Child {
 public:
  explicit Child(std::vector<std::string> argv, bool ignore_sigterm = false) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      if (ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // Waits for the child; returns the signal that ended it, or 0.
  int reap() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

char state_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto close = text.rfind(')');
  return close == std::string::npos ? '?' : text[close + 2];
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0 && state_of(pid) != 'Z'; }

ProcessRef ref_of(ProcessControl& control, pid_t pid) {
  // Give exec a moment so the listing shows the new image, as an operator's listing would.
  std::this_thread::sleep_for(50ms);
  auto info = control.inspect(pid);
  EXPECT_TRUE(info) << info.error().message;
  return {pid, info->start_ticks};
}

TEST(ProcessControl, ListingShowsThisProcessWithItsExecutable) {
  auto control = make_process_control();
  auto all = control->list();
  ASSERT_TRUE(all);
  auto self =
      std::find_if(all->begin(), all->end(), [](const auto& p) { return p.pid == ::getpid(); });
  ASSERT_NE(self, all->end());
  EXPECT_EQ(self->exe, std::filesystem::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_GT(self->rss_bytes, 0u);
  EXPECT_GT(self->start_ticks, 0u);
  EXPECT_FALSE(self->kernel_thread);
  EXPECT_FALSE(self->user.empty());
}

TEST(ProcessControl, KillsAChildWithSigterm) {
  auto control = make_process_control();
  Child child({"sleep", "30"});
  auto reports = control->kill(ref_of(*control, child.pid()), {});
  ASSERT_TRUE(reports) << reports.error().message;
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].outcome, KillOutcome::kTerminated);
  EXPECT_EQ((*reports)[0].name, "sleep");
  EXPECT_EQ(child.reap(), SIGTERM);
}

TEST(ProcessControl, WrongStartTimeIsRefusedAndTheProcessLives) {
  auto control = make_process_control();
  Child child({"sleep", "30"});
  auto ref = ref_of(*control, child.pid());
  ref.start_ticks += 1;  // as if the pid had been recycled since the alert
  auto reports = control->kill(ref, {});
  ASSERT_FALSE(reports);
  EXPECT_NE(reports.error().message.find("another process"), std::string::npos)
      << reports.error().message;
  EXPECT_TRUE(alive(child.pid()));
  EXPECT_FALSE(control->suspend(ref));
  EXPECT_NE(state_of(child.pid()), 'T');
}

TEST(ProcessControl, ChildIgnoringSigtermGetsSigkillAfterTheGracePeriod) {
  auto control = make_process_control();
  Child child({"sleep", "30"}, /*ignore_sigterm=*/true);
  const auto start = std::chrono::steady_clock::now();
  auto reports = control->kill(ref_of(*control, child.pid()), {.grace = 300ms});
  ASSERT_TRUE(reports) << reports.error().message;
  EXPECT_EQ((*reports)[0].outcome, KillOutcome::kKilled);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(child.reap(), SIGKILL);
}

TEST(ProcessControl, TreeKillTakesEveryDescendant) {
  auto control = make_process_control();
  Child shell({"sh", "-c", "sleep 30 & sleep 30 & wait"});
  std::vector<ProcessInfo> members;
  for (int i = 0; i < 100 && members.size() < 3; ++i) {
    std::this_thread::sleep_for(20ms);
    members = control->tree(shell.pid()).value();
  }
  ASSERT_EQ(members.size(), 3u) << "expected sh and two sleeps";
  auto reports = control->kill(ref_of(*control, shell.pid()), {.grace = 2s, .tree = true});
  ASSERT_TRUE(reports) << reports.error().message;
  EXPECT_EQ(reports->size(), 3u);
  for (const auto& r : *reports) {
    EXPECT_TRUE(r.outcome == KillOutcome::kTerminated || r.outcome == KillOutcome::kKilled)
        << r.pid << " " << r.detail;
  }
  shell.reap();
  for (const auto& m : members) EXPECT_FALSE(alive(m.pid)) << m.pid;
}

// A member that ignores SIGTERM and forks a replacement when it gets it (a respawning implant):
// the replacement is found at the end of the grace period and killed with its parent, and the
// report says so. Before, the replacement outlived a kill reported as complete.
TEST(ProcessControl, TreeKillTakesWhatAMemberForksDuringTheGracePeriod) {
  auto control = make_process_control();
  Child shell({"bash", "-c",
               "trap 'sleep 300 & echo $! > replacement.pid' TERM; "
               "sleep 30 & while :; do wait; done"});
  std::vector<ProcessInfo> members;
  for (int i = 0; i < 100 && members.size() < 2; ++i) {
    std::this_thread::sleep_for(20ms);
    members = control->tree(shell.pid()).value();
  }
  ASSERT_EQ(members.size(), 2u) << "expected bash and its sleep";
  auto reports = control->kill(ref_of(*control, shell.pid()), {.grace = 1s, .tree = true});
  ASSERT_TRUE(reports) << reports.error().message;
  shell.reap();
  std::ifstream pid_file("replacement.pid");
  pid_t replacement = 0;
  ASSERT_TRUE(pid_file >> replacement) << "the trap did not run";
  std::filesystem::remove("replacement.pid");
  EXPECT_FALSE(alive(replacement)) << "the replacement survived the tree kill";
  bool reported = false;
  for (const auto& r : *reports)
    if (r.pid == replacement)
      reported = r.outcome == KillOutcome::kKilled &&
                 r.detail.find("during the grace period") != std::string::npos;
  EXPECT_TRUE(reported) << "the replacement is in the report";
  if (alive(replacement)) ::kill(replacement, SIGKILL);
}

// A member that double-forks on SIGTERM: the grandchild is reparented out of the tree before the
// grace period ends. With cgroup v2 it is still the tree's (its cgroup) and is killed and named.
TEST(ProcessControl, TreeKillTakesAChildThatDoubleForkedOutOfTheTree) {
  const bool v2 = std::filesystem::exists("/sys/fs/cgroup/cgroup.max.depth") ||
                  std::filesystem::exists("/sys/fs/cgroup/unified/cgroup.max.depth");
  if (!v2) GTEST_SKIP() << "no cgroup v2 on this host: a reparented child cannot be followed";
  auto control = make_process_control();
  std::filesystem::remove("escapee.pid");
  Child shell({"bash", "-c",
               "trap '( setsid sleep 2222 & echo $! > escapee.pid )' TERM; "
               "sleep 30 & while :; do sleep 0.1; done"});
  std::vector<ProcessInfo> members;
  for (int i = 0; i < 100 && members.size() < 2; ++i) {
    std::this_thread::sleep_for(20ms);
    members = control->tree(shell.pid()).value();
  }
  ASSERT_GE(members.size(), 2u);
  auto reports = control->kill(ref_of(*control, shell.pid()), {.grace = 1s, .tree = true});
  ASSERT_TRUE(reports) << reports.error().message;
  shell.reap();
  std::ifstream pid_file("escapee.pid");
  pid_t escapee = 0;
  ASSERT_TRUE(pid_file >> escapee) << "the trap did not run";
  std::filesystem::remove("escapee.pid");
  for (int i = 0; i < 100 && alive(escapee); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive(escapee)) << "the double-forked child survived a kill reported complete";
  bool named = false;
  for (const auto& r : *reports) named |= r.pid == escapee && r.detail.find("reparented") != std::string::npos;
  EXPECT_TRUE(named);
  if (alive(escapee)) ::kill(escapee, SIGKILL);
}

TEST(ProcessControl, SuspendAndResume) {
  auto control = make_process_control();
  Child child({"sleep", "30"});
  const auto ref = ref_of(*control, child.pid());
  ASSERT_TRUE(control->suspend(ref));
  ASSERT_TRUE([&] {
    for (int i = 0; i < 100; ++i, std::this_thread::sleep_for(10ms))
      if (state_of(child.pid()) == 'T') return true;
    return false;
  }());
  ASSERT_TRUE(control->resume(ref));
  ASSERT_TRUE([&] {
    for (int i = 0; i < 100; ++i, std::this_thread::sleep_for(10ms))
      if (state_of(child.pid()) == 'S') return true;
    return false;
  }());
}

// Waits until `pid` shows `state` in /proc/PID/stat (up to 2 s).
bool reaches_state(pid_t pid, char state) {
  for (int i = 0; i < 200; ++i, std::this_thread::sleep_for(10ms))
    if (state_of(pid) == state) return true;
  return false;
}

TEST(ProcessControl, ListingShowsEachProcesssState) {
  auto control = make_process_control();
  EXPECT_EQ(control->inspect(::getpid()).value().state, "running");
  Child child({"sleep", "30"});
  ASSERT_TRUE(reaches_state(child.pid(), 'S'));
  EXPECT_EQ(control->inspect(child.pid()).value().state, "sleeping");
  ::kill(child.pid(), SIGSTOP);
  ASSERT_TRUE(reaches_state(child.pid(), 'T'));
  EXPECT_EQ(control->inspect(child.pid()).value().state, "stopped");
}

// A zombie has exited; its parent (this test) has not reaped it. Nothing may report having acted
// on it: kill says it was already gone and names the parent; suspend, resume, memory capture and a
// YARA scan refuse with that reason.
TEST(ProcessControl, ZombieIsReportedExitedAndEveryProcessActionRefusesIt) {
  auto control = make_process_control();
  Child child({"true"});
  ASSERT_TRUE(reaches_state(child.pid(), 'Z'));
  const auto info = control->inspect(child.pid()).value();
  EXPECT_EQ(info.state, "zombie");
  const ProcessRef ref{child.pid(), info.start_ticks};
  const auto parent = fmt::format("parent, pid {}", ::getpid());

  auto reports = control->kill(ref, {.grace = 2s});
  ASSERT_TRUE(reports) << reports.error().message;
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].outcome, KillOutcome::kAlreadyGone) << (*reports)[0].detail;
  EXPECT_NE((*reports)[0].detail.find("already exited"), std::string::npos) << (*reports)[0].detail;
  EXPECT_NE((*reports)[0].detail.find(parent), std::string::npos) << (*reports)[0].detail;

  for (auto* action : {"suspend", "resume"}) {
    auto done = std::string(action) == "suspend" ? control->suspend(ref) : control->resume(ref);
    ASSERT_FALSE(done) << action << " reported success on a zombie";
    EXPECT_NE(done.error().message.find("already exited"), std::string::npos)
        << done.error().message;
  }

  riposte::testing::TempDir dir;
  auto sink = FileSink::create(dir.path() / "zombie.core").value();
  auto capture = make_memory_capture()->capture(ref, *sink, {});
  ASSERT_FALSE(capture) << "memory capture reported success on a zombie";
  EXPECT_NE(capture.error().message.find("already exited"), std::string::npos)
      << capture.error().message;

  auto rules = YaraRules::compile("rule any_byte { condition: true }").value();
  auto scan = make_yara_scanner()->scan_process(*rules, ref, {});
  ASSERT_FALSE(scan) << "YARA reported scanning a zombie";
  EXPECT_NE(scan.error().message.find("already exited"), std::string::npos) << scan.error().message;
  EXPECT_EQ(child.reap(), 0);
}

// A main thread that called pthread_exit shows the process as Z while its other threads run on:
// that process is alive, and kill must act on it.
TEST(ProcessControl, AZombieLeaderWithLiveThreadsIsKilledNotReportedGone) {
  auto control = make_process_control();
  Child child({"python3", "-c",
               "import ctypes, threading, time\n"
               "threading.Thread(target=time.sleep, args=(30,)).start()\n"
               "ctypes.CDLL(None).pthread_exit(None)\n"});
  ASSERT_TRUE(reaches_state(child.pid(), 'Z'));
  const auto info = control->inspect(child.pid()).value();
  auto reports = control->kill({child.pid(), info.start_ticks}, {.grace = 2s});
  ASSERT_TRUE(reports) << reports.error().message;
  EXPECT_EQ((*reports)[0].outcome, KillOutcome::kTerminated) << (*reports)[0].detail;
  EXPECT_EQ(child.reap(), SIGTERM);
}

// A process a playbook suspended first still gets its SIGTERM at once: without SIGCONT after it,
// the signal stays pending and the kill waits the whole grace period, then uses SIGKILL.
TEST(ProcessControl, KillingAStoppedProcessDeliversSigtermWithinTheGrace) {
  auto control = make_process_control();
  Child child({"sleep", "30"});
  const auto ref = ref_of(*control, child.pid());
  ASSERT_TRUE(control->suspend(ref));
  ASSERT_TRUE(reaches_state(child.pid(), 'T'));
  const auto start = std::chrono::steady_clock::now();
  auto reports = control->kill(ref, {.grace = 5s});
  ASSERT_TRUE(reports) << reports.error().message;
  EXPECT_EQ((*reports)[0].outcome, KillOutcome::kTerminated) << (*reports)[0].detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(child.reap(), SIGTERM);
}

// A pid with no start time is not "another process": the error says what is missing and where
// to find it, and nothing is signalled.
TEST(ProcessControl, MissingStartTimeSaysWhatIsMissing) {
  auto control = make_process_control();
  Child child({"sleep", "30"});
  ASSERT_TRUE(reaches_state(child.pid(), 'S'));
  auto reports = control->kill({child.pid(), 0}, {});
  ASSERT_FALSE(reports);
  EXPECT_NE(reports.error().message.find("no start time given"), std::string::npos)
      << reports.error().message;
  EXPECT_NE(reports.error().message.find("process.list"), std::string::npos);
  auto suspended = control->suspend({child.pid(), 0});
  ASSERT_FALSE(suspended);
  EXPECT_NE(suspended.error().message.find("no start time given"), std::string::npos);
  EXPECT_TRUE(alive(child.pid()));
  EXPECT_EQ(state_of(child.pid()), 'S');
}

TEST(ProcessControl, UnknownPidIsAClearError) {
  auto control = make_process_control();
  auto reports = control->kill({999'999'999, 1}, {});
  ASSERT_FALSE(reports);
  EXPECT_NE(reports.error().message.find("no process"), std::string::npos)
      << reports.error().message;
}

// A process with a second thread, as Java, Go and .NET services are: alerts from them often
// name a thread id. That id resolves to the process it belongs to, and acting on it acts on the
// process, never fails with "no such process".
TEST(ProcessControl, AThreadIdResolvesToItsProcess) {
  Child child({"python3", "-c",
               "import threading, time\n"
               "threading.Thread(target=time.sleep, args=(60,)).start()\n"
               "time.sleep(60)\n"});
  pid_t thread = 0;
  for (int i = 0; i < 200 && thread == 0; ++i) {
    std::error_code ec;
    for (const auto& t :
         std::filesystem::directory_iterator(fmt::format("/proc/{}/task", child.pid()), ec)) {
      const auto id = static_cast<pid_t>(std::stol(t.path().filename().string()));
      if (id != child.pid()) thread = id;
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_NE(thread, 0) << "the child started no second thread";
  auto control = make_process_control();
  const auto process = control->inspect(child.pid()).value();
  const auto by_thread = control->inspect(thread);
  ASSERT_TRUE(by_thread) << by_thread.error().message;
  EXPECT_EQ(by_thread->pid, child.pid());
  EXPECT_EQ(by_thread->thread_id, thread);
  EXPECT_EQ(control->tree(thread).value().front().pid, child.pid());

  // The thread's own start time names it; so does its process's. The result is the process.
  std::ifstream stat(fmt::format("/proc/{}/task/{}/stat", child.pid(), thread));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  const std::uint64_t thread_ticks = std::stoull(fields.at(19));
  for (const auto ticks : {thread_ticks, process.start_ticks}) {
    const auto resolved = control->resolve({thread, ticks});
    ASSERT_TRUE(resolved) << resolved.error().message;
    EXPECT_EQ(resolved->process.pid, child.pid());
    EXPECT_EQ(resolved->process.start_ticks, process.start_ticks);
    EXPECT_EQ(resolved->thread_id, thread);
    EXPECT_NE(resolved->description.find(fmt::format("thread {}", thread)), std::string::npos);
    EXPECT_NE(resolved->description.find(fmt::format("process {}", child.pid())),
              std::string::npos);
  }
  const auto stale = control->resolve({thread, process.start_ticks + 12345});
  ASSERT_FALSE(stale);
  EXPECT_NE(stale.error().message.find("nothing was done"), std::string::npos);
  // The process's own pid resolves to itself, with nothing to say.
  EXPECT_EQ(control->resolve({child.pid(), process.start_ticks}).value().description, "");

  const auto resolved = control->resolve({thread, thread_ticks}).value();
  auto reports = control->kill(resolved.process, {.grace = 2000ms});
  ASSERT_TRUE(reports) << reports.error().message;
  EXPECT_EQ(child.reap(), SIGTERM);
}

// Kernel threads have no process to kill, suspend or capture: refused, saying so.
TEST(ProcessControl, AKernelThreadIsRefusedWithItsReason) {
  auto control = make_process_control();
  pid_t kernel_thread = 0;
  for (const auto& p : control->list().value())
    if (p.kernel_thread && p.pid != 2) kernel_thread = p.pid;
  if (kernel_thread == 0) GTEST_SKIP() << "no kernel thread visible (a pid namespace)";
  const auto info = control->inspect(kernel_thread).value();
  const auto resolved = control->resolve({kernel_thread, info.start_ticks});
  ASSERT_FALSE(resolved);
  EXPECT_NE(resolved.error().message.find("is a kernel thread"), std::string::npos)
      << resolved.error().message;
}

TEST(LocalPolicy, RefusesInitKernelThreadsItselfAndProtectedProcesses) {
  auto control = make_process_control();
  agent::LocalPolicy policy({{"sshd"}, {"/usr/sbin/cron"}}, ::getpid());
  EXPECT_FALSE(policy.may_signal(control->inspect(1).value()));
  ProcessInfo kworker{.pid = 77, .ppid = 2, .name = "kworker/0:1", .kernel_thread = true};
  EXPECT_FALSE(policy.may_signal(kworker));
  EXPECT_FALSE(policy.may_signal(control->inspect(::getpid()).value()));
  ProcessInfo sshd{.pid = 4242, .ppid = 1, .name = "sshd"};
  EXPECT_FALSE(policy.may_signal(sshd));
  ProcessInfo cron{.pid = 4243, .ppid = 1, .name = "cron", .exe = "/usr/sbin/cron"};
  EXPECT_FALSE(policy.may_signal(cron));
  Child child({"sleep", "30"});
  EXPECT_TRUE(policy.may_signal(control->inspect(child.pid()).value()));
}

}  // namespace
}  // namespace riposte::platform
