#pragma once

// Captures a live process's memory as an ELF core file that standard tools open (readelf, gdb):
// one PT_LOAD per captured mapping, NT_PRSTATUS (registers) per thread, NT_PRPSINFO, NT_AUXV and
// NT_FILE notes. Streams through a ByteSink: the process is never buffered whole in memory.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "platform/byte_sink.h"
#include "platform/process_control.h"

namespace riposte::platform {

struct CaptureOptions {
  std::uint64_t max_bytes = 0;      // 0 = no limit; mappings beyond it are recorded, not written
  bool include_file_backed = true;  // mappings of files (libraries, the executable)
  // Called after each chunk with bytes written so far and the core file's final size.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

struct SkippedRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::string path;    // mapping name, if any
  std::string reason;  // "not readable", "excluded: file-backed", "max size reached", "read failed"
};

struct CaptureReport {
  std::uint64_t bytes_written = 0;  // size of the core file
  std::uint64_t memory_bytes = 0;   // process memory captured into it
  int mappings = 0;                 // PT_LOAD segments with data
  int threads = 0;                  // NT_PRSTATUS notes (threads whose registers were read)
  bool registers_captured = false;
  std::vector<SkippedRange> skipped;
};

class MemoryCapture {
 public:
  virtual ~MemoryCapture() = default;
  // The process is stopped (ptrace) while its memory is read, and resumed afterwards.
  virtual Result<CaptureReport> capture(const ProcessRef& target, ByteSink& out,
                                        const CaptureOptions& options) = 0;
};

std::unique_ptr<MemoryCapture> make_memory_capture();

}  // namespace riposte::platform
