#include "platform/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace riposte::platform {

namespace {

namespace fs = std::filesystem;

Error errno_error(std::string_view what, const fs::path& path) {
  return Error{fmt::format("{} {}: {}", what, path.string(), std::strerror(errno))};
}

FileInfo info_from(const fs::path& path, const struct stat& st) {
  return FileInfo{
      path.string(),
      static_cast<std::uint64_t>(st.st_size),
      static_cast<unsigned>(st.st_mode & 07777),
      st.st_uid,
      st.st_gid,
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000};
}

Result<FileInfo> regular_file_info(int fd, const fs::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("cannot stat", path);
  if (!S_ISREG(st.st_mode)) return Error{fmt::format("{} is not a regular file", path.string())};
  return info_from(path, st);
}

// Copies src to dst (new file, 0600), fsynced: for moves across filesystems.
Status copy_file(int src, const fs::path& dst) {
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) return errno_error("cannot create", dst);
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t n = ::read(src, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (n > 0 && ::write(out, buffer.data(), static_cast<std::size_t>(n)) != n)) {
      ::close(out);
      ::unlink(dst.c_str());
      return errno_error("cannot copy into", dst);
    }
    if (n == 0) break;
  }
  const bool synced = ::fsync(out) == 0;
  ::close(out);
  if (!synced) return errno_error("cannot sync", dst);
  return ok_status();
}

// rename(2) when on one filesystem; otherwise copy, sync, then unlink the source.
Status move_file(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return ok_status();
  if (errno != EXDEV) return errno_error("cannot move", from);
  const int src = ::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (src < 0) return errno_error("cannot open", from);
  auto copied = copy_file(src, to);
  ::close(src);
  if (!copied) return copied;
  if (::unlink(from.c_str()) != 0) return errno_error("copied but cannot remove", from);
  return ok_status();
}

class LinuxFiles final : public Files {
 public:
  Result<FileInfo> inspect(const fs::path& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return errno_error("cannot open", path);
    auto info = regular_file_info(fd, path);
    ::close(fd);
    return info;
  }

  Result<FileInfo> stream(const fs::path& path, ByteSink& out, std::uint64_t max_bytes) override {
    // O_NONBLOCK keeps a FIFO from blocking the open; fstat then refuses it.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return errno_error("cannot open", path);
    auto info = regular_file_info(fd, path);
    if (info && max_bytes != 0 && info->size > max_bytes) {
      info = Error{fmt::format("{} is {} bytes, above the limit of {}", path.string(), info->size,
                               max_bytes)};
    }
    std::vector<std::uint8_t> buffer(1 << 20);
    std::uint64_t total = 0;
    while (info) {
      const ssize_t n = ::read(fd, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        info = errno_error("cannot read", path);
        break;
      }
      if (n == 0) break;
      total += static_cast<std::uint64_t>(n);
      if (auto s = out.write(std::span(buffer.data(), static_cast<std::size_t>(n))); !s)
        info = s.error();
    }
    ::close(fd);
    if (info) info->size = total;  // what was actually read, should the file have changed
    return info;
  }

  Result<VaultEntry> quarantine(const fs::path& path, const fs::path& vault,
                                const std::string& id) override {
    if (id.empty() || id.find('/') != std::string::npos || id == "." || id == "..") {
      return Error{fmt::format("'{}' is not a valid vault id", id)};
    }
    auto info = inspect(path);
    if (!info) return info.error();
    std::error_code ec;
    fs::create_directories(vault, ec);
    if (ec || ::chmod(vault.c_str(), 0700) != 0)
      return Error{fmt::format("cannot prepare vault {}", vault.string())};
    const auto target = vault / id;
    if (fs::exists(target, ec)) return Error{fmt::format("vault already holds {}", id)};
    VaultEntry entry{id, *info};
    entry.original.path = fs::absolute(path).lexically_normal().string();
    if (auto s = move_file(path, target); !s) return s.error();
    // Inert in the vault: root-owned, no permissions; restore() gives back owner and mode.
    if (::chown(target.c_str(), 0, 0) != 0 || ::chmod(target.c_str(), 0) != 0) {
      return errno_error("cannot lock down", target);
    }
    return entry;
  }

  Status restore(const VaultEntry& entry, const fs::path& vault) override {
    const auto source = vault / entry.id;
    const fs::path original = entry.original.path;
    std::error_code ec;
    if (fs::exists(original, ec)) {
      return Error{fmt::format("{} exists again; not overwriting it", original.string())};
    }
    if (!fs::exists(original.parent_path(), ec)) {
      return Error{fmt::format("{} no longer exists", original.parent_path().string())};
    }
    if (auto s = move_file(source, original); !s) return s;
    if (::chown(original.c_str(), entry.original.uid, entry.original.gid) != 0 ||
        ::chmod(original.c_str(), entry.original.mode) != 0) {
      return errno_error("restored but cannot reset owner and mode of", original);
    }
    return ok_status();
  }
};

}  // namespace

std::unique_ptr<Files> make_files() { return std::make_unique<LinuxFiles>(); }

}  // namespace riposte::platform
