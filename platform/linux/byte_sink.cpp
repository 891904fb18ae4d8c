#include "platform/byte_sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace riposte::platform {

Result<std::unique_ptr<FileSink>> FileSink::create(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return Error{fmt::format("cannot create {}: {}", path.string(), std::strerror(errno))};
  return std::unique_ptr<FileSink>(new FileSink(fd, path));
}

FileSink::~FileSink() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileSink::write(std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{fmt::format("writing {}: {}", path_.string(), std::strerror(errno))};
    }
    done += static_cast<std::size_t>(n);
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
