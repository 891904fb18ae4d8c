#pragma once

// A ByteSink that only hashes: `file.hash` streams a file through it without keeping a copy.

#include <string>

#include "platform/byte_sink.h"
#include "protocol/crypto.h"

namespace riposte::agent {

class Sha256Sink final : public platform::ByteSink {
 public:
  // False if OpenSSL could not start the digest; write() then fails.
  bool ready() const { return sha_.ready(); }
  Status write(std::span<const std::uint8_t> bytes) override {
    if (!sha_.update(bytes.data(), bytes.size())) return Error{"SHA-256 update failed"};
    return ok_status();
  }
  std::string hex_digest() { return sha_.hex_digest(); }  // ends the hash

 private:
  crypto::Sha256 sha_;
};

}  // namespace riposte::agent
