#include "tests/integration/harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/secure_file.h"
#include "common/utc_time.h"
#include "tests/build_paths.h"

extern char** environ;

namespace riposte::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string bin(const std::string& name) {
  return std::string(::riposte::testing::bin_dir()) + "/" + name;
}

std::string slow_playbook(const std::string& pause) {
  return R"(
name: slow
version: "1"
trigger:
  observable_types: [process]
steps:
  - {id: facts, kind: action, action: host.facts, mode: auto, target: host}
  - {id: pause, kind: wait, duration: )" +
         pause + R"(}
  - {id: listing, kind: query, action: process.list, target: host}
  - {id: done, kind: case, status: resolved}
)";
}

std::string alert_time_now() {
  return format_utc_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count());
}

std::string this_hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string read_text(const fs::path& path) { return read_file(path).value_or(""); }

std::string start_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) rest >> field;
  return field;
}

pid_t spawn_stubborn_child() {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  }
  ::usleep(50'000);
  return pid;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return condition();
}

namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::string& in, const std::string& out,
            const std::string& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  return pid;
}

std::optional<int> wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                          const std::string& stdin_text) {
  TempDir io;
  const auto in = (io.path() / "in").string();
  std::ofstream(in) << stdin_text;
  const auto out = (io.path() / "out").string();
  const auto err = (io.path() / "err").string();
  const pid_t pid = spawn(argv, in, out, err);
  auto status = wait_pid(pid, timeout);
  if (!status) {
    ::kill(pid, SIGKILL);
    status = wait_pid(pid, 5s).value_or(-1);
  }
  return CommandResult{*status, read_text(out), read_text(err)};
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, fs::path log)
    : log_(std::move(log)) {
  pid_ = spawn(argv, "/dev/null", log_.string(), log_.string());
}

ChildProcess::~ChildProcess() {
  // SIGTERM first so instrumented children can run their exit-time checks (LeakSanitizer).
  if (running()) {
    ::kill(pid_, SIGTERM);
    if (!wait_for_exit(5s)) {
      ::kill(pid_, SIGKILL);
      wait_for_exit(5s);
    }
  }
}

bool ChildProcess::running() {
  if (status_) return false;
  return !wait_for_exit(0ms).has_value();
}

void ChildProcess::signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  if (!status_) status_ = wait_pid(pid_, timeout);
  return status_;
}

nlohmann::json last_json_line(const std::string& out) {
  const auto trimmed = out.substr(0, out.find_last_not_of('\n') + 1);
  const auto start = trimmed.rfind('\n');
  return nlohmann::json::parse(start == std::string::npos ? trimmed : trimmed.substr(start + 1));
}

ControllerUnderTest::ControllerUnderTest() : ControllerUnderTest(StoreAt{}) {}

ControllerUnderTest::ControllerUnderTest(const StoreAt& store)
    : tmp_(std::in_place), dir_(tmp_->path()) {
  std::vector<std::string> init_args{bin("riposte-controller"), "init", "--data-dir",
                                     data_dir().string(), "--json"};
  if (!store.database_url.empty()) {
    init_args.insert(init_args.end(), {"--database-url", store.database_url});
    // Every later start finds it in the configuration, as a deployment would.
    std::ofstream(dir() / "controller.yaml")
        << "database: " << nlohmann::json(store.database_url).dump() << "\n";
  }
  const auto result = run_command(init_args);
  if (result.exit_code != 0) throw std::runtime_error("init failed: " + result.err);
  const auto init = nlohmann::json::parse(result.out);
  admin_token_ = init.at("admin_token");
  ca_fingerprint_ = init.at("ca_fingerprint");
  // A 1 s heartbeat keeps timing-dependent tests short.
  std::ofstream(dir() / "controller.yaml", std::ios::app)
      << "heartbeat_interval: 1s\nlog_level: debug\n";
}

ControllerUnderTest::ControllerUnderTest(const ControllerUnderTest& first, const StoreAt& store)
    : tmp_(std::in_place), dir_(tmp_->path()) {
  fs::create_directories(data_dir());
  fs::permissions(data_dir(), fs::perms::owner_all, fs::perm_options::replace);
  for (const char* file : {"ca.pem", "ca.key", "server.pem", "server.key", "action.key"})
    fs::copy_file(first.data_dir() / file, data_dir() / file);
  admin_token_ = first.admin_token();
  ca_fingerprint_ = first.ca_fingerprint();
  std::ofstream(dir() / "controller.yaml")
      << "database: " << nlohmann::json(store.database_url).dump()
      << "\nheartbeat_interval: 1s\nlog_level: debug\n";
}

ControllerUnderTest::ControllerUnderTest(const fs::path& keep_dir) : dir_(keep_dir) {
  // init prints the admin token once: kept beside the data (0600) for the next run.
  const auto saved = keep_dir / "init.json";
  if (!fs::exists(saved)) {
    fs::remove_all(data_dir());
    fs::create_directories(keep_dir);
    const auto result = run_command(
        {bin("riposte-controller"), "init", "--data-dir", data_dir().string(), "--json"});
    if (result.exit_code != 0) throw std::runtime_error("init failed: " + result.err);
    const int fd = ::open(saved.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const bool written =
        fd >= 0 && ::write(fd, result.out.data(), result.out.size()) ==
                       static_cast<ssize_t>(result.out.size());
    if (fd >= 0) ::close(fd);
    if (!written) throw std::runtime_error("cannot write " + saved.string());
  }
  const auto init = nlohmann::json::parse(read_text(saved));
  admin_token_ = init.at("admin_token");
  ca_fingerprint_ = init.at("ca_fingerprint");
  std::ofstream(dir() / "controller.yaml") << "log_level: info\n";
}

ControllerUnderTest::~ControllerUnderTest() {
  if (process_ && process_->running()) stop_gracefully();
  for (const auto& entry : fs::directory_iterator(dir())) {
    if (entry.path().extension() != ".log") continue;
    const auto text = read_text(entry.path());
    if (text.find("Sanitizer") != std::string::npos ||
        text.find("runtime error:") != std::string::npos) {
      ADD_FAILURE() << "sanitizer report in " << entry.path().filename().string() << ":\n" << text;
    }
  }
}

void ControllerUnderTest::start(bool same_ports, const std::string& agent_listen_host) {
  const std::string agent_listen = same_ports ? gateway_ : agent_listen_host + ":0";
  const std::string api_listen = same_ports ? api_ : "127.0.0.1:0";
  const auto runtime = data_dir() / "controller.json";
  fs::remove(runtime);
  if (process_) retired_.push_back(std::move(process_));
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{bin("riposte-controller"), "run", "--data-dir", data_dir().string(),
                               "--config", (dir() / "controller.yaml").string(), "--agent-listen",
                               agent_listen, "--api-listen", api_listen},
      dir() / ("controller-" + std::to_string(++starts_) + ".log"));
  const bool up = wait_until([&] { return fs::exists(runtime) || !process_->running(); }, 20s);
  if (!up || !fs::exists(runtime)) {
    throw std::runtime_error("controller did not start: " + process_->log_text());
  }
  const auto info = nlohmann::json::parse(read_text(runtime));
  gateway_ = info.at("agent_gateway");
  api_ = info.at("api").get<std::string>().substr(8);
}

void ControllerUnderTest::kill_hard() {
  process_->signal(SIGKILL);
  process_->wait_for_exit(5s);
}

void ControllerUnderTest::stop_gracefully() {
  process_->signal(SIGTERM);
  EXPECT_EQ(process_->wait_for_exit(10s), 0) << process_->log_text();
}

int ControllerUnderTest::gateway_port() const {
  return std::stoi(gateway_.substr(gateway_.rfind(':') + 1));
}

CommandResult ControllerUnderTest::cli(const std::vector<std::string>& args) {
  return cli_as(admin_token_, args);
}

CommandResult ControllerUnderTest::cli_as(const std::string& token,
                                          const std::vector<std::string>& args) {
  std::vector<std::string> argv{bin("riposte"), "--server", "https://" + api_, "--token",
                                token,          "--ca",     ca_cert()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

nlohmann::json ControllerUnderTest::cli_json(const std::vector<std::string>& args) {
  auto argv = args;
  argv.push_back("--json");
  const auto result = cli(argv);
  if (result.exit_code != 0) throw std::runtime_error("riposte failed: " + result.err);
  return nlohmann::json::parse(result.out);
}

std::string ControllerUnderTest::create_enrollment_token(int uses, const std::string& ttl) {
  return cli_json({"tokens", "create", "--uses", std::to_string(uses), "--ttl", ttl}).at("token");
}

std::string ControllerUnderTest::enroll_agent(const fs::path& state_dir,
                                              const std::string& gateway) {
  std::vector<std::string> argv{
      bin("riposte-agent"),      "enroll",   "--controller",  api_,          "--token",
      create_enrollment_token(), "--ca-pin", ca_fingerprint_, "--state-dir", state_dir.string()};
  if (!gateway.empty()) argv.insert(argv.end(), {"--gateway", gateway});
  const auto result = run_command(argv);
  if (result.exit_code != 0) throw std::runtime_error("enroll failed: " + result.err);
  return nlohmann::json::parse(read_text(state_dir / "agent.json")).at("agent_id");
}

std::unique_ptr<ChildProcess> ControllerUnderTest::start_agent(
    const fs::path& state_dir, const std::string& log_name,
    const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{
      bin("riposte-agent"),  "run",   "--state-dir",     state_dir.string(),
      "--reconnect-initial", "200ms", "--reconnect-max", "1s",
      "--log-level",         "debug"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return std::make_unique<ChildProcess>(argv, dir() / log_name);
}

void ControllerUnderTest::set_config(const std::string& yaml) {
  std::ofstream(dir() / "controller.yaml", std::ios::trunc) << yaml;
}

void ControllerUnderTest::add_config(const std::string& yaml) {
  std::ofstream(dir() / "controller.yaml", std::ios::app) << yaml;
}

nlohmann::json ControllerUnderTest::agent(const std::string& id) {
  return cli_json({"agents", "show", id});
}

ControllerUnderTest::OnlineAgent ControllerUnderTest::start_online_agent(
    const fs::path& state_dir, const std::string& log_name,
    const std::vector<std::string>& extra_args) {
  OnlineAgent online;
  online.id = enroll_agent(state_dir);
  online.process = start_agent(state_dir, log_name, extra_args);
  if (!wait_until([&] { return agent(online.id)["status"] == "online"; }, 20s)) {
    throw std::runtime_error("agent did not come online: " + online.process->log_text());
  }
  return online;
}

nlohmann::json ControllerUnderTest::action(const std::string& id) {
  return cli_json({"action", "show", id});
}

}  // namespace riposte::testing
