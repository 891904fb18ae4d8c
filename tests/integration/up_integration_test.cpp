// `riposte-controller up`, the README's main job: controller plus an enrolled local agent in one
// command, Ctrl-C stops both, and a second run reuses the same CA and agent identity.

#include <gtest/gtest.h>
#include <signal.h>

#include <regex>

#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;

std::string field(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(label + R"(\s*:\s*(\S+))"))) return "";
  return m[1];
}

nlohmann::json agents(const std::filesystem::path& data_dir) {
  const auto env = read_text(data_dir / "cli.env");
  std::smatch server, token;
  std::regex_search(env, server, std::regex("RIPOSTE_SERVER=(\\S+)"));
  std::regex_search(env, token, std::regex("RIPOSTE_TOKEN=(\\S+)"));
  const auto result =
      run_command({bin("riposte"), "--server", server[1], "--token", token[1], "--ca",
                   (data_dir / "ca.pem").string(), "agents", "list", "--json"});
  if (result.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(result.out);
}

bool one_agent_online(const std::filesystem::path& data_dir, std::string* id) {
  const auto list = agents(data_dir);
  if (!list.contains("agents") || list["agents"].size() != 1) return false;
  *id = list["agents"][0]["id"];
  return list["agents"][0]["status"] == "online";
}

TEST(UpIntegration, OneCommandStartsControllerAndLocalAgentAndCtrlCStopsBoth) {
  TempDir dir;
  const auto data = dir.path() / "data";
  auto up = [&](const std::string& log) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{bin("riposte-controller"), "up", "--data-dir", data.string(),
                                 "--agent-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"},
        dir.path() / log);
  };

  auto first = up("up-1.log");
  ASSERT_TRUE(wait_until(
      [&] { return first->log_text().find("Riposte is up.") != std::string::npos; }, 30s))
      << first->log_text();
  const auto banner = first->log_text();
  const auto fingerprint = field(banner, "CA fingerprint");
  EXPECT_TRUE(fingerprint.starts_with("sha256:")) << banner;
  EXPECT_TRUE(field(banner, "admin token").starts_with("rpt_")) << banner;
  EXPECT_TRUE(field(banner, "API").starts_with("https://127.0.0.1:")) << banner;
  EXPECT_TRUE(field(banner, "agent gateway").starts_with("127.0.0.1:")) << banner;
  EXPECT_EQ(std::filesystem::status(data / "cli.env").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  std::string agent_id;
  ASSERT_TRUE(wait_until([&] { return one_agent_online(data, &agent_id); }, 30s))
      << first->log_text();

  // Ctrl-C: the controller stops its agent and both exit cleanly.
  first->signal(SIGINT);
  EXPECT_EQ(first->wait_for_exit(20s), 0) << first->log_text();
  EXPECT_NE(first->log_text().find("agent: stopped"), std::string::npos) << first->log_text();

  // Second run: same data directory, same CA, same agent (now on new ports).
  auto second = up("up-2.log");
  ASSERT_TRUE(wait_until(
      [&] { return second->log_text().find("Riposte is up.") != std::string::npos; }, 30s))
      << second->log_text();
  EXPECT_EQ(field(second->log_text(), "CA fingerprint"), fingerprint);
  EXPECT_EQ(second->log_text().find("Enrolled as agent"), std::string::npos)
      << "must not enroll again";
  std::string second_id;
  ASSERT_TRUE(wait_until([&] { return one_agent_online(data, &second_id); }, 30s))
      << second->log_text();
  EXPECT_EQ(second_id, agent_id);
  second->signal(SIGINT);
  EXPECT_EQ(second->wait_for_exit(20s), 0) << second->log_text();

  for (const char* log : {"up-1.log", "up-2.log"}) {
    const auto text = read_text(dir.path() / log);
    EXPECT_EQ(text.find("Sanitizer"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace riposte::testing
