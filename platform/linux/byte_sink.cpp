#include "platform/byte_sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace riposte::platform {

Result<std::unique_ptr<FileSink>> FileSink::create(const std::filesystem::path& path,
                                                   bool direct_io) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return Error{fmt::format("cannot create {}: {}", path.string(), std::strerror(errno))};
  // Set after creating, not at open: a filesystem that refuses O_DIRECT fails fcntl (or the
  // first write) and the file is simply written through the page cache.
  const bool direct =
      direct_io && ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_DIRECT) == 0;
  return std::unique_ptr<FileSink>(new FileSink(fd, path, direct));
}

bool FileSink::aligned(std::span<const std::uint8_t> bytes) const {
  return reinterpret_cast<std::uintptr_t>(bytes.data()) % kDirectAlignment == 0 &&
         bytes.size() % kDirectAlignment == 0 && offset_ % kDirectAlignment == 0;
}

void FileSink::stop_direct() {
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_DIRECT);
  direct_ = false;
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileSink::write(std::span<const std::uint8_t> bytes) {
  if (direct_ && !aligned(bytes)) stop_direct();
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      // A filesystem that accepted the flag but not the write: the same bytes, buffered.
      if (errno == EINVAL && direct_) {
        stop_direct();
        continue;
      }
      return Error{fmt::format("writing {}: {}", path_.string(), std::strerror(errno))};
    }
    done += static_cast<std::size_t>(n);
    offset_ += static_cast<std::uint64_t>(n);
    // A short direct write leaves the rest unaligned: finish it buffered.
    if (direct_ && done < bytes.size()) stop_direct();
  }
  return ok_status();
}

Status FileSink::finish() {
  if (::fsync(fd_) != 0)
    return Error{fmt::format("fsync {}: {}", path_.string(), std::strerror(errno))};
  ::close(fd_);
  fd_ = -1;
  return ok_status();
}

}  // namespace riposte::platform
