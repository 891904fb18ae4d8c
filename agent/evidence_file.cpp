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

EvidenceFile::EvidenceFile(std::unique_ptr<platform::FileSink> file,
                           std::unique_ptr<EVP_MD_CTX, CtxDeleter> sha)
    : file_(std::move(file)), sha_(std::move(sha)), worker_([this] { drain(); }) {}

EvidenceFile::~EvidenceFile() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Status EvidenceFile::write(std::span<const std::uint8_t> bytes) {
  if (auto s = file_->write(bytes); !s) return s;
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return queue_.size() < kMaxQueued; });
  std::vector<std::uint8_t> chunk;
  if (!spare_.empty()) {
    chunk = std::move(spare_.back());
    spare_.pop_back();
  }
  chunk.assign(bytes.begin(), bytes.end());
  queue_.push_back(std::move(chunk));
  lock.unlock();
  changed_.notify_all();
  return ok_status();
}

void EvidenceFile::drain() {
  for (;;) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !queue_.empty() || closing_; });
    if (queue_.empty()) return;
    auto chunk = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    changed_.notify_all();
    EVP_DigestUpdate(sha_.get(), chunk.data(), chunk.size());
    lock.lock();
    spare_.push_back(std::move(chunk));
  }
}

Result<std::string> EvidenceFile::finish() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (auto s = file_->finish(); !s) return s.error();
  std::uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(sha_.get(), digest, &length);
  return crypto::hex(std::span(digest, length));
}

}  // namespace riposte::agent
