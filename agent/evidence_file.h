#pragma once

// A ByteSink for evidence: writes a new 0600 file and computes its SHA-256 while writing, so the
// hash is known the moment the last byte is on disk, without reading the evidence back.
//
// The producer (a memory capture reading its target, a file being collected) only copies its
// bytes into one of a few 1 MiB page-aligned buffers. Two worker threads take each full buffer in
// order: one hashes it, one writes it to the file with O_DIRECT (platform::FileSink), and the
// buffer is reused once both are done. On two cores the hash — SHA-256 is the one step that needs
// a whole core — runs beside the read and the disk write instead of after them, and the write
// costs almost no CPU because it does not copy into the page cache. At most kBuffers MiB are held.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
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
  // Copies `bytes` into the current buffer; a full buffer goes to the hasher and the writer.
  // Fails once an earlier write to the file has failed (the writer works behind the producer).
  Status write(std::span<const std::uint8_t> bytes) override;
  // The rest of the current buffer (at most `size` bytes); write() of a prefix of it copies nothing.
  std::span<std::uint8_t> lend(std::size_t size) override;
  // Waits for queued bytes, flushes to disk and returns the SHA-256 (lowercase hex).
  Result<std::string> finish();

 private:
  static constexpr std::size_t kBufferSize = 1 << 20;  // a multiple of FileSink::kDirectAlignment
  static constexpr std::size_t kBuffers = 8;

  struct Buffer {
    std::uint8_t* data = nullptr;  // kBufferSize bytes, aligned for O_DIRECT
    std::size_t size = 0;          // bytes filled
    int users = 0;                 // workers that have not finished with it
  };
  struct AlignedFree {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };

  explicit EvidenceFile(std::unique_ptr<platform::FileSink> file);
  // Hands the current buffer (if it holds bytes) to both workers.
  void submit(std::unique_lock<std::mutex>& lock);
  // Waits for a free buffer and makes it current; false when no buffer could be allocated.
  bool take_buffer(std::unique_lock<std::mutex>& lock);
  void release(std::size_t index);
  void hash_loop();
  void write_loop();
  void stop_workers();

  std::unique_ptr<platform::FileSink> file_;
  Sha256Sink sha_;  // fed only by the hashing thread
  std::vector<std::unique_ptr<std::uint8_t, AlignedFree>> memory_;
  std::vector<Buffer> buffers_;
  std::vector<std::size_t> free_;
  std::optional<std::size_t> current_;  // the buffer write() fills, owned by the producer
  std::deque<std::size_t> to_hash_;
  std::deque<std::size_t> to_write_;
  std::optional<Error> write_error_;
  bool closing_ = false;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread hasher_;
  std::thread writer_;
};

}  // namespace riposte::agent
