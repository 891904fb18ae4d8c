// An agent told to stop (SIGTERM, as systemd and container runtimes send it) stops within 5 s at
// every moment of its life: while starting, waiting to reconnect, in the middle of a TLS handshake
// nobody answers, and while an action runs that would take a minute. What was cut short is
// reported when the agent comes back, not lost.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/build_paths.h"
#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr auto kStopWithin = 5s;

std::unique_ptr<ChildProcess> agent_with_slow_backoff(ControllerUnderTest& controller,
                                                      const fs::path& state,
                                                      const std::string& log) {
  return std::make_unique<ChildProcess>(
      std::vector<std::string>{(fs::path(bin_dir()) / "riposte-agent").string(), "run",
                               "--state-dir", state.string(), "--reconnect-initial", "30s",
                               "--reconnect-max", "60s", "--log-level", "debug"},
      controller.dir() / log);
}

// SIGTERM, then the time until the process is gone.
std::optional<std::chrono::milliseconds> stop_time(ChildProcess& agent) {
  const auto t0 = std::chrono::steady_clock::now();
  agent.signal(SIGTERM);
  if (!agent.wait_for_exit(kStopWithin + 5s)) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

TEST(AgentStop, WhileStarting) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  controller.enroll_agent(state);
  for (auto delay : {0ms, 20ms, 80ms}) {
    auto agent = controller.start_agent(state, "agent-start.log");
    std::this_thread::sleep_for(delay);
    const auto took = stop_time(*agent);
    ASSERT_TRUE(took.has_value()) << "still running " << delay.count() << " ms after start";
    EXPECT_LT(*took, kStopWithin) << "signalled " << delay.count() << " ms after start";
  }
}

TEST(AgentStop, WhileWaitingToReconnect) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  controller.enroll_agent(state);
  controller.kill_hard();  // nothing listens: the agent fails and waits 30 s to retry
  auto agent = agent_with_slow_backoff(controller, state, "agent-backoff.log");
  ASSERT_TRUE(wait_until(
      [&] { return agent->log_text().find("retrying in") != std::string::npos; }, 10s))
      << agent->log_text();
  const auto took = stop_time(*agent);
  ASSERT_TRUE(took.has_value());
  EXPECT_LT(*took, kStopWithin) << agent->log_text();
}

TEST(AgentStop, InTheMiddleOfAHandshakeNobodyAnswers) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  controller.enroll_agent(state);
  const int port = controller.gateway_port();
  controller.kill_hard();
  // The gateway's port now belongs to a listener that completes TCP (the kernel does, from the
  // backlog) and never says a word: the agent's ClientHello goes unanswered.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  auto agent = agent_with_slow_backoff(controller, state, "agent-handshake.log");
  std::this_thread::sleep_for(1500ms);  // connected, handshake pending (its timeout is 10 s)
  EXPECT_EQ(agent->log_text().find("retrying in"), std::string::npos)
      << "the attempt should still be in its handshake\n"
      << agent->log_text();
  const auto took = stop_time(*agent);
  ::close(listener);
  ASSERT_TRUE(took.has_value());
  EXPECT_LT(*took, kStopWithin) << agent->log_text();
}

TEST(AgentStop, WhileAnActionRunsThatWouldTakeAMinute) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  auto agent = controller.start_online_agent(state, "agent-action.log");
  const pid_t child = spawn_stubborn_child();
  const auto run = controller.cli_json(
      {"action", "run", "process.kill", "--agent", agent.id, "--param",
       "target.pid=" + std::to_string(child), "--param", "target.start_ticks=" + start_ticks(child),
       "--param", "grace_ms=60000", "--ttl", "10m"});
  const auto action_id = run["actions"][0]["id"].get<std::string>();
  ASSERT_TRUE(wait_until([&] { return controller.action(action_id)["state"] == "running"; }, 10s));
  const auto took = stop_time(*agent.process);
  ASSERT_TRUE(took.has_value()) << "the agent waited for the action";
  EXPECT_LT(*took, kStopWithin) << agent.process->log_text();
  EXPECT_NE(agent.process->log_text().find("still running"), std::string::npos)
      << agent.process->log_text();

  // Back up: the action cut short is reported failed, saying why, and is not run again.
  auto again = controller.start_agent(state, "agent-action-2.log");
  ASSERT_TRUE(wait_until([&] { return controller.action(action_id)["state"] == "failed"; }, 20s))
      << controller.action(action_id).dump(2);
  EXPECT_NE(controller.action(action_id)["reason"].get<std::string>().find("agent stopped"),
            std::string::npos);
  EXPECT_EQ(::kill(child, 0), 0) << "the kill was not re-run after the restart";
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace riposte::testing
