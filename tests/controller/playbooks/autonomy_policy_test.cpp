#include "controller/playbooks/autonomy_policy.h"

#include <gtest/gtest.h>

#include <fstream>

#include "controller/config.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

TEST(AutonomyPolicy, CeilingLowersAutoOnMissionCriticalProductionAndSaysWhy) {
  AutonomyPolicy policy;
  policy.ceilings = {{"production", "mission-critical", AutonomyMode::approve},
                     {"production", "", AutonomyMode::automatic},
                     {"", "high", AutonomyMode::simulate}};
  const auto critical =
      effective_mode(AutonomyMode::automatic, policy, AssetClass{"production", "mission-critical"});
  EXPECT_EQ(critical.mode, AutonomyMode::approve);
  EXPECT_EQ(critical.why,
            "lowered from auto to approve: the ceiling for environment production, criticality "
            "mission-critical");
  // The most restrictive matching rule wins, whatever the order.
  EXPECT_EQ(effective_mode(AutonomyMode::approve, policy, AssetClass{"production", "high"}).mode,
            AutonomyMode::simulate);
  const auto lab = effective_mode(AutonomyMode::automatic, policy, AssetClass{"lab", "low"});
  EXPECT_EQ(lab.mode, AutonomyMode::automatic);
  EXPECT_EQ(lab.why, "auto as the playbook declares (ceiling auto: autonomy.default)");
  // Never raised: a simulate step stays simulate under an auto ceiling.
  EXPECT_EQ(effective_mode(AutonomyMode::simulate, policy, AssetClass{"lab", "low"}).mode,
            AutonomyMode::simulate);
  const auto unknown = effective_mode(AutonomyMode::automatic, policy, std::nullopt);
  EXPECT_EQ(unknown.mode, AutonomyMode::approve);
  EXPECT_NE(unknown.why.find("no asset entry"), std::string::npos);
}

TEST(AutonomyPolicy, DefaultsKeepMissionCriticalAtApprove) {
  const AutonomyPolicy defaults;
  EXPECT_EQ(
      effective_mode(AutonomyMode::automatic, defaults, AssetClass{"staging", "mission-critical"})
          .mode,
      AutonomyMode::approve);
  EXPECT_EQ(effective_mode(AutonomyMode::automatic, defaults, AssetClass{"production", "low"}).mode,
            AutonomyMode::automatic);
}

TEST(AutonomyPolicy, ReadFromControllerYamlWithErrors) {
  testing::TempDir dir;
  const auto path = dir.path() / "controller.yaml";
  std::ofstream(path) << "autonomy:\n  default: approve\n  unmapped: simulate\n  ceilings:\n"
                         "    - {environment: production, max: simulate}\n";
  auto config = load_controller_config(path);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->autonomy.default_ceiling, AutonomyMode::approve);
  EXPECT_EQ(config->autonomy.unmapped, AutonomyMode::simulate);
  ASSERT_EQ(config->autonomy.ceilings.size(), 1u);
  const auto shown = autonomy_policy_json(config->autonomy);
  EXPECT_EQ(shown["default"], "approve");
  EXPECT_EQ(shown["unmapped"], "simulate");
  EXPECT_EQ(shown["ceilings"],
            json::parse(R"([{"environment":"production","max":"simulate"}])"));
  // What GET /api/v1/autonomy shows reads back as the same policy (the CLI does so).
  auto round_trip = autonomy_policy_from_json(shown);
  ASSERT_TRUE(round_trip) << round_trip.error().message;
  EXPECT_EQ(autonomy_policy_json(*round_trip), shown);
  std::ofstream(path) << "autonomy:\n  ceilings:\n    - {environment: production, max: yolo}\n";
  auto bad = load_controller_config(path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(
      bad.error().message,
      path.string() + ": autonomy.ceilings[0].max must be simulate, approve or auto (line 2)");
}

TEST(AutonomyPolicy, SourceCeilingsAndRateLimitsHaveSafeDefaultsAndAreConfigurable) {
  const AutonomyPolicy defaults;
  // A person's alert never acts without a second person; an integration carries its own.
  EXPECT_EQ(source_ceiling(defaults, "ann", "analyst", "").mode, AutonomyMode::approve);
  EXPECT_EQ(source_ceiling(defaults, "", "", "").mode, AutonomyMode::approve);
  EXPECT_EQ(source_ceiling(defaults, "siem", "ingest", "auto").mode, AutonomyMode::automatic);
  EXPECT_EQ(source_ceiling(defaults, "siem", "ingest", "simulate").mode, AutonomyMode::simulate);
  EXPECT_EQ(source_ceiling(defaults, "siem", "ingest", "garbage").mode, AutonomyMode::simulate);
  const auto lowered = lower_to({AutonomyMode::automatic, "declared"},
                                source_ceiling(defaults, "ann", "analyst", ""));
  EXPECT_EQ(lowered.mode, AutonomyMode::approve);
  EXPECT_NE(lowered.why.find("submitted by a person (ann"), std::string::npos) << lowered.why;
  EXPECT_EQ(defaults.rate_limits.per_host.count, 5);
  EXPECT_EQ(defaults.rate_limits.per_host.window_ms, 600'000);

  testing::TempDir dir;
  const auto path = dir.path() / "controller.yaml";
  std::ofstream(path) << "autonomy:\n  sources: {operators: simulate}\n  rate_limits:\n"
                         "    per_host: {actions: 2, window: 1h}\n"
                         "    webhook: {posts: 3, window: 30s}\n";
  auto config = load_controller_config(path);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->autonomy.operator_alerts, AutonomyMode::simulate);
  EXPECT_EQ(config->autonomy.rate_limits.per_host.count, 2);
  EXPECT_EQ(config->autonomy.rate_limits.per_host.window_ms, 3'600'000);
  EXPECT_EQ(config->autonomy.rate_limits.webhook.count, 3);
  EXPECT_EQ(config->autonomy.rate_limits.global.count, 30);  // untouched: the default
  for (const auto& [yaml, error] : std::vector<std::pair<std::string, std::string>>{
           {"autonomy:\n  sources: {operators: auto}\n", "never acts without a second person"},
           {"autonomy:\n  rate_limits: {per_host: {actions: many}}\n", "whole number"},
           {"autonomy:\n  rate_limits: {per_hots: {actions: 1}}\n", "unknown key 'per_hots'"},
           {"autonomy:\n  rate_limits: {global: {actions: 1, window: soon}}\n", "window"},
           {"autonomy:\n  celings: []\n", "unknown key 'celings'"}}) {
    std::ofstream(path) << yaml;
    auto bad = load_controller_config(path);
    ASSERT_FALSE(bad) << yaml;
    EXPECT_NE(bad.error().message.find(error), std::string::npos) << bad.error().message;
  }
}

}  // namespace
}  // namespace riposte::controller
