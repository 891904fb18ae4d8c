// Captures a real process and opens the core with the real tools: readelf and gdb.

#include "platform/memory_capture.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "agent/evidence_file.h"
#include "common/secure_file.h"
#include "protocol/crypto.h"
#include "tests/build_paths.h"
#include "tests/integration/harness.h"
#include "tests/platform/capture_target_process.h"

namespace riposte::platform {
namespace {

using Target = testing::CaptureTarget;

class MemoryCaptureTest : public ::testing::Test {
 protected:
  testing::TempDir dir;
  std::filesystem::path core = dir.path() / "target.core";

  Result<CaptureReport> capture(const Target& target, const CaptureOptions& options,
                                std::string* sha = nullptr) {
    auto sink = agent::EvidenceFile::create(core);
    EXPECT_TRUE(sink);
    auto report = make_memory_capture()->capture(target.ref(), **sink, options);
    auto hash = (*sink)->finish();
    if (sha != nullptr && hash) *sha = *hash;
    return report;
  }
};

TEST_F(MemoryCaptureTest, CoreOpensInReadelfAndGdbPrintsTheGlobal) {
  Target target(4);
  std::string sha;
  auto report = capture(target, {}, &sha);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->registers_captured);
  EXPECT_GE(report->threads, 1);
  EXPECT_GT(report->mappings, 3);

  const auto bytes = read_file(core).value();
  EXPECT_EQ(bytes.size(), report->bytes_written);
  EXPECT_EQ(sha, crypto::sha256_hex(bytes)) << "hash computed while writing must match the file";
  EXPECT_NE(bytes.find("RIPOSTE-MEMORY-MARKER-7f3a9c"), std::string::npos);

  // readelf: a core file with one PT_LOAD per mapping of the process.
  const auto readelf = testing::run_command({"readelf", "-W", "-l", "-n", core.string()});
  ASSERT_EQ(readelf.exit_code, 0) << readelf.err;
  EXPECT_NE(readelf.out.find("Elf file type is CORE"), std::string::npos) << readelf.out;
  std::size_t loads = 0;
  for (std::size_t at = 0; (at = readelf.out.find("\n  LOAD", at)) != std::string::npos; ++at)
    ++loads;
  EXPECT_EQ(loads, static_cast<std::size_t>(report->mappings) +
                       std::count_if(report->skipped.begin(), report->skipped.end(),
                                     [](const auto& s) { return s.reason != "read failed"; }));
  EXPECT_NE(readelf.out.find("NT_PRSTATUS"), std::string::npos) << readelf.out;
  EXPECT_NE(readelf.out.find("NT_FILE"), std::string::npos) << readelf.out;
  EXPECT_EQ(readelf.err.find("Warning"), std::string::npos) << readelf.err;

  // gdb: the executable plus our core give the live value of a global, and a backtrace.
  const auto gdb =
      testing::run_command({"gdb", "-batch", "-nx", "-ex", "print/x riposte_capture_global", "-ex",
                            "bt", ::riposte::testing::capture_target(), core.string()},
                           std::chrono::seconds(60));
  const auto expected =
      fmt::format("= 0x{:x}", 0x5EC0DE0000000000UL | static_cast<unsigned long>(target.pid()));
  EXPECT_NE(gdb.out.find(expected), std::string::npos) << "want " << expected << "\n"
                                                       << gdb.out << gdb.err;
  EXPECT_NE(gdb.out.find("main"), std::string::npos) << "backtrace should reach main:\n"
                                                     << gdb.out << gdb.err;

  // The process carries on afterwards.
  EXPECT_EQ(::kill(target.pid(), 0), 0);
}

TEST_F(MemoryCaptureTest, UnreadableAndExcludedRegionsAreRecordedNotWritten) {
  Target target(4);
  auto full = capture(target, {});
  ASSERT_TRUE(full);
  for (const auto& s : full->skipped) EXPECT_FALSE(s.reason.empty());
  std::filesystem::remove(core);

  auto anonymous_only = capture(target, {.include_file_backed = false});
  ASSERT_TRUE(anonymous_only);
  EXPECT_LT(anonymous_only->memory_bytes, full->memory_bytes);
  EXPECT_TRUE(std::any_of(anonymous_only->skipped.begin(), anonymous_only->skipped.end(),
                          [](const auto& s) {
                            return s.reason == "excluded: file-backed" &&
                                   s.path == ::riposte::testing::capture_target();
                          }));
  // The heap is anonymous, so the marker is still there.
  EXPECT_NE(read_file(core).value().find("RIPOSTE-MEMORY-MARKER-7f3a9c"), std::string::npos);
}

TEST_F(MemoryCaptureTest, MaxSizeBoundsTheCapture) {
  Target target(16);
  auto report = capture(target, {.max_bytes = 1 << 20});
  ASSERT_TRUE(report);
  EXPECT_LE(report->memory_bytes, 1u << 20);
  EXPECT_TRUE(std::any_of(report->skipped.begin(), report->skipped.end(),
                          [](const auto& s) { return s.reason == "max size reached"; }));
}

TEST_F(MemoryCaptureTest, WrongStartTimeCapturesNothing) {
  Target target(4);
  auto sink = agent::EvidenceFile::create(core);
  auto ref = target.ref();
  ref.start_ticks += 7;
  auto report = make_memory_capture()->capture(ref, **sink, {});
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message.find("another process"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(core), 0u);
}

}  // namespace
}  // namespace riposte::platform
