#include "platform/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <vector>

#include "platform/linux/procfs.h"

namespace riposte::platform {

namespace {

namespace fs = std::filesystem;
using linux_impl::Fd;

Error errno_error(std::string_view what, const fs::path& path) {
  return Error{fmt::format("{} {}: {}", what, path.string(), std::strerror(errno))};
}

FileInfo info_from(const fs::path& path, const fs::path& resolved, const struct stat& st) {
  return FileInfo{
      path.string(),
      resolved.string(),
      static_cast<std::uint64_t>(st.st_size),
      static_cast<unsigned>(st.st_mode & 07777),
      st.st_uid,
      st.st_gid,
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000};
}

// The directory a path's last component lives in, reached safely, and that component's name.
struct Parent {
  Fd dir;             // O_PATH
  fs::path resolved;  // the directory's real path
  std::string name;

  fs::path resolved_file() const { return resolved / name; }
};

constexpr int kMaxLinks = 40;  // as the kernel's own limit (MAXSYMLINKS)

// Walks `path`'s directories from "/" (see files.h): each component opened with O_NOFOLLOW
// relative to the directory before it; a symlink followed only when root placed it where only
// root can write. With `root` (an O_PATH directory: a process's /proc/PID/root), the walk starts
// there and never leaves it: absolute link targets restart from it and ".." at it stays, as the
// kernel resolves paths for a process whose root that is.
Result<Parent> open_parent(const fs::path& path, int root = -1,
                           const linux_impl::Credentials* as = nullptr) {
  if (!path.is_absolute()) {
    return Error{fmt::format("{} is not an absolute path", path.string())};
  }
  const auto name = path.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return Error{fmt::format("{} does not name a file", path.string())};
  }
  std::deque<std::string> todo;
  for (const auto& part : path.parent_path().relative_path()) todo.push_back(part.string());
  const auto open_root = [root] {
    return Fd(root >= 0 ? ::fcntl(root, F_DUPFD_CLOEXEC, 0)
                        : ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  };
  Fd dir = open_root();
  if (!dir.valid()) return errno_error("cannot open", "/");
  fs::path resolved = "/";
  int links = 0;
  // Reading for a process (`as`): every directory walked must be searchable with its credentials.
  const auto searchable = [&]() -> Status {
    if (as == nullptr) return ok_status();
    struct stat here {};
    if (::fstat(dir.get(), &here) != 0) return errno_error("cannot stat", resolved);
    if (!as->may(here, 1)) {
      return Error{fmt::format("refused: {} is not searchable by uid {}, for whom it is read",
                               resolved.string(), as->uid)};
    }
    return ok_status();
  };
  while (!todo.empty()) {
    const std::string part = std::move(todo.front());
    todo.pop_front();
    if (part.empty() || part == ".") continue;
    if (part == ".." && resolved == "/") continue;  // the root's parent is the root
    if (auto s = searchable(); !s) return s.error();
    Fd next(::openat(dir.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.valid()) {
      dir = std::move(next);
      resolved = part == ".." ? resolved.parent_path() : resolved / part;
      continue;
    }
    const fs::path here = resolved / part;
    if (errno != ENOTDIR && errno != ELOOP) return errno_error("cannot open directory", here);
    struct stat link_st {};
    if (::fstatat(dir.get(), part.c_str(), &link_st, AT_SYMLINK_NOFOLLOW) != 0)
      return errno_error("cannot stat", here);
    if (!S_ISLNK(link_st.st_mode))
      return Error{fmt::format("{} is not a directory", here.string())};
    struct stat container {};
    if (::fstat(dir.get(), &container) != 0) return errno_error("cannot stat", resolved);
    // /proc's links (/proc/PID/root, /proc/PID/cwd, /proc/self) are magic: their text means
    // something in another process's namespace, not in the agent's. Never walked as text.
    struct statfs fs_info {};
    if (::fstatfs(dir.get(), &fs_info) == 0 && fs_info.f_type == PROC_SUPER_MAGIC) {
      return Error{fmt::format(
          "refused: {} is a /proc link, which names a path in another process's view of the "
          "files; for a process's executable, use `process: {{pid, start_ticks}}`",
          here.string())};
    }
    if (link_st.st_uid != 0) {
      return Error{fmt::format(
          "refused: {} is a symbolic link owned by uid {}, not root; the agent does not follow "
          "links a user could have placed (nothing was read or changed)",
          here.string(), link_st.st_uid)};
    }
    if (container.st_uid != 0 || (container.st_mode & 022) != 0) {
      return Error{fmt::format(
          "refused: {} is a symbolic link in {}, which a user other than root can write; the "
          "agent does not follow links a user could have placed (nothing was read or changed)",
          here.string(), resolved.string())};
    }
    if (++links > kMaxLinks) {
      return Error{fmt::format("too many symbolic links resolving {}", path.string())};
    }
    std::string target(PATH_MAX, '\0');
    const ssize_t n = ::readlinkat(dir.get(), part.c_str(), target.data(), target.size());
    if (n < 0) return errno_error("cannot read link", here);
    target.resize(static_cast<std::size_t>(n));
    const fs::path target_path(target);
    std::vector<std::string> parts;
    for (const auto& p : target_path.relative_path()) parts.push_back(p.string());
    todo.insert(todo.begin(), parts.begin(), parts.end());
    if (target_path.is_absolute()) {
      dir = open_root();
      if (!dir.valid()) return errno_error("cannot open", "/");
      resolved = "/";
    }
  }
  if (auto s = searchable(); !s) return s.error();
  return Parent{std::move(dir), resolved, name};
}

// Opens the regular file `path` names (safely, never following its last component).
struct OpenFile {
  Fd fd;
  FileInfo info;
};

Result<OpenFile> open_regular(const fs::path& path, const Parent& parent) {
  Fd fd(::openat(parent.dir.get(), parent.name.c_str(),
                 O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ELOOP) {
      return Error{fmt::format("refused: {} is a symbolic link; not followed", path.string())};
    }
    return errno_error("cannot open", path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat", path);
  if (!S_ISREG(st.st_mode)) return Error{fmt::format("{} is not a regular file", path.string())};
  return OpenFile{std::move(fd), info_from(path, parent.resolved_file(), st)};
}

// Copies `src` into a new file `name` in `dir` (0600, fsynced): for moves across filesystems.
// Returns the new file, open.
Result<Fd> copy_into(int src, int dir, const std::string& name, const fs::path& shown) {
  Fd out(::openat(dir, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return errno_error("cannot create", shown);
  std::vector<char> buffer(1 << 20);
  if (::lseek(src, 0, SEEK_SET) < 0) return errno_error("cannot rewind", shown);
  for (;;) {
    const ssize_t n = ::read(src, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (n > 0 && ::write(out.get(), buffer.data(), static_cast<std::size_t>(n)) != n)) {
      ::unlinkat(dir, name.c_str(), 0);
      return errno_error("cannot copy into", shown);
    }
    if (n == 0) break;
  }
  if (::fsync(out.get()) != 0) return errno_error("cannot sync", shown);
  return out;
}

bool same_inode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Moves the file open as `src` from `from_name` in `from_dir` to `to_name` in `to_dir`, never
// replacing what is there: renameat2(RENAME_NOREPLACE) on one filesystem, else copy, sync, then
// unlink the source. Either way the name must still be `src` when it is moved or unlinked (a
// user who can write `from_dir` may have swapped it since it was opened). Returns the file at
// its new place, open, for owner and mode to be set through the descriptor.
Result<Fd> move_open_file(Fd src, int from_dir, const std::string& from_name, int to_dir,
                          const std::string& to_name, const fs::path& shown) {
  struct stat opened {
  }, named{};
  if (::fstat(src.get(), &opened) != 0) return errno_error("cannot stat", shown);
  const auto still_there = [&] {
    return ::fstatat(from_dir, from_name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
           same_inode(opened, named);
  };
  if (!still_there())
    return Error{fmt::format("{} changed while it was being moved", shown.string())};
  if (::renameat2(from_dir, from_name.c_str(), to_dir, to_name.c_str(), RENAME_NOREPLACE) == 0) {
    struct stat moved {};
    if (::fstatat(to_dir, to_name.c_str(), &moved, AT_SYMLINK_NOFOLLOW) != 0 ||
        !same_inode(opened, moved)) {
      // Swapped between the check and the rename: put back what was moved, refuse.
      ::renameat2(to_dir, to_name.c_str(), from_dir, from_name.c_str(), RENAME_NOREPLACE);
      return Error{
          fmt::format("{} changed while it was being moved; nothing was moved", shown.string())};
    }
    return src;
  }
  if (errno != EXDEV) return errno_error("cannot move", shown);
  auto copy = copy_into(src.get(), to_dir, to_name, shown);
  if (!copy) return copy.error();
  if (!still_there() || ::unlinkat(from_dir, from_name.c_str(), 0) != 0) {
    ::unlinkat(to_dir, to_name.c_str(), 0);
    return Error{
        fmt::format("{} changed while it was being copied, or cannot be removed; "
                    "nothing was moved",
                    shown.string())};
  }
  return copy;
}

// The vault is the agent's own directory in its state directory: opened directly.
Result<Fd> open_vault(const fs::path& vault) {
  std::error_code ec;
  fs::create_directories(vault, ec);
  if (ec || ::chmod(vault.c_str(), 0700) != 0)
    return Error{fmt::format("cannot prepare vault {}", vault.string())};
  Fd fd(::open(vault.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno_error("cannot open vault", vault);
  return fd;
}

bool exists_at(int dir, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

// Streams an open regular file described by `info` into `out`: at most the size it had when it
// was opened (`info.size`), so a file that keeps growing (`yes >> f`) can neither fill the
// evidence spool past its limit nor hold an action thread forever; the hash is of those bytes.
Result<FileInfo> stream_open(int fd, FileInfo info, ByteSink& out, std::uint64_t max_bytes) {
  if (max_bytes != 0 && info.size > max_bytes) {
    return Error{
        fmt::format("{} is {} bytes, above the limit of {}", info.path, info.size, max_bytes)};
  }
  std::vector<std::uint8_t> buffer(1 << 20);
  std::uint64_t total = 0;
  while (total < info.size) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), info.size - total));
    const ssize_t n = ::read(fd, buffer.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read", info.path);
    if (n == 0) break;  // shrank while being read
    total += static_cast<std::uint64_t>(n);
    if (auto s = out.write(std::span(buffer.data(), static_cast<std::size_t>(n))); !s)
      return s.error();
  }
  info.size = total;  // what was actually read, should the file have shrunk
  return info;
}

class LinuxFiles final : public Files {
 public:
  Result<FileInfo> inspect(const fs::path& path) override {
    auto parent = open_parent(path);
    if (!parent) return parent.error();
    auto file = open_regular(path, *parent);
    if (!file) return file.error();
    return file->info;
  }

  Result<FileInfo> stream(const fs::path& path, ByteSink& out, std::uint64_t max_bytes) override {
    auto parent = open_parent(path);
    if (!parent) return parent.error();
    // O_NONBLOCK keeps a FIFO from blocking the open; fstat then refuses it.
    auto file = open_regular(path, *parent);
    if (!file) return file.error();
    return stream_open(file->fd.get(), file->info, out, max_bytes);
  }

  Result<FileInfo> stream_executable(const ProcessRef& process, ByteSink& out,
                                     std::uint64_t max_bytes) override {
    auto pidfd = linux_impl::open_verified(process);
    if (!pidfd) return pidfd.error();
    const auto link = fmt::format("/proc/{}/exe", process.pid);
    // Opening the magic link reaches the inode the process runs, wherever its mount namespace
    // puts it and whether or not it still has a name.
    Fd fd(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open the executable of", link);
    const auto exe = linux_impl::read_exe_link(process.pid);
    // The pid could have been reused between the check and the open: check again.
    const auto stat = linux_impl::read_stat(process.pid);
    if (!stat || stat->start_ticks != process.start_ticks) {
      return Error{fmt::format("process {} exited while its executable was opened", process.pid)};
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat", link);
    if (!S_ISREG(st.st_mode)) return Error{fmt::format("{} is not a regular file", link)};
    auto info = info_from(exe.path, link, st);
    info.deleted = exe.deleted;
    info.mount_namespace = linux_impl::namespace_of(process.pid, "mnt");
    info.pid_namespace = linux_impl::namespace_of(process.pid, "pid");
    return stream_open(fd.get(), info, out, max_bytes);
  }

  Result<FileInfo> stream_script(const ProcessRef& process, ByteSink& out,
                                 std::uint64_t max_bytes) override {
    auto pidfd = linux_impl::open_verified(process);
    if (!pidfd) return pidfd.error();
    const auto exe = linux_impl::read_exe_link(process.pid);
    auto cmdline = linux_impl::read_proc_file(fmt::format("/proc/{}/cmdline", process.pid));
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    const auto script_path = linux_impl::script_of(process.pid, exe.path, cmdline).path;
    if (script_path.empty()) {
      return Error{fmt::format(
          "process {} ({}) runs no script file: no argument of its command line is a file it "
          "holds open, nor one a known interpreter names (its code may be inline or come from "
          "standard input)",
          process.pid, exe.path.empty() ? "executable unreadable" : exe.path)};
    }
    // The script as the process sees it: walked from its root (a container's files, not the
    // host's at the same path), with the same link rules as any path.
    const auto root_link = fmt::format("/proc/{}/root", process.pid);
    Fd root(::open(root_link.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) return errno_error("cannot open the root of", root_link);
    const auto stat = linux_impl::read_stat(process.pid);
    if (!stat || stat->start_ticks != process.start_ticks) {
      return Error{fmt::format("process {} exited while its script was opened", process.pid)};
    }
    const fs::path script(script_path);
    // The command line is the process's own claim: a user can run `tail -F /etc/shadow` under a
    // file named `sh`. The agent reads, as root, only what that process could read itself:
    // every directory on the way searchable and the file readable with its credentials.
    const auto creds = linux_impl::credentials_of(process.pid);
    if (!creds) return creds.error();
    auto parent = open_parent(script, root.get(), &*creds);
    if (!parent) return parent.error();
    auto file = open_regular(script, *parent);
    if (!file) return file.error();
    struct stat st {};
    if (::fstat(file->fd.get(), &st) != 0) return errno_error("cannot stat", script);
    if (!creds->may(st, 4)) {
      return Error{fmt::format(
          "refused: {} is not readable by process {} (uid {}), which names it as its script; "
          "the agent reads only what the process itself could",
          script.string(), process.pid, creds->uid)};
    }
    file->info.mount_namespace = linux_impl::namespace_of(process.pid, "mnt");
    file->info.pid_namespace = linux_impl::namespace_of(process.pid, "pid");
    file->info.interpreter = exe.path;
    return stream_open(file->fd.get(), file->info, out, max_bytes);
  }

  Result<VaultEntry> quarantine(const fs::path& path, const fs::path& vault, const std::string& id,
                                ByteSink* contents) override {
    if (id.empty() || id.find('/') != std::string::npos || id == "." || id == "..") {
      return Error{fmt::format("'{}' is not a valid vault id", id)};
    }
    auto parent = open_parent(path);
    if (!parent) return parent.error();
    auto file = open_regular(path, *parent);
    if (!file) return file.error();
    auto vault_dir = open_vault(vault);
    if (!vault_dir) return vault_dir.error();
    if (exists_at(vault_dir->get(), id)) return Error{fmt::format("vault already holds {}", id)};
    VaultEntry entry{id, file->info};
    if (contents != nullptr) {
      // The bytes of the very file that goes into the vault (hashed through its descriptor): a
      // second open by path could meet a decoy put there in between.
      auto streamed = stream_open(file->fd.get(), file->info, *contents, 0);
      if (!streamed) return streamed.error();
      entry.original.size = streamed->size;
    }
    auto moved = move_open_file(std::move(file->fd), parent->dir.get(), parent->name,
                                vault_dir->get(), id, path);
    if (!moved) return moved.error();
    // Inert in the vault: root-owned, no permissions; restore() gives back owner and mode.
    if (::fchown(moved->get(), 0, 0) != 0 || ::fchmod(moved->get(), 0) != 0) {
      return errno_error("cannot lock down", vault / id);
    }
    return entry;
  }

  Result<FileInfo> restore(const VaultEntry& entry, const fs::path& vault,
                           bool keep_setid) override {
    const fs::path original =
        entry.original.resolved_path.empty() ? entry.original.path : entry.original.resolved_path;
    auto parent = open_parent(original);
    if (!parent) {
      return Error{
          fmt::format("cannot restore to {}: {}", original.string(), parent.error().message)};
    }
    if (exists_at(parent->dir.get(), parent->name)) {
      return Error{fmt::format("{} exists again; not overwriting it", original.string())};
    }
    Fd vault_dir(::open(vault.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!vault_dir.valid()) return errno_error("cannot open vault", vault);
    Fd vaulted(::openat(vault_dir.get(), entry.id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!vaulted.valid()) return errno_error("cannot open", vault / entry.id);
    auto restored = move_open_file(std::move(vaulted), vault_dir.get(), entry.id, parent->dir.get(),
                                   parent->name, original);
    if (!restored) return restored.error();
    // Owner and mode on the file just put there, through its descriptor (chown drops setuid
    // bits, so the mode comes after it).
    const unsigned mode = keep_setid ? entry.original.mode : entry.original.mode & ~06000u;
    if (::fchown(restored->get(), entry.original.uid, entry.original.gid) != 0 ||
        ::fchmod(restored->get(), mode) != 0) {
      return errno_error("restored but cannot reset owner and mode of", original);
    }
    struct stat st {};
    if (::fstat(restored->get(), &st) != 0) return errno_error("cannot stat", original);
    return info_from(entry.original.path, parent->resolved_file(), st);
  }
};

}  // namespace

std::unique_ptr<Files> make_files() { return std::make_unique<LinuxFiles>(); }

}  // namespace riposte::platform
