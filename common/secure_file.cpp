#include "common/secure_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace riposte {

namespace {
Error errno_error(std::string_view what, const std::filesystem::path& path) {
  return Error{fmt::format("{} {}: {}", what, path.string(), std::strerror(errno))};
}
}  // namespace

Status create_private_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("cannot create", path);
  // An existing file keeps its mode through O_CREAT: narrow it before anything is written.
  if (::fchmod(fd, 0600) != 0) {
    auto err = errno_error("cannot restrict", path);
    ::close(fd);
    return err;
  }
  ::close(fd);
  return ok_status();
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                         unsigned mode) {
  const auto tmp = path.string() + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return errno_error("cannot create", tmp);
  std::size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto err = errno_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return err;
    }
    written += static_cast<std::size_t>(n);
  }
  // The umask may have narrowed the mode; set exactly what was asked.
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    auto err = errno_error("cannot sync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return err;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = errno_error("cannot rename into", path);
    ::unlink(tmp.c_str());
    return err;
  }
  // Make the rename itself durable.
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok_status();
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("cannot open", path);
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return errno_error("cannot read", path);
  return out.str();
}

Status ensure_private_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{fmt::format("cannot create directory {}: {}", dir.string(), ec.message())};
  if (::chmod(dir.c_str(), 0700) != 0) return errno_error("cannot restrict permissions of", dir);
  return ok_status();
}

}  // namespace riposte
