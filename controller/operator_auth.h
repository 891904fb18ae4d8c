#pragma once

// Operator API tokens: random secrets bound to a role, stored only as SHA-256 hashes.

#include <string>
#include <string_view>

#include "controller/store.h"
#include "protocol/clock.h"

namespace riposte::controller {

struct NewApiToken {
  std::string secret;  // shown once
  ApiTokenRecord record;
};

class OperatorAuth {
 public:
  OperatorAuth(Store& store, const Clock& clock);

  Result<NewApiToken> create_token(const std::string& name, const std::string& role);

  // From an "Authorization" header value; errors say what is wrong without echoing the secret.
  Result<ApiTokenRecord> authenticate(std::string_view authorization_header);

 private:
  Store& store_;
  const Clock& clock_;
};

}  // namespace riposte::controller
