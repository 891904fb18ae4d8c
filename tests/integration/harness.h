#pragma once

// Helpers for integration tests that run the real binaries (riposte-controller, riposte-agent,
// riposte) and real tools (openssl) against each other over loopback.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/test_dir.h"

namespace riposte::testing {

std::string bin(const std::string& name);
// The last line of a command's output, as JSON (`riposte action run --wait --json` prints one
// line per state change).
nlohmann::json last_json_line(const std::string& out);
// This machine's hostname: what a local agent reports and alerts about it name.
std::string this_hostname();
// Now, as an alert's @timestamp (RFC 3339, UTC). Alerts about live processes must be raised after
// those processes started: a process that started after its alert is not the alert's process.
std::string alert_time_now();
// A playbook "slow" for runs to be caught in the middle of: host.facts on the alert's host, a
// wait of `pause` ("4s"), process.list, then the case resolved. Triggered by process alerts.
std::string slow_playbook(const std::string& pause);
// The file's contents, or "" when it does not exist (yet).
std::string read_text(const std::filesystem::path& path);

// Polls `condition` every 50 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Field 22 of /proc/PID/stat: what the agent checks so a recycled pid is never killed.
std::string start_ticks(pid_t pid);
// A child that ignores SIGTERM (so process.kill needs its grace period, then SIGKILL); it dies
// with the test.
pid_t spawn_stubborn_child();

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion (killed after `timeout`), capturing stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::seconds timeout = std::chrono::seconds(30),
                          const std::string& stdin_text = "");

// A background process whose stdout and stderr go to `log`; stopped (SIGTERM, then SIGKILL) on
// destruction.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, std::filesystem::path log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit status, or nullopt on timeout.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
  std::string log_text() const { return read_text(log_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_;
};

// A controller's store in a database of its own (tests/postgres_test_db.h) rather than SQLite in
// the data directory: `riposte-controller init/run --database-url URL`.
struct StoreAt {
  std::string database_url;
};

// A controller in a temporary data directory, on loopback ports chosen by the OS.
class ControllerUnderTest {
 public:
  ControllerUnderTest();
  explicit ControllerUnderTest(const StoreAt& store);
  // A second controller beside `first`, on the same database: a data directory of its own with
  // a copy of `first`'s key material (CA, server certificate, action key), as
  // docs/configuration.md tells an operator to provision it; the same admin token works.
  ControllerUnderTest(const ControllerUnderTest& first, const StoreAt& store);
  // A controller whose data lives in `keep_dir` and outlives the test: created (init) the first
  // time, reused after (benchmarks cache enrolled identities against it).
  explicit ControllerUnderTest(const std::filesystem::path& keep_dir);
  // Stops the controller and fails the test if any process log in the directory (controller or
  // agent) holds a sanitizer report: under the asan preset every child is instrumented too.
  ~ControllerUnderTest();

  // Starts `riposte-controller run`; reuses the previous ports when `same_ports`. The agent
  // gateway listens on `agent_listen_host` (an address of this host agents in a network
  // namespace reach it by), port chosen by the kernel unless `same_ports`.
  void start(bool same_ports = false, const std::string& agent_listen_host = "127.0.0.1");
  void kill_hard();
  void stop_gracefully();
  ChildProcess& process() { return *process_; }

  // `riposte --server ... --token ... --ca ... <args>`, as the first admin or with `token`.
  CommandResult cli(const std::vector<std::string>& args);
  CommandResult cli_as(const std::string& token, const std::vector<std::string>& args);
  nlohmann::json cli_json(const std::vector<std::string>& args);
  std::string create_enrollment_token(int uses = 1, const std::string& ttl = "1h");
  // Enrolls an agent state directory; returns the agent id.
  // `gateway` (HOST:PORT) is what the agent is told to connect to instead of the controller's
  // own address (enroll --gateway).
  std::string enroll_agent(const std::filesystem::path& state_dir, const std::string& gateway = "");
  std::unique_ptr<ChildProcess> start_agent(const std::filesystem::path& state_dir,
                                            const std::string& log_name,
                                            const std::vector<std::string>& extra_args = {});
  // Adds lines to controller.yaml (takes effect at the next start()).
  void add_config(const std::string& yaml);
  // Replaces controller.yaml (takes effect at the next start()).
  void set_config(const std::string& yaml);
  nlohmann::json agent(const std::string& id);
  // Enrolls `state_dir`, starts the agent and waits until the controller shows it online.
  struct OnlineAgent {
    std::string id;
    std::unique_ptr<ChildProcess> process;
  };
  OnlineAgent start_online_agent(const std::filesystem::path& state_dir,
                                 const std::string& log_name,
                                 const std::vector<std::string>& extra_args = {});
  // `riposte action show ID --json`.
  nlohmann::json action(const std::string& id);

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path data_dir() const { return dir_ / "controller"; }
  std::string ca_cert() const { return (data_dir() / "ca.pem").string(); }
  const std::string& ca_fingerprint() const { return ca_fingerprint_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& gateway() const { return gateway_; }  // host:port
  const std::string& api() const { return api_; }          // host:port
  int gateway_port() const;

 private:
  std::optional<TempDir> tmp_;
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<ChildProcess>> retired_;
  std::string admin_token_;
  std::string ca_fingerprint_;
  std::string gateway_;
  std::string api_;
  std::unique_ptr<ChildProcess> process_;
  int starts_ = 0;
};

}  // namespace riposte::testing
