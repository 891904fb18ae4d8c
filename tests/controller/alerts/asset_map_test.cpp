#include "controller/alerts/asset_map.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

const std::filesystem::path kAssets =
    std::filesystem::path(::riposte::testing::source_dir()) / "tests/fixtures/assets.yaml";

std::string names(const std::vector<const AssetEntry*>& entries) {
  std::string out;
  for (const auto* e : entries) out += (out.empty() ? "" : ",") + e->name;
  return out;
}

TEST(AssetMap, MatchesByHostnameIpCidrAndAgentId) {
  auto map = AssetMap::load(kAssets);
  ASSERT_TRUE(map) << map.error().message;
  ASSERT_EQ(map->entries().size(), 3u);
  EXPECT_EQ(names(map->match("WEB-01", "", {})), "shop-frontend");               // case-insensitive
  EXPECT_EQ(names(map->match("web-02.corp.example", "", {})), "shop-frontend");  // FQDN
  EXPECT_EQ(names(map->match("", "", {"10.20.1.99"})), "shop-frontend");         // CIDR
  EXPECT_EQ(names(map->match("", "", {"10.20.2.31"})), "shop-database");         // IP
  EXPECT_EQ(names(map->match("unknown", "", {"10.40.7.1"})), "finance-laptops");
  EXPECT_EQ(names(map->match("unknown", "", {"192.168.1.1"})), "");
  const auto& db = map->entries()[1];
  EXPECT_EQ(db.criticality, "high");
  EXPECT_EQ(db.owner, "team-data");
  EXPECT_EQ(db.stakeholders, std::vector<std::string>{"dba@example.com"});
}

TEST(AssetMap, MergedViewFlagsGapsOnBothSides) {
  auto map = AssetMap::load(kAssets);
  ASSERT_TRUE(map);
  AgentRecord web;
  web.id = "agent-web";
  web.facts.hostname = "web-01";
  web.connected = true;
  AgentRecord stray;
  stray.id = "agent-stray";
  stray.facts.hostname = "build-99";
  stray.facts.ip_addresses = {"172.16.0.9"};
  const auto view = merged_asset_view(*map, {web, stray});
  ASSERT_EQ(view["hosts"].size(), 1u);
  EXPECT_EQ(view["hosts"][0]["application"], "webshop");
  EXPECT_EQ(view["hosts"][0]["criticality"], "mission-critical");
  ASSERT_EQ(view["agents_not_covered"].size(), 1u);
  EXPECT_EQ(view["agents_not_covered"][0]["hostname"], "build-99");
  EXPECT_EQ(view["entries_without_agent"], (nlohmann::json{"shop-database", "finance-laptops"}));
}

TEST(AssetMap, ErrorsGiveFileLineAndProblem) {
  testing::TempDir dir;
  const auto path = dir.path() / "assets.yaml";
  auto load_text = [&](const std::string& text) {
    std::ofstream(path) << text;
    auto map = AssetMap::load(path);
    return map ? std::string() : map.error().message;
  };
  auto e = load_text("assets:\n  - name: a\n    hostname: h\n    criticality: extreme\n");
  EXPECT_NE(e.find("assets.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("criticality 'extreme'"), std::string::npos) << e;
  e = load_text("assets:\n  - name: a\n    hostname: h\n  - name: b\n    cidr: 10.0.0.0/33\n");
  EXPECT_NE(e.find("assets.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("not a CIDR"), std::string::npos) << e;
  e = load_text("assets:\n  - name: a\n    hostnme: h\n");
  EXPECT_NE(e.find("unknown key 'hostnme'"), std::string::npos) << e;
  e = load_text("assets:\n  - name: a\n    environment: production\n");
  EXPECT_NE(e.find("matches nothing"), std::string::npos) << e;
  e = load_text("assets:\n  - name: a\n    hostname: h\n  - name: a\n    hostname: g\n");
  EXPECT_NE(e.find("already used at line 2"), std::string::npos) << e;
  e = load_text("assets: [unclosed\n");
  EXPECT_FALSE(e.empty());
}

TEST(IpNetworks, PrefixMatching) {
  auto net = IpNetwork::parse("10.20.1.77/23");
  ASSERT_TRUE(net);
  EXPECT_EQ(net->to_string(), "10.20.0.0/23");
  EXPECT_TRUE(net->contains("10.20.1.255"));
  EXPECT_FALSE(net->contains("10.20.2.0"));
  // IPv4-mapped IPv6 is the IPv4 address, as written in a network or as checked against one.
  EXPECT_TRUE(net->contains("::ffff:10.20.1.1"));
  auto mapped = IpNetwork::parse("::ffff:10.20.1.0/119");
  ASSERT_TRUE(mapped);
  EXPECT_EQ(mapped->to_string(), "10.20.0.0/23");
  EXPECT_FALSE(IpNetwork::parse("::ffff:10.20.1.0/64")) << "a prefix shorter than the mapping";
  auto v6 = IpNetwork::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains("2001:db8:ffff::1"));
  EXPECT_FALSE(v6->contains("2001:db9::1"));
  EXPECT_FALSE(IpNetwork::parse("10.0.0.0/"));
  EXPECT_FALSE(IpNetwork::parse("10.0.0.0/8x"));
}

}  // namespace
}  // namespace riposte::controller
