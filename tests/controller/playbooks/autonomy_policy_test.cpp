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
            "lowered from auto to approve by the ceiling for environment production, criticality "
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
  EXPECT_EQ(autonomy_policy_json(config->autonomy),
            json::parse(R"({"default":"approve","unmapped":"simulate",
                            "ceilings":[{"environment":"production","max":"simulate"}]})"));
  std::ofstream(path) << "autonomy:\n  ceilings:\n    - {environment: production, max: yolo}\n";
  auto bad = load_controller_config(path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(
      bad.error().message,
      path.string() + ": autonomy.ceilings[0].max must be simulate, approve or auto (line 2)");
}

}  // namespace
}  // namespace riposte::controller
