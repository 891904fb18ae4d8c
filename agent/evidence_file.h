#pragma once

// A ByteSink for evidence: writes a new 0600 file and computes its SHA-256 while writing, so the
// hash is known the moment the last byte is on disk, without reading the evidence back.
// Hashing runs on a worker thread over a copy of each chunk, so on two cores the producer (a memory
// capture reading the target) and the file write proceed while the other core hashes.

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/sha256_sink.h"
#include "platform/byte_sink.h"

namespace riposte::agent {

class EvidenceFile final : public platform::ByteSink {
 public:
  static Result<std::unique_ptr<EvidenceFile>> create(const std::filesystem::path& path);
  ~EvidenceFile() override;
  // Writes `bytes` to the file and queues a copy for hashing.
  Status write(std::span<const std::uint8_t> bytes) override;
  // Waits for queued bytes, flushes to disk and returns the SHA-256 (lowercase hex).
  Result<std::string> finish();

 private:
  explicit EvidenceFile(std::unique_ptr<platform::FileSink> file);
  void drain();

  static constexpr std::size_t kMaxQueued = 8;  // bounds memory: at most this many chunks waiting

  std::unique_ptr<platform::FileSink> file_;
  Sha256Sink sha_;  // fed only by the worker thread
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<std::uint8_t>> queue_;
  std::vector<std::vector<std::uint8_t>> spare_;  // recycled buffers, no allocation per chunk
  bool closing_ = false;
  std::thread worker_;
};

}  // namespace riposte::agent
