// Signing a fan-out: sign_actions spreads the specs over threads and must give each spec its own
// signature, in order, exactly as sign_action would (Ed25519 is deterministic).
#include "protocol/action_signing.h"

#include <gtest/gtest.h>

#include "protocol/crypto.h"

namespace riposte {
namespace {

proto::ActionSpec spec_for(int i) {
  proto::ActionSpec spec;
  spec.set_action_id("action-" + std::to_string(i));
  spec.set_target_agent_id("agent-" + std::to_string(i));
  spec.set_kind("network.status");
  spec.set_issued_at_unix_ms(1'700'000'000'000);
  spec.set_expires_at_unix_ms(1'700'000'600'000);
  return spec;
}

TEST(ActionSigning, AFanOutIsSignedInOrderAndEveryAgentCanVerifyItsOwn) {
  auto key = crypto::generate_ed25519().value();
  std::vector<proto::ActionSpec> specs;
  for (int i = 0; i < 1500; ++i) specs.push_back(spec_for(i));
  auto signed_requests = sign_actions(specs, key.get());
  ASSERT_TRUE(signed_requests) << signed_requests.error().message;
  ASSERT_EQ(signed_requests->size(), specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& request = (*signed_requests)[i];
    auto verified = verify_action(request, key.get());
    ASSERT_TRUE(verified) << i;
    EXPECT_EQ(verified->target_agent_id(), specs[i].target_agent_id());
    EXPECT_EQ(request.signature(), sign_action(specs[i], key.get())->signature()) << i;
  }
  EXPECT_TRUE(sign_actions({}, key.get()).value().empty());
}

TEST(ActionSigning, AKeyThatCannotSignFailsTheWholeFanOut) {
  crypto::PkeyPtr x25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  ASSERT_TRUE(x25519);
  std::vector<proto::ActionSpec> specs;
  for (int i = 0; i < 600; ++i) specs.push_back(spec_for(i));
  EXPECT_FALSE(sign_actions(specs, x25519.get()));
}

}  // namespace
}  // namespace riposte
