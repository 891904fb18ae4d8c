#include "controller/alerts/intake.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "controller/api/alert_routes.h"
#include "controller/api/router.h"
#include "controller/gateway/enrollment.h"
#include "controller/gateway/pki.h"
#include "controller/store/sqlite_store.h"
#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

std::string fixture_text(const std::string& name) {
  std::ifstream in(std::string(::riposte::testing::source_dir()) + "/tests/fixtures/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const AlertSubmitter kAdmin{"admin", "admin", ""};

class AlertIntakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = SqliteStore::open(dir.path() / "riposte.db");
    ASSERT_TRUE(opened) << opened.error().message;
    store = std::move(*opened);
    const auto intel_dir =
        std::filesystem::path(::riposte::testing::source_dir()) / "tests/fixtures/intel";
    ASSERT_TRUE(intel.load({{"feodo", intel_dir / "feodo.csv", "csv", 1, "dst_ip"},
                            {"misp", intel_dir / "misp", "misp", 1, ""},
                            {"stix", intel_dir / "stix", "stix", 1, ""},
                            {"list", intel_dir / "blocklist.txt", "list", 1, ""}},
                           clock.now_unix_ms()));
    ASSERT_TRUE(assets.load(std::filesystem::path(::riposte::testing::source_dir()) /
                            "tests/fixtures/assets.yaml"));
    intake = std::make_unique<AlertIntake>(*store, intel, assets, clock,
                                           AlertIntakeOptions{3'600'000, {}});
    intake->set_listener([this](const std::vector<std::string>& ids) {
      handed_on.insert(handed_on.end(), ids.begin(), ids.end());
    });
  }
  int count_alerts() { return static_cast<int>(store->list_alerts("", 100000)->size()); }

  testing::TempDir dir;
  ManualClock clock{1'790'000'000'000};
  std::unique_ptr<SqliteStore> store;
  ThreatIntel intel;
  AssetCatalog assets;
  std::unique_ptr<AlertIntake> intake;
  std::vector<std::string> handed_on;
};

TEST_F(AlertIntakeTest, StoresNormalizedAlertWithAssetsAndConfidence) {
  auto report = intake->submit(fixture_text("alerts/ecs_malicious_ip.json"), std::nullopt, kAdmin);
  ASSERT_EQ(report.error_status, 0) << report.error;
  ASSERT_EQ(report.alerts.size(), 1u);
  auto stored = store->find_alert(report.alerts[0].id);
  ASSERT_TRUE(stored && *stored);
  const auto view = alert_json(**stored);
  EXPECT_EQ(view["source"], "ecs");
  EXPECT_EQ(view["rule"]["name"], "Connection to Known Malicious IP");
  EXPECT_EQ(view["host"]["name"], "web-01");
  EXPECT_EQ(view["user"]["name"], "www-data");
  EXPECT_EQ(view["assets"][0]["application"], "webshop");
  // 185.220.101.47 is in feodo, misp, stix and the list: 4 of 4.
  EXPECT_EQ(view["confidence"]["decision"], "respond");
  EXPECT_DOUBLE_EQ(view["confidence"]["score"].get<double>(), 1.0);
  EXPECT_EQ(view["raw"]["kibana.alert.rule.name"], "Connection to Known Malicious IP");
  EXPECT_EQ(handed_on, std::vector<std::string>{report.alerts[0].id});
  auto audit = store->audit_entries(0, 100);
  ASSERT_TRUE(audit);
  EXPECT_EQ(audit->back().event, "alerts.received");
  EXPECT_EQ(audit->back().actor, "admin");
  // Who submitted it, and with what authority, travels with the alert.
  EXPECT_EQ(view["submitted_by"]["name"], "admin");
  EXPECT_EQ(view["submitted_by"]["role"], "admin");
  EXPECT_TRUE(view["submitted_by"]["max_mode"].is_null());
}

TEST_F(AlertIntakeTest, AnIntegrationsAlertsCarryItsMaxMode) {
  auto report = intake->submit(fixture_text("alerts/ecs_malicious_ip.json"), std::nullopt,
                               AlertSubmitter{"elastic-prod", "ingest", "auto"});
  ASSERT_EQ(report.error_status, 0) << report.error;
  const auto stored = store->find_alert(report.alerts[0].id).value().value();
  EXPECT_EQ(stored.submitted_by, "elastic-prod");
  EXPECT_EQ(stored.submitter_role, "ingest");
  EXPECT_EQ(stored.source_max_mode, "auto");
}

TEST_F(AlertIntakeTest, SameAlertTwiceIsStoredOnce) {
  const auto body = fixture_text("alerts/wazuh_sshd.json");
  auto first = intake->submit(body, std::nullopt, kAdmin);
  auto second = intake->submit(body, std::nullopt, kAdmin);
  ASSERT_EQ(second.error_status, 0);
  EXPECT_FALSE(first.alerts[0].duplicate);
  EXPECT_TRUE(second.alerts[0].duplicate);
  EXPECT_EQ(second.alerts[0].case_id, first.alerts[0].case_id);
  EXPECT_EQ(count_alerts(), 1);
  EXPECT_EQ(handed_on.size(), 1u);  // the duplicate is not validated again
}

TEST_F(AlertIntakeTest, RelatedAlertsJoinOneCaseWithinTheWindow) {
  auto alert = [](const std::string& id, const std::string& host, const std::string& ip,
                  const std::string& time) {
    return json{{"id", id},
                {"title", "t"},
                {"host", host},
                {"timestamp", time},
                {"observables", {{{"type", "ip"}, {"value", ip}}}}};
  };
  json batch = json::array({alert("a1", "h1", "198.51.100.9", "2026-11-20T10:00:00Z"),
                            alert("a2", "h1", "198.51.100.9", "2026-11-20T10:30:00Z"),
                            alert("a3", "h2", "198.51.100.9", "2026-11-20T10:30:00Z"),
                            alert("a4", "h1", "198.51.100.9", "2026-11-20T12:00:01Z"),
                            alert("a5", "h1", "198.51.100.10", "2026-11-20T10:10:00Z")});
  auto report = intake->submit(batch.dump(), std::nullopt, kAdmin);
  ASSERT_EQ(report.error_status, 0) << report.error;
  const auto& r = report.alerts;
  EXPECT_EQ(r[1].case_id, r[0].case_id);  // same host and IP, 30 min apart
  EXPECT_NE(r[2].case_id, r[0].case_id);  // other host
  EXPECT_NE(r[3].case_id, r[0].case_id);  // 1.5 h after the newest related one... window 1 h
  EXPECT_NE(r[4].case_id, r[0].case_id);  // other IP
  auto c = store->find_case(r[0].case_id);
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->alert_ids, (std::vector<std::string>{"a1", "a2"}));
}

TEST_F(AlertIntakeTest, BadInputIsRefusedAndNothingIsStored) {
  auto invalid = intake->submit("{\"title\": ", std::nullopt, kAdmin);
  EXPECT_EQ(invalid.error_status, 400);
  EXPECT_NE(invalid.error.find("not valid JSON"), std::string::npos);

  // One unusable document in a batch (its only field has the wrong type): the whole batch is
  // refused, naming the document and what was dropped.
  json batch = json::array({json::parse(fixture_text("alerts/generic.json"))});
  batch.push_back(json{{"host", {{"name", 7}}}, {"severity", "high"}});
  auto wrong = intake->submit(batch.dump(), std::nullopt, kAdmin);
  EXPECT_EQ(wrong.error_status, 422);
  EXPECT_NE(wrong.error.find("alert 1"), std::string::npos) << wrong.error;
  EXPECT_NE(wrong.error.find("host.name"), std::string::npos) << wrong.error;

  // Valid syntax the parser refuses by throwing out_of_range: a 400, not an escaped exception.
  auto huge_number = intake->submit(R"({"title": "t", "risk": 2E2222222222})", std::nullopt, kAdmin);
  EXPECT_EQ(huge_number.error_status, 400) << huge_number.error;

  auto useless = intake->submit(R"({"@timestamp": "2026-11-20T00:00:00Z"})", std::nullopt, kAdmin);
  EXPECT_EQ(useless.error_status, 422);
  EXPECT_EQ(intake->submit("42", std::nullopt, kAdmin).error_status, 422);
  EXPECT_EQ(intake->submit("[]", std::nullopt, kAdmin).error_status, 422);
  EXPECT_EQ(count_alerts(), 0);
  EXPECT_TRUE(handed_on.empty());
}

TEST_F(AlertIntakeTest, ApiRoutesCheckRolesAndSizes) {
  OperatorAuth auth(*store, clock);
  auto admin = auth.create_token("root", "admin");
  auto viewer = auth.create_token("eve", "viewer");
  ASSERT_TRUE(admin && viewer);
  auto pki = Pki::load_or_create(dir.path(), {}, clock);
  ASSERT_TRUE(pki);
  Enrollment enrollment(*store, *pki, clock);
  AlertApi api({*store, *intake, intel, assets, {}, nullptr});
  ApiRouter router({*store, enrollment, auth, clock, nullptr, "", 0, nullptr, nullptr, &api});
  auto post = [&](const std::string& token, const std::string& target, const std::string& body) {
    return router.handle({"POST", target, fmt::format("Bearer {}", token), body, "127.0.0.1:1"});
  };
  auto get = [&](const std::string& target) {
    return router.handle(
        {"GET", target, fmt::format("Bearer {}", admin->secret), "", "127.0.0.1:1"});
  };
  EXPECT_EQ(post(viewer->secret, "/api/v1/alerts", fixture_text("alerts/generic.json")).status,
            403);
  EXPECT_EQ(post(admin->secret, "/api/v1/alerts?format=splunk", "{}").status, 400);
  auto created =
      post(admin->secret, "/api/v1/alerts?format=wazuh", fixture_text("alerts/wazuh_sshd.json"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(json::parse(created.body)["ids"], json{"1732092312.4417823"});
  auto shown = get("/api/v1/alerts/1732092312.4417823");
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(json::parse(shown.body)["severity"], "medium");
  EXPECT_EQ(get("/api/v1/alerts/nope").status, 404);
  EXPECT_EQ(json::parse(get("/api/v1/alerts?status=new").body)["alerts"].size(), 1u);
  EXPECT_EQ(get("/api/v1/alerts?status=bogus").status, 400);
  auto lookup =
      get("/api/v1/intel/"
          "lookup?value=http%3A%2F%2Finvoice-portal.example.net%2Fdownload%2Finvoice.exe");
  ASSERT_EQ(lookup.status, 200) << lookup.body;
  EXPECT_EQ(json::parse(lookup.body)["type"], "url");
  EXPECT_EQ(json::parse(lookup.body)["feeds"], json{"list"});
  EXPECT_EQ(get("/api/v1/intel/lookup?value=zzz").status, 400);
  EXPECT_EQ(post(viewer->secret, "/api/v1/intel/reload", "").status, 403);
  EXPECT_EQ(json::parse(get("/api/v1/assets").body)["entries"].size(), 3u);
}

}  // namespace
}  // namespace riposte::controller
