#include "platform/byte_sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

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
  const std::span<const std::uint8_t> pieces[] = {bytes};
  return write(std::span<const std::span<const std::uint8_t>>(pieces));
}

Status FileSink::write(std::span<const std::span<const std::uint8_t>> pieces) {
  if (direct_ &&
      !std::all_of(pieces.begin(), pieces.end(), [&](const auto& piece) { return aligned(piece); }))
    stop_direct();
  std::vector<iovec> rest;
  rest.reserve(pieces.size());
  for (const auto& piece : pieces)
    if (!piece.empty()) rest.push_back({const_cast<std::uint8_t*>(piece.data()), piece.size()});
  std::size_t first = 0;  // rest[first..] is still to write
  while (first < rest.size()) {
    const ssize_t n = ::writev(fd_, rest.data() + first, static_cast<int>(rest.size() - first));
    if (n < 0) {
      if (errno == EINTR) continue;
      // A filesystem that accepted the flag but not the write: the same bytes, buffered.
      if (errno == EINVAL && direct_) {
        stop_direct();
        continue;
      }
      return Error{fmt::format("writing {}: {}", path_.string(), std::strerror(errno))};
    }
    offset_ += static_cast<std::uint64_t>(n);
    for (auto left = static_cast<std::size_t>(n); left > 0;) {
      const std::size_t step = std::min(left, rest[first].iov_len);
      rest[first].iov_base = static_cast<std::uint8_t*>(rest[first].iov_base) + step;
      rest[first].iov_len -= step;
      left -= step;
      if (rest[first].iov_len == 0) ++first;
    }
    // A short direct write leaves the rest unaligned: finish it buffered.
    if (direct_ && first < rest.size()) stop_direct();
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
