#pragma once

// A ByteSink that only hashes: `file.hash` streams a file through it without keeping a copy.

#include <openssl/evp.h>

#include <memory>
#include <string>

#include "platform/byte_sink.h"

namespace riposte::agent {

class Sha256Sink final : public platform::ByteSink {
 public:
  Sha256Sink();
  // False if OpenSSL could not start the digest; write() then fails.
  bool ready() const { return ready_; }
  Status write(std::span<const std::uint8_t> bytes) override;
  std::string hex_digest();  // ends the hash

 private:
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx_;
  bool ready_ = false;
};

}  // namespace riposte::agent
