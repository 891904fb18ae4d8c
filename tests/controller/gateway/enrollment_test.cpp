#include "controller/gateway/enrollment.h"

#include <gtest/gtest.h>

#include "common/secure_file.h"
#include "controller/store/sqlite_store.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

constexpr std::int64_t kHour = 3'600'000;

class EnrollmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = Pki::load_or_create(dir.path(), {}, clock);
    ASSERT_TRUE(p);
    pki.emplace(std::move(*p));
    auto s = SqliteStore::open(dir.path() / "riposte.db");
    ASSERT_TRUE(s);
    store = std::move(*s);
    enrollment.emplace(*store, *pki, clock);
  }

  std::string fresh_csr() {
    auto key = crypto::generate_ec_p256();
    return crypto::csr_pem(crypto::make_csr(key->get(), "host-a")->get());
  }

  testing::TempDir dir;
  ManualClock clock{1'800'000'000'000};
  std::optional<Pki> pki;
  std::unique_ptr<SqliteStore> store;
  std::optional<Enrollment> enrollment;
};

TEST_F(EnrollmentTest, OnlyTheHashOfATokenIsStored) {
  auto token = enrollment->create_token(1, kHour, "alice");
  ASSERT_TRUE(token);
  EXPECT_EQ(token->record.token_hash, crypto::sha256_hex(token->secret));
  auto wal = read_file(dir.path() / "riposte.db-wal");
  const auto db = read_file(dir.path() / "riposte.db").value() + (wal ? *wal : std::string());
  EXPECT_EQ(db.find(token->secret), std::string::npos)
      << "the secret must never reach the database";
}

TEST_F(EnrollmentTest, ValidTokenEnrollsAndRecordsTheAgent) {
  auto token = enrollment->create_token(1, kHour, "alice");
  auto grant = enrollment->enroll({token->secret, fresh_csr(), "host-a"});
  ASSERT_TRUE(grant) << grant.error().message;
  auto agent = store->find_agent(grant->agent_id);
  ASSERT_TRUE(agent && agent->has_value());
  EXPECT_EQ((*agent)->facts.hostname, "host-a");
  auto cert = crypto::load_certificate_pem(grant->certificate_pem);
  EXPECT_EQ((*agent)->cert_fingerprint, crypto::certificate_fingerprint(cert->get()));
  EXPECT_EQ(grant->ca_certificate_pem, pki->ca_certificate_pem());
  EXPECT_EQ(grant->action_public_key_pem, pki->action_public_key_pem());
}

// A group of hosts rolled out with one token carries its labels from the first session on, so a
// fan-out by label reaches them without labelling each one afterwards.
TEST_F(EnrollmentTest, AgentsEnrolledWithATokenGetItsLabels) {
  auto labelled = enrollment->create_token(2, kHour, "alice", {"web", "pci"});
  auto plain = enrollment->create_token(1, kHour, "alice");
  auto a = enrollment->enroll({labelled->secret, fresh_csr(), "a"});
  auto b = enrollment->enroll({plain->secret, fresh_csr(), "b"});
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*store->find_agent(a->agent_id))->labels, (std::vector<std::string>{"web", "pci"}));
  EXPECT_TRUE((*store->find_agent(b->agent_id))->labels.empty());
}

TEST_F(EnrollmentTest, TokenIsRefusedOnceItsUsesAreSpent) {
  auto token = enrollment->create_token(2, kHour, "alice");
  EXPECT_TRUE(enrollment->enroll({token->secret, fresh_csr(), "a"}));
  EXPECT_TRUE(enrollment->enroll({token->secret, fresh_csr(), "b"}));
  auto third = enrollment->enroll({token->secret, fresh_csr(), "c"});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().message, "enrollment token has no uses left");
  EXPECT_EQ(store->list_agents()->size(), 2u);
}

TEST_F(EnrollmentTest, TokenIsRefusedAfterItExpires) {
  auto token = enrollment->create_token(5, kHour, "alice");
  clock.advance_ms(kHour - 1);
  EXPECT_TRUE(enrollment->enroll({token->secret, fresh_csr(), "a"}));
  clock.advance_ms(1);
  auto late = enrollment->enroll({token->secret, fresh_csr(), "b"});
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().message, "enrollment token expired");
}

TEST_F(EnrollmentTest, UnknownTokenIsRefused) {
  auto result = enrollment->enroll({"rpe_made_up", fresh_csr(), "a"});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "unknown enrollment token");
}

TEST_F(EnrollmentTest, BadCsrDoesNotSpendAUse) {
  auto token = enrollment->create_token(1, kHour, "alice");
  EXPECT_FALSE(enrollment->enroll({token->secret, "garbage", "a"}));
  EXPECT_TRUE(enrollment->enroll({token->secret, fresh_csr(), "a"}));
}

TEST_F(EnrollmentTest, TokenLimitsAreChecked) {
  EXPECT_FALSE(enrollment->create_token(0, kHour, "alice"));
  EXPECT_FALSE(enrollment->create_token(Enrollment::kMaxUses + 1, kHour, "alice"));
  EXPECT_FALSE(enrollment->create_token(1, 0, "alice"));
  EXPECT_FALSE(enrollment->create_token(1, Enrollment::kMaxTtlMs + 1, "alice"));
}

}  // namespace
}  // namespace riposte::controller
