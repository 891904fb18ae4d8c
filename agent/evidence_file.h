#pragma once

// A ByteSink for evidence: writes a new 0600 file and computes its SHA-256 while writing, so the
// hash is known the moment the last byte is on disk, without reading the evidence back.

#include <openssl/evp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "platform/byte_sink.h"

namespace riposte::agent {

class EvidenceFile final : public platform::ByteSink {
 public:
  static Result<std::unique_ptr<EvidenceFile>> create(const std::filesystem::path& path);
  Status write(std::span<const std::uint8_t> bytes) override;
  // Flushes to disk and returns the SHA-256 (lowercase hex) of everything written.
  Result<std::string> finish();

 private:
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  EvidenceFile(std::unique_ptr<platform::FileSink> file, std::unique_ptr<EVP_MD_CTX, CtxDeleter> sha)
      : file_(std::move(file)), sha_(std::move(sha)) {}
  std::unique_ptr<platform::FileSink> file_;
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> sha_;
};

}  // namespace riposte::agent
