#include "agent/evidence_file.h"

#include "protocol/crypto.h"

namespace riposte::agent {

Result<std::unique_ptr<EvidenceFile>> EvidenceFile::create(const std::filesystem::path& path) {
  auto file = platform::FileSink::create(path);
  if (!file) return file.error();
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> sha(EVP_MD_CTX_new());
  if (!sha || EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) != 1) {
    return Error{"cannot start SHA-256: " + crypto::openssl_error()};
  }
  return std::unique_ptr<EvidenceFile>(new EvidenceFile(std::move(*file), std::move(sha)));
}

Status EvidenceFile::write(std::span<const std::uint8_t> bytes) {
  EVP_DigestUpdate(sha_.get(), bytes.data(), bytes.size());
  return file_->write(bytes);
}

Result<std::string> EvidenceFile::finish() {
  if (auto s = file_->finish(); !s) return s.error();
  std::uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(sha_.get(), digest, &length);
  return crypto::hex(std::span(digest, length));
}

}  // namespace riposte::agent
