#include "agent/sha256_sink.h"

#include "protocol/crypto.h"

namespace riposte::agent {

Sha256Sink::Sha256Sink()
    : ctx_(EVP_MD_CTX_new()),
      ready_(ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1) {}

Status Sha256Sink::write(std::span<const std::uint8_t> bytes) {
  if (!ready_ || EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) != 1) {
    return Error{"SHA-256 update failed"};
  }
  return ok_status();
}

std::string Sha256Sink::hex_digest() {
  std::uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest, &length);
  return crypto::hex(std::span(digest, length));
}

}  // namespace riposte::agent
