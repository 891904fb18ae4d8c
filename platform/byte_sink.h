#pragma once

// Where a platform action streams its output (a memory capture, a collected file). The agent
// decides what the bytes become (a file, a hash, an upload); platform code only writes them.

#include <cstdint>
#include <filesystem>
#include <span>

#include "common/result.h"

namespace riposte::platform {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status write(std::span<const std::uint8_t> bytes) = 0;
  // A sink with buffers of its own may lend the next up to `size` bytes of one, so a producer
  // reads straight into it instead of into a buffer of its own that write() then copies. The
  // producer fills a prefix and passes that prefix to write(), before asking again. An empty
  // span means "no loan": write from your own buffer.
  virtual std::span<std::uint8_t> lend(std::size_t /*size*/) { return {}; }
};

// Writes to a new file created with mode 0600 (evidence is sensitive); fsyncs on finish().
//
// With `direct_io`, the file is opened O_DIRECT where the filesystem allows it: writes whose
// address, size and file offset are multiples of kDirectAlignment go from the caller's buffer to
// the device without passing through the page cache. That costs the writer almost no CPU (the
// copy into the page cache is most of a buffered write's cost) and does not evict the host's own
// cached files to make room for hundreds of MiB of evidence. The first write that is not aligned
// (a file's tail) turns O_DIRECT off for the rest of the file; a filesystem without O_DIRECT
// (tmpfs, some FUSE) gets ordinary buffered writes. The bytes on disk are the same either way.
class FileSink final : public ByteSink {
 public:
  static constexpr std::size_t kDirectAlignment = 4096;  // bytes; covers 512 and 4K sectors

  static Result<std::unique_ptr<FileSink>> create(const std::filesystem::path& path,
                                                  bool direct_io = false);
  ~FileSink() override;
  Status write(std::span<const std::uint8_t> bytes) override;
  // Writes the pieces one after the other with one writev(2) where it can. A direct write of
  // several MiB at once reaches the device faster than the same bytes 1 MiB per call (measured
  // 0.7-1.2 GB/s at 1 MiB, 1.1-1.5 GB/s at 4 MiB on this project's CI disk), so a writer that
  // fell behind catches up with one call instead of one per buffer. Pieces must stay valid
  // until it returns; at most IOV_MAX of them.
  Status write(std::span<const std::span<const std::uint8_t>> pieces);
  Status finish();
  bool direct() const { return direct_; }  // writes still bypass the page cache

 private:
  FileSink(int fd, std::filesystem::path path, bool direct)
      : fd_(fd), path_(std::move(path)), direct_(direct) {}
  bool aligned(std::span<const std::uint8_t> bytes) const;
  void stop_direct();
  int fd_;
  std::filesystem::path path_;
  bool direct_;
  std::uint64_t offset_ = 0;  // bytes written so far
};

}  // namespace riposte::platform
