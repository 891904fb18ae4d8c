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
};

// Writes to a new file created with mode 0600 (evidence is sensitive); fsyncs on finish().
class FileSink final : public ByteSink {
 public:
  static Result<std::unique_ptr<FileSink>> create(const std::filesystem::path& path);
  ~FileSink() override;
  Status write(std::span<const std::uint8_t> bytes) override;
  Status finish();

 private:
  explicit FileSink(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::filesystem::path path_;
};

}  // namespace riposte::platform
