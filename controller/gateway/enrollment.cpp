#include "controller/gateway/enrollment.h"

#include <fmt/format.h>

#include "protocol/crypto.h"

namespace riposte::controller {

Enrollment::Enrollment(Store& store, const Pki& pki, const Clock& clock)
    : store_(store), pki_(pki), clock_(clock) {}

Result<NewEnrollmentToken> Enrollment::create_token(int max_uses, std::int64_t ttl_ms,
                                                    const std::string& created_by,
                                                    std::vector<std::string> labels) {
  if (max_uses < 1 || max_uses > kMaxUses) {
    return Error{fmt::format("uses must be between 1 and {}", kMaxUses)};
  }
  if (ttl_ms < kMinTtlMs || ttl_ms > kMaxTtlMs) {
    return Error{"ttl must be between 1 second and 365 days"};
  }
  NewEnrollmentToken out;
  out.secret = crypto::random_token("rpe_");
  const auto now = clock_.now_unix_ms();
  out.record = EnrollmentTokenRecord{crypto::random_uuid(),
                                     crypto::sha256_hex(out.secret),
                                     now,
                                     now + ttl_ms,
                                     max_uses,
                                     0,
                                     created_by,
                                     std::move(labels)};
  if (auto s = store_.insert_enrollment_token(out.record); !s) return s.error();
  return out;
}

Result<EnrollmentGrant> Enrollment::enroll(const EnrollmentRequest& request) {
  if (request.token.empty()) return Error{"enrollment token missing"};
  if (request.csr_pem.empty()) return Error{"CSR missing"};
  if (request.hostname.size() > 255) return Error{"hostname longer than 255 characters"};
  // Validate the CSR before spending a use of the token, so a broken client does not burn it.
  const std::string agent_id = crypto::random_uuid();
  auto issued = pki_.issue_agent_certificate(request.csr_pem, agent_id);
  if (!issued) return issued.error();
  auto token =
      store_.consume_enrollment_token(crypto::sha256_hex(request.token), clock_.now_unix_ms());
  if (!token) return token.error();

  AgentRecord agent;
  agent.id = agent_id;
  agent.facts.hostname = request.hostname;
  agent.cert_serial = issued->serial_hex;
  agent.cert_fingerprint = issued->fingerprint;
  agent.enrolled_at_ms = clock_.now_unix_ms();
  agent.labels = token->labels;
  if (auto s = store_.insert_agent(agent); !s) return s.error();
  return EnrollmentGrant{agent_id, issued->certificate_pem, pki_.ca_certificate_pem(),
                         pki_.action_public_key_pem()};
}

}  // namespace riposte::controller
