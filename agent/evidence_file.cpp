#include "agent/evidence_file.h"

#include "protocol/crypto.h"

namespace riposte::agent {

Result<std::unique_ptr<EvidenceFile>> EvidenceFile::create(const std::filesystem::path& path) {
  auto file = platform::FileSink::create(path);
  if (!file) return file.error();
  std::unique_ptr<EvidenceFile> evidence(new EvidenceFile(std::move(*file)));
  if (!evidence->sha_.ready()) return Error{"cannot start SHA-256: " + crypto::openssl_error()};
  return evidence;
}

EvidenceFile::EvidenceFile(std::unique_ptr<platform::FileSink> file)
    : file_(std::move(file)), worker_([this] { drain(); }) {}

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
    (void)sha_.write(chunk);  // cannot fail once started
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
  return sha_.hex_digest();
}

}  // namespace riposte::agent
