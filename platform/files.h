#pragma once

// Files on the endpoint: metadata, streaming a file out (for hashing or collection as evidence),
// and moving a file into a root-only vault and back.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "platform/byte_sink.h"

namespace riposte::platform {

struct FileInfo {
  std::string path;
  std::uint64_t size = 0;
  unsigned mode = 0;  // permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  std::int64_t mtime_unix_ms = 0;
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
  // Streams the file's bytes; errors if it is larger than `max_bytes` (0 = no limit).
  virtual Result<FileInfo> stream(const std::filesystem::path& path, ByteSink& out,
                                  std::uint64_t max_bytes) = 0;
  // Moves the file into `vault` (created 0700) as `id`, made unreadable to everyone but root.
  virtual Result<VaultEntry> quarantine(const std::filesystem::path& path,
                                        const std::filesystem::path& vault,
                                        const std::string& id) = 0;
  // Puts a vaulted file back at its original path with its owner and mode. Refuses to overwrite.
  virtual Status restore(const VaultEntry& entry, const std::filesystem::path& vault) = 0;
};

std::unique_ptr<Files> make_files();

}  // namespace riposte::platform
