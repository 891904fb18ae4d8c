#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace riposte {

// Writes `contents` to `path` atomically (temporary file in the same directory, fsync, rename),
// created with `mode` from the start so a private key is never readable by others, even briefly.
Status write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                         unsigned mode = 0600);

// Creates `path` (or empties it) readable and writable by its owner only (0600, also when it
// existed with a wider mode), for output streamed to it afterwards: an audit export, a report.
Status create_private_file(const std::filesystem::path& path);

Result<std::string> read_file(const std::filesystem::path& path);

// Creates `dir` (and parents) and restricts it to its owner.
Status ensure_private_directory(const std::filesystem::path& dir);

}  // namespace riposte
