#include "controller/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/address.h"
#include "common/duration.h"
#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

std::filesystem::path write(const testing::TempDir& dir, const std::string& text) {
  const auto path = dir.path() / "controller.yaml";
  std::ofstream(path) << text;
  return path;
}

TEST(ControllerConfig, ReadsAlertIntelAndAssetKeys) {
  testing::TempDir dir;
  auto config = load_controller_config(write(dir, R"(
assets: assets.yaml
intel:
  feeds:
    - {name: feodo, path: feeds/feodo.csv, format: csv, weight: 2, column: dst_ip}
    - {name: circl, path: /srv/misp, format: misp}
  thresholds: {analyst: 0.4, respond: 0.8}
alerts:
  case_window: 2h
  validation_lookback_days: 7
  validation_timeout: 15s
  max_body_bytes: 1048576
)"));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->assets_file, dir.path() / "assets.yaml");  // relative to the file
  ASSERT_EQ(config->intel_feeds.size(), 2u);
  EXPECT_EQ(config->intel_feeds[0].path, dir.path() / "feeds/feodo.csv");
  EXPECT_EQ(config->intel_feeds[0].weight, 2);
  EXPECT_EQ(config->intel_feeds[0].column, "dst_ip");
  EXPECT_EQ(config->intel_feeds[1].path, "/srv/misp");
  EXPECT_DOUBLE_EQ(config->confidence_thresholds.analyst, 0.4);
  EXPECT_EQ(config->case_window_ms, 2 * 3600 * 1000);
  EXPECT_EQ(config->validation_lookback_days, 7u);
  EXPECT_EQ(config->validation_timeout_ms, 15000);
  EXPECT_EQ(config->max_alert_body_bytes, 1048576u);

  for (const char* bad :
       {"intel: {feeds: [{name: a, path: b, format: list, colum: x}]}\n",
        "intel: {feeds: [{name: a, path: b, format: list, column: x}]}\n",
        "intel: {feeds: [{name: a, format: list}]}\n",
        "intel: {thresholds: {analyst: 0.9, respond: 0.5}}\n", "alerts: {case_windw: 1h}\n",
        "alerts: {validation_lookback_days: 0}\n"}) {
    auto refused = load_controller_config(write(dir, bad));
    EXPECT_FALSE(refused) << bad;
  }
}

TEST(ControllerConfig, ReadsEveryKey) {
  testing::TempDir dir;
  auto config = load_controller_config(write(dir, R"(
data_dir: /srv/riposte
agent_listen: 0.0.0.0:9443
api_listen: 127.0.0.1:9444
agent_gateway_host: soc.example
server_names: [soc.example, 10.0.0.1]
heartbeat_interval: 15s
max_frame_size: 65536
log_level: debug
log_format: json
)"));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->data_dir, "/srv/riposte");
  EXPECT_EQ(config->agent_listen, "0.0.0.0:9443");
  EXPECT_EQ(config->heartbeat_interval_seconds, 15u);
  EXPECT_EQ(config->max_frame_size, 65536u);
  EXPECT_EQ(config->server_names.size(), 2u);
  EXPECT_EQ(config->log_format, "json");
}

TEST(ControllerConfig, ReadsConnectionLimitsAndTheEvidenceQuota) {
  testing::TempDir dir;
  auto config = load_controller_config(write(dir, R"(
connection_limits:
  agent: {concurrent: 1000, per_second: 500, burst: 5000}
  api: {concurrent: 0}
evidence:
  agent_quota_bytes: 1073741824
)"));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->agent_connection_limits.concurrent, 1000u);
  EXPECT_EQ(config->agent_connection_limits.per_second, 500);
  EXPECT_EQ(config->agent_connection_limits.burst, 5000u);
  EXPECT_EQ(config->api_connection_limits.concurrent, 0u);  // lifted
  EXPECT_EQ(config->api_connection_limits.per_second, kApiListenerLimits.per_second);
  EXPECT_EQ(config->evidence.agent_quota_bytes, 1ULL << 30);
  for (const char* bad :
       {"connection_limits: {agent: {per_second: .nan}}\n",
        "connection_limits: {api: {per_second: -1}}\n",
        "connection_limits: {api: {per_second: 5, burst: 0}}\n",
        "connection_limits: {gateway: {concurrent: 1}}\n", "evidence: {agent_quota_bytes: 10}\n",
        "evidence: {agent_quota_bytes: 64G}\n"}) {
    auto refused = load_controller_config(write(dir, bad));
    EXPECT_FALSE(refused) << bad;
  }
}

TEST(ControllerConfig, ReadsTheDatabaseAndItsConnectionPool) {
  testing::TempDir dir;
  auto defaults = load_controller_config(write(dir, "log_level: info\n"));
  ASSERT_TRUE(defaults) << defaults.error().message;
  EXPECT_EQ(defaults->database_connections, 4u);
  auto config = load_controller_config(write(dir, R"(
database: postgresql:///riposte?host=/run/postgresql
database_connections: 12
)"));
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->database, "postgresql:///riposte?host=/run/postgresql");
  EXPECT_EQ(config->database_connections, 12u);
  for (const char* bad : {"database_connections: 0\n", "database_connections: 65\n",
                          "database_connections: -1\n", "database_connections: many\n"}) {
    auto refused = load_controller_config(write(dir, bad));
    EXPECT_FALSE(refused) << bad;
  }
}

TEST(ControllerConfig, UnknownKeyIsAnErrorNamingIt) {
  testing::TempDir dir;
  auto config = load_controller_config(write(dir, "agent_listne: 1.2.3.4:5\n"));
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message.find("agent_listne"), std::string::npos);
}

// Every enumerated value is checked at load (start, reload, `check`), naming the allowed ones;
// an unknown key lists the known ones. A ceiling on `environment: prod` never matched an asset,
// so production hosts fell back to the default ceiling without a word.
TEST(ControllerConfig, EnumeratedValuesAndKeysNameWhatIsAllowed) {
  testing::TempDir dir;
  const auto error_of = [&](const std::string& text) {
    auto config = load_controller_config(write(dir, text));
    return config ? std::string("(loaded)") : config.error().message;
  };
  const auto prod = error_of("autonomy:\n  ceilings:\n    - {environment: prod, max: approve}\n");
  EXPECT_NE(prod.find("environment 'prod' is not one of production, staging, lab"),
            std::string::npos)
      << prod;
  const auto critical =
      error_of("autonomy:\n  ceilings:\n    - {criticality: critical, max: simulate}\n");
  EXPECT_NE(
      critical.find("criticality 'critical' is not one of mission-critical, high, medium, low"),
      std::string::npos)
      << critical;
  EXPECT_EQ(error_of("autonomy:\n  ceilings:\n    - {environment: production, criticality: "
                     "mission-critical, max: approve}\n"),
            "(loaded)");
  const auto level = error_of("log_level: verbose\n");
  EXPECT_NE(level.find("log_level 'verbose' is not one of trace, debug, info"), std::string::npos)
      << level;
  EXPECT_NE(error_of("log_format: yaml\n").find("not one of text, json"), std::string::npos);
  const auto key = error_of("agent_listne: 1.2.3.4:5\n");
  EXPECT_NE(key.find("known: "), std::string::npos) << key;
  EXPECT_NE(key.find("agent_listen"), std::string::npos) << key;
  const auto nested = error_of("console:\n  public_ur: https://x\n");
  EXPECT_NE(nested.find("known: web_root, session_lifetime, public_url"), std::string::npos)
      << nested;
  const auto autonomy = error_of("autonomy:\n  ceiling: []\n");
  EXPECT_NE(autonomy.find("known: default, unmapped, ceilings, sources, rate_limits"),
            std::string::npos)
      << autonomy;
}

// A key given twice in one mapping is refused: yaml-cpp keeps both and readers disagree on which
// counts (a ceiling's second `max: auto` loosened it for one reader).
TEST(ControllerConfig, AKeyGivenTwiceIsRefused) {
  testing::TempDir dir;
  auto config = load_controller_config(write(
      dir, "autonomy:\n  ceilings:\n    - {environment: production, max: approve, max: auto}\n"));
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message.find("key 'max' is given twice"), std::string::npos)
      << config.error().message;
}

// `playbooks.dir` takes one directory or a list (the shipped playbooks and a team's own).
TEST(ControllerConfig, PlaybooksDirTakesOneOrSeveralDirectories) {
  testing::TempDir dir;
  auto one = load_controller_config(write(dir, "playbooks:\n  dir: /srv/a\n"));
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->playbooks_dirs, std::vector<std::filesystem::path>{"/srv/a"});
  auto two = load_controller_config(write(dir, "playbooks:\n  dir: [/srv/a, /srv/b]\n"));
  ASSERT_TRUE(two) << two.error().message;
  EXPECT_EQ(two->playbooks_dirs, (std::vector<std::filesystem::path>{"/srv/a", "/srv/b"}));
}

TEST(ControllerConfig, InvalidYamlAndValuesAreErrors) {
  testing::TempDir dir;
  EXPECT_FALSE(load_controller_config(write(dir, "data_dir: [unclosed\n")));
  EXPECT_FALSE(load_controller_config(write(dir, "heartbeat_interval: 0s\n")));
  EXPECT_FALSE(load_controller_config(write(dir, "max_frame_size: 10\n")));
  EXPECT_FALSE(load_controller_config(dir.path() / "missing.yaml"));
}

TEST(Duration, ParsesUnitsAndRejectsNonsense) {
  EXPECT_EQ(parse_duration_ms("90s").value(), 90'000);
  EXPECT_EQ(parse_duration_ms("30m").value(), 1'800'000);
  EXPECT_EQ(parse_duration_ms("24h").value(), 86'400'000);
  EXPECT_EQ(parse_duration_ms("7d").value(), 604'800'000);
  for (const char* bad : {"", "h", "10", "-5m", "0h", "1.5h", "10y", "99999999999999999999d"}) {
    EXPECT_FALSE(parse_duration_ms(bad)) << bad;
  }
}

TEST(Address, ParsesHostPortForms) {
  EXPECT_EQ(parse_host_port("127.0.0.1:7443")->port, 7443);
  EXPECT_EQ(parse_host_port("[::1]:8443")->host, "::1");
  EXPECT_EQ(parse_host_port("soc.example:1")->host, "soc.example");
  EXPECT_EQ(parse_host_port("[::1]:8443")->to_string(), "[::1]:8443");
  for (const char* bad :
       {"", "host", ":80", "host:", "host:99999", "::1:80", "host:0", "host:8x"}) {
    EXPECT_FALSE(parse_host_port(bad)) << bad;
  }
  EXPECT_TRUE(parse_host_port("0.0.0.0:0", /*allow_port_zero=*/true));
}

}  // namespace
}  // namespace riposte::controller

namespace riposte::controller {
namespace {

// The documented example must stay loadable.
TEST(ControllerConfig, PackagedExampleLoads) {
  auto config = load_controller_config(std::filesystem::path(::riposte::testing::source_dir()) /
                                       "packaging/controller.yaml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->agent_listen, "0.0.0.0:7443");
}

}  // namespace
}  // namespace riposte::controller
