#include "agent/agent_config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::agent {
namespace {

TEST(AgentConfig, PackagedExampleLoads) {
  auto config = load_agent_config(std::filesystem::path(::riposte::testing::source_dir()) /
                                  "packaging/agent.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->reconnect_max, std::chrono::seconds(60));
  EXPECT_EQ(config->connection_retention, std::chrono::hours(24 * 30));
  EXPECT_EQ(config->evidence_spool_limit, 8ULL << 30);
  EXPECT_EQ(config->clock_skew, std::chrono::seconds(30));
}

TEST(AgentConfig, ActionSettingsLoadAndAreChecked) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "a.yaml")
      << "max_concurrent_actions: 2\nallowed_actions: [process.list, host.facts]\n"
         "protected_process_names: [sshd]\nevidence_spool_limit: 512M\nclock_skew: 5s\n";
  auto config = load_agent_config(dir.path() / "a.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->max_concurrent_actions, 2);
  EXPECT_EQ(config->allowed_actions, (std::vector<std::string>{"process.list", "host.facts"}));
  EXPECT_EQ(config->protected_process_names, std::vector<std::string>{"sshd"});
  EXPECT_EQ(config->evidence_spool_limit, 512ULL << 20);
  EXPECT_EQ(config->clock_skew, std::chrono::seconds(5));
  std::ofstream(dir.path() / "b.yaml") << "max_concurrent_actions: 0\n";
  EXPECT_FALSE(load_agent_config(dir.path() / "b.yaml"));
  std::ofstream(dir.path() / "c.yaml") << "evidence_spool_limit: lots\n";
  EXPECT_FALSE(load_agent_config(dir.path() / "c.yaml"));
  std::ofstream(dir.path() / "d.yaml") << "allowed_actions: process.kill\n";
  EXPECT_FALSE(load_agent_config(dir.path() / "d.yaml"));
}

TEST(AgentConfig, UnknownKeysAndBadIntervalsAreErrors) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "a.yaml") << "reconect_max: 5s\n";
  auto typo = load_agent_config(dir.path() / "a.yaml");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("reconect_max"), std::string::npos);
  std::ofstream(dir.path() / "b.yaml") << "reconnect_initial: soon\n";
  EXPECT_FALSE(load_agent_config(dir.path() / "b.yaml"));
}

TEST(AgentConfig, IntervalsParse) {
  EXPECT_EQ(parse_interval("500ms").value(), std::chrono::milliseconds(500));
  EXPECT_EQ(parse_interval("2s").value(), std::chrono::milliseconds(2000));
  EXPECT_EQ(parse_interval("1h").value(), std::chrono::milliseconds(3'600'000));
  EXPECT_EQ(parse_interval("30d").value(), std::chrono::hours(24 * 30));
  for (const char* bad : {"", "s", "0s", "5", "5x", "-1s", "9999999999s"})
    EXPECT_FALSE(parse_interval(bad)) << bad;
}

}  // namespace
}  // namespace riposte::agent
