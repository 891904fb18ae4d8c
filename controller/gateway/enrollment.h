#pragma once

// Enrollment: operators mint tokens; an endpoint presents a token with a CSR and receives its
// client certificate. Only a SHA-256 of each token is stored (tokens carry 256 random bits, so a
// fast hash is enough: there is nothing to brute-force, unlike a password).

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "controller/gateway/pki.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct NewEnrollmentToken {
  std::string secret;  // shown once to the operator, never stored
  EnrollmentTokenRecord record;
};

struct EnrollmentRequest {
  std::string token;
  std::string csr_pem;
  std::string hostname;  // informational until the agent's first Hello
};

struct EnrollmentGrant {
  std::string agent_id;
  std::string certificate_pem;
  std::string ca_certificate_pem;
  std::string action_public_key_pem;
};

class Enrollment {
 public:
  // A fleet is rolled out with one token per group of hosts: tens of thousands of uses.
  static constexpr int kMaxUses = 100000;
  static constexpr std::int64_t kMinTtlMs = 1000;
  static constexpr std::int64_t kMaxTtlMs = 365LL * 24 * 3600 * 1000;

  Enrollment(Store& store, const Pki& pki, const Clock& clock);

  // `labels` (already checked by the caller) are given to every agent enrolled with the token,
  // so a group of hosts can be targeted by label from its first session.
  Result<NewEnrollmentToken> create_token(int max_uses, std::int64_t ttl_ms,
                                          const std::string& created_by,
                                          std::vector<std::string> labels = {});

  // Checks the token (one use is spent only when everything else is valid), issues a certificate
  // with a new agent id, and records the agent.
  Result<EnrollmentGrant> enroll(const EnrollmentRequest& request);

 private:
  Store& store_;
  const Pki& pki_;
  const Clock& clock_;
};

}  // namespace riposte::controller
