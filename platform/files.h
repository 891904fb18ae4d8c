#pragma once

// Files on the endpoint: metadata, streaming a file out (for hashing or collection as evidence),
// and moving a file into a root-only vault and back.
//
// The agent runs as root, so a path is never resolved by the kernel in one go: it is walked from
// "/" one component at a time, holding each directory open, and a symbolic link is followed only
// when no unprivileged user could have placed it — owned by root, in a directory only root can
// write (Debian's merged-/usr links such as /lib -> usr/lib pass). Any other link is refused with
// its name: a user who swaps a parent directory for a link between an alert and the action cannot
// steer the agent to /etc/shadow. The last component is never followed. Paths must be absolute.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "platform/byte_sink.h"
#include "platform/process_control.h"

namespace riposte::platform {

struct FileInfo {
  std::string path;           // as asked
  std::string resolved_path;  // where it really is: the path walked, links replaced by targets
  std::uint64_t size = 0;
  unsigned mode = 0;  // permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  std::int64_t mtime_unix_ms = 0;
  // A process's executable image only (stream_executable).
  bool deleted = false;
  // A process's executable or script: the namespaces its path means something in.
  std::string mount_namespace, pid_namespace;
  // A process's script only (stream_script): the interpreter running it.
  std::string interpreter;
};

struct VaultEntry {
  std::string id;  // name inside the vault
  FileInfo original;
};

class Files {
 public:
  virtual ~Files() = default;
  // Regular files only: devices, FIFOs and directories are refused with a reason.
  virtual Result<FileInfo> inspect(const std::filesystem::path& path) = 0;
  // Streams the file's bytes, at most as many as it had when opened (a growing file is read up to
  // that size); errors if it is larger than `max_bytes` (0 = no limit).
  virtual Result<FileInfo> stream(const std::filesystem::path& path, ByteSink& out,
                                  std::uint64_t max_bytes) = 0;
  // Streams the executable image `process` runs (pid and start time checked), read through
  // /proc/PID/exe: the bytes that run even when the file was deleted or lives in another mount
  // namespace. `path` is what the process's namespace calls it.
  virtual Result<FileInfo> stream_executable(const ProcessRef& process, ByteSink& out,
                                             std::uint64_t max_bytes) = 0;
  // Streams the script an interpreter process runs (ProcessInfo::script: `bash /tmp/x.sh`,
  // `python3 app.py` relative to its working directory), opened in the process's own view of the
  // files (walked from /proc/PID/root, so a container's script, not the host's file at that path)
  // with the link rules above. `path` is the script as the process names it, `resolved_path`
  // where the walk found it inside that root. Refused, saying why, when it runs no script file.
  virtual Result<FileInfo> stream_script(const ProcessRef& process, ByteSink& out,
                                         std::uint64_t max_bytes) = 0;
  // Moves the file into `vault` (created 0700) as `id`, made unreadable to everyone but root.
  // `contents` (may be null) receives the bytes of the file moved, read through the descriptor
  // that is moved, so a hash of them is the hash of what the vault holds.
  virtual Result<VaultEntry> quarantine(const std::filesystem::path& path,
                                        const std::filesystem::path& vault, const std::string& id,
                                        ByteSink* contents) = 0;
  // Puts a vaulted file back where it was (its resolved path, walked again as above) with its
  // owner and mode. Refuses to overwrite. Setuid and setgid bits are dropped unless `keep_setid`:
  // putting a setuid file back into a root-owned directory is a privilege to grant on purpose.
  // Returns the file as restored.
  virtual Result<FileInfo> restore(const VaultEntry& entry, const std::filesystem::path& vault,
                                   bool keep_setid) = 0;
};

std::unique_ptr<Files> make_files();

}  // namespace riposte::platform
