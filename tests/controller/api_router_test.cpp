#include "controller/api_router.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "controller/sqlite_store.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

class ApiRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki.emplace(Pki::load_or_create(dir.path(), {}, clock).value());
    store = std::move(SqliteStore::open(dir.path() / "riposte.db").value());
    enrollment.emplace(*store, *pki, clock);
    auth.emplace(*store, clock);
    admin_token = auth->create_token("admin", "admin")->secret;
    analyst_token = auth->create_token("ann", "analyst")->secret;
    router.emplace(ApiRouterDeps{*store, *enrollment, *auth, clock,
                                 [this](const std::string& id) { revoked_sessions.push_back(id); },
                                 "", 7443});
  }

  ApiResponse call(const std::string& method, const std::string& target, const std::string& token,
                   const std::string& body = "") {
    return router->handle({method, target, token.empty() ? "" : "Bearer " + token, body, "test"});
  }
  static json parse(const ApiResponse& r) { return json::parse(r.body); }

  std::string enroll_one() {
    auto token = enrollment->create_token(1, 3'600'000, "t");
    auto key = crypto::generate_ec_p256();
    auto csr = crypto::csr_pem(crypto::make_csr(key->get(), "h")->get());
    auto r = call("POST", "/api/v1/enroll", "",
                  json{{"token", token->secret}, {"csr_pem", csr}, {"hostname", "h"}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return parse(r)["agent_id"];
  }

  testing::TempDir dir;
  ManualClock clock{1'800'000'000'000};
  std::optional<Pki> pki;
  std::unique_ptr<SqliteStore> store;
  std::optional<Enrollment> enrollment;
  std::optional<OperatorAuth> auth;
  std::optional<ApiRouter> router;
  std::string admin_token, analyst_token;
  std::vector<std::string> revoked_sessions;
};

TEST_F(ApiRouterTest, HealthNeedsNoToken) {
  auto r = call("GET", "/healthz", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(parse(r)["status"], "ok");
}

TEST_F(ApiRouterTest, MissingOrWrongTokenIs401WithJsonError) {
  for (const std::string& token : {std::string(), std::string("rpt_wrong")}) {
    auto r = call("GET", "/api/v1/agents", token);
    EXPECT_EQ(r.status, 401);
    EXPECT_TRUE(parse(r).contains("error"));
  }
  auto r = router->handle({"GET", "/api/v1/agents", "Basic abc", "", "test"});
  EXPECT_EQ(r.status, 401);
}

TEST_F(ApiRouterTest, AnalystCanReadButNotMutate) {
  EXPECT_EQ(call("GET", "/api/v1/agents", analyst_token).status, 200);
  EXPECT_EQ(call("POST", "/api/v1/enrollment-tokens", analyst_token).status, 403);
  const auto id = enroll_one();
  EXPECT_EQ(call("POST", "/api/v1/agents/" + id + "/revoke", analyst_token).status, 403);
  EXPECT_TRUE(revoked_sessions.empty());
}

TEST_F(ApiRouterTest, EnrollmentTokenCreationValidatesItsInput) {
  auto ok = call("POST", "/api/v1/enrollment-tokens", admin_token, R"({"uses": 3, "ttl": "2h"})");
  ASSERT_EQ(ok.status, 201) << ok.body;
  EXPECT_TRUE(parse(ok)["token"].get<std::string>().starts_with("rpe_"));
  EXPECT_EQ(parse(ok)["uses"], 3);
  EXPECT_EQ(call("POST", "/api/v1/enrollment-tokens", admin_token, "{not json").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/enrollment-tokens", admin_token, "[1]").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/enrollment-tokens", admin_token, R"({"uses": "many"})").status,
            400);
  EXPECT_EQ(call("POST", "/api/v1/enrollment-tokens", admin_token, R"({"uses": 0})").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/enrollment-tokens", admin_token, R"({"ttl": "forever"})").status,
            400);
}

TEST_F(ApiRouterTest, EnrolledAgentIsListedShownAndRevoked) {
  const auto id = enroll_one();
  auto list = parse(call("GET", "/api/v1/agents", admin_token));
  ASSERT_EQ(list["agents"].size(), 1u);
  EXPECT_EQ(list["agents"][0]["id"], id);
  EXPECT_EQ(list["agents"][0]["status"], "offline");

  auto shown = call("GET", "/api/v1/agents/" + id, admin_token);
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(parse(shown)["hostname"], "h");

  auto revoked = call("POST", "/api/v1/agents/" + id + "/revoke", admin_token);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(parse(revoked)["status"], "revoked");
  EXPECT_EQ(revoked_sessions, std::vector<std::string>{id});
}

TEST_F(ApiRouterTest, UnknownAgentAndBadIdsAreClearErrors) {
  EXPECT_EQ(call("GET", "/api/v1/agents/00000000-0000-4000-8000-000000000000", admin_token).status,
            404);
  EXPECT_EQ(call("POST", "/api/v1/agents/00000000-0000-4000-8000-000000000000/revoke", admin_token)
                .status,
            404);
  EXPECT_EQ(call("GET", "/api/v1/agents/..%2f..%2fetc", admin_token).status, 400);
  EXPECT_EQ(call("GET", "/api/v1/nothing", admin_token).status, 404);
  EXPECT_EQ(call("DELETE", "/api/v1/agents", admin_token).status, 405);
}

TEST_F(ApiRouterTest, EnrollmentWithBadTokenIs403AndBadBodyIs400) {
  auto key = crypto::generate_ec_p256();
  auto csr = crypto::csr_pem(crypto::make_csr(key->get(), "h")->get());
  auto r = call("POST", "/api/v1/enroll", "", json{{"token", "rpe_nope"}, {"csr_pem", csr}}.dump());
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(parse(r)["error"], "unknown enrollment token");
  EXPECT_EQ(call("POST", "/api/v1/enroll", "", R"({"token": 5})").status, 400);
  EXPECT_EQ(call("POST", "/api/v1/enroll", "", "\xff\xfe").status, 400);
}

}  // namespace
}  // namespace riposte::controller
