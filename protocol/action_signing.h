#pragma once

// Signing and verifying response actions. The controller serializes an ActionSpec
// deterministically and signs exactly those bytes with its Ed25519 action key; the agent checks
// the signature over the bytes it received before parsing them, so nothing unsigned is ever
// interpreted.

#include <openssl/evp.h>

#include <vector>

#include "common/result.h"
#include "protocol/agent_channel.pb.h"

namespace riposte {

// Deterministic bytes of `spec` (map fields ordered), the form that is signed and stored.
std::string serialize_action_spec(const proto::ActionSpec& spec);

Result<proto::ActionRequest> sign_action(const proto::ActionSpec& spec, EVP_PKEY* action_key);
// sign_action for each spec, in order; the first error if any fails. A fan-out signs tens of
// thousands (one Ed25519 signature is 50-80 us of one core): past a few hundred specs the work
// is split over the machine's cores. The key is only read; each signature has its own context
// (openssl-threads(7): an EVP_PKEY may be used by several threads at once).
Result<std::vector<proto::ActionRequest>> sign_actions(const std::vector<proto::ActionSpec>& specs,
                                                       EVP_PKEY* action_key);

// Checks the signature over `request.action_spec` with the pinned public key, then parses it.
// Errors: "bad signature" (tampered, or signed by another key) or "malformed action".
Result<proto::ActionSpec> verify_action(const proto::ActionRequest& request,
                                        EVP_PKEY* action_public_key);

}  // namespace riposte
