#include "controller/operator_auth.h"

#include "protocol/crypto.h"

namespace riposte::controller {

OperatorAuth::OperatorAuth(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

Result<NewApiToken> OperatorAuth::create_token(const std::string& name, const std::string& role) {
  NewApiToken out;
  out.secret = crypto::random_token("rpt_");
  out.record = ApiTokenRecord{crypto::random_uuid(), name, role, crypto::sha256_hex(out.secret),
                              clock_.now_unix_ms()};
  if (auto s = store_.insert_api_token(out.record); !s) return s.error();
  return out;
}

Result<ApiTokenRecord> OperatorAuth::authenticate(std::string_view header) {
  constexpr std::string_view kBearer = "Bearer ";
  if (header.empty()) return Error{"missing bearer token (Authorization: Bearer <token>)"};
  if (!header.starts_with(kBearer)) return Error{"Authorization header is not a bearer token"};
  const std::string_view secret = header.substr(kBearer.size());
  if (secret.empty()) return Error{"empty bearer token"};
  auto found = store_.find_api_token(crypto::sha256_hex(secret));
  if (!found) return found.error();
  if (!found->has_value()) return Error{"invalid API token"};
  return std::move(**found);
}

}  // namespace riposte::controller
