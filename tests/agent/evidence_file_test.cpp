#include "agent/evidence_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "common/secure_file.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::agent {
namespace {

namespace fs = std::filesystem;

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(generator());
  return out;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Pages of `path` in the page cache, as a fraction of its size.
double cached_fraction(const fs::path& path) {
  const auto size = fs::file_size(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  const std::size_t pages = (size + 4095) / 4096;
  std::vector<unsigned char> resident(pages);
  ::mincore(map, size, resident.data());
  ::munmap(map, size);
  std::size_t cached = 0;
  for (auto r : resident) cached += r & 1;
  return static_cast<double>(cached) / static_cast<double>(pages);
}

// Every size around the buffer and alignment boundaries, written in ragged pieces (a capture
// writes its ELF header, program headers and notes in small writes before 1 MiB chunks): the
// file holds exactly the bytes written and the hash is theirs.
TEST(EvidenceFileTest, FileAndHashAreExactlyTheBytesWrittenWhateverTheWriteSizes) {
  testing::TempDir dir;
  const std::size_t sizes[] = {0,       1,           4095,        4096,   4097,
                               1 << 20, (1 << 20) + 1, (9 << 20) + 12345};
  const std::size_t pieces[] = {1, 64, 4095, 7, 1 << 20, 300000, 4096, 3};
  for (const std::size_t size : sizes) {
    SCOPED_TRACE(size);
    const std::string content = random_bytes(size, static_cast<unsigned>(size));
    const auto path = dir.path() / std::to_string(size);
    auto evidence = EvidenceFile::create(path).value();
    std::size_t at = 0;
    for (std::size_t i = 0; at < size; ++i) {
      const std::size_t n = std::min(pieces[i % std::size(pieces)], size - at);
      ASSERT_TRUE(evidence->write(bytes_of(std::string_view(content).substr(at, n))));
      at += n;
    }
    EXPECT_EQ(evidence->finish().value(), crypto::sha256_hex(content));
    EXPECT_EQ(read_file(path).value(), content);
  }
}

// Evidence of hundreds of MiB must not push the host's own files out of the page cache: written
// with O_DIRECT where the filesystem has it, the file's pages are not left cached.
TEST(EvidenceFileTest, EvidenceIsWrittenPastThePageCache) {
  testing::TempDir dir;
  if (!platform::FileSink::create(dir.path() / "probe", true).value()->direct())
    GTEST_SKIP() << "the filesystem of " << dir.path() << " has no O_DIRECT";
  const std::string content = random_bytes(16 << 20, 1);
  const auto path = dir.path() / "evidence";
  auto evidence = EvidenceFile::create(path).value();
  ASSERT_TRUE(evidence->write(bytes_of(content)));
  ASSERT_EQ(evidence->finish().value(), crypto::sha256_hex(content));
  EXPECT_LT(cached_fraction(path), 0.1);
  // A buffered sink of the same size, for contrast: the check would see its pages.
  auto buffered = platform::FileSink::create(dir.path() / "buffered").value();
  ASSERT_TRUE(buffered->write(bytes_of(content)));
  ASSERT_TRUE(buffered->finish());
  EXPECT_GT(cached_fraction(dir.path() / "buffered"), 0.9);
}

// A filesystem without O_DIRECT (tmpfs) still gets every byte.
TEST(EvidenceFileTest, AFilesystemWithoutDirectIoGetsBufferedWrites) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  const auto path = fs::path("/dev/shm") / ("riposte-evidence-" + std::to_string(::getpid()));
  fs::remove(path);
  const std::string content = random_bytes((2 << 20) + 17, 2);
  {
    auto evidence = EvidenceFile::create(path).value();
    ASSERT_TRUE(evidence->write(bytes_of(content)));
    EXPECT_EQ(evidence->finish().value(), crypto::sha256_hex(content));
  }
  EXPECT_EQ(read_file(path).value(), content);
  fs::remove(path);
}

// The disk write runs behind the producer; a failure there (here the file size limit, as a full
// disk would) reaches the producer's next write or finish(), never a success.
TEST(EvidenceFileTest, AFailedDiskWriteIsReportedNotSwallowed) {
  testing::TempDir dir;
  const auto path = dir.path() / "evidence";
  const pid_t child = ::fork();
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of the signal
    const rlimit limit{3 << 20, 3 << 20};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    auto evidence = EvidenceFile::create(path);
    if (!evidence) ::_exit(2);
    const std::string chunk(1 << 20, 'e');
    bool failed = false;
    for (int i = 0; i < 16 && !failed; ++i) failed = !(*evidence)->write(bytes_of(chunk));
    if (!failed) failed = !(*evidence)->finish();
    ::_exit(failed ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the write past the limit was reported as a success";
}

// A writer that fell behind hands several buffers to one writev: the file holds the pieces in
// order, empty ones skipped, O_DIRECT kept while every piece is aligned and dropped (same bytes)
// once one is not.
TEST(FileSinkTest, GatheredPiecesLandInOrderAlignedOrNot) {
  testing::TempDir dir;
  if (!platform::FileSink::create(dir.path() / "probe", true).value()->direct())
    GTEST_SKIP() << "the filesystem of " << dir.path() << " has no O_DIRECT";
  constexpr std::size_t kAlign = platform::FileSink::kDirectAlignment;
  std::vector<std::unique_ptr<std::uint8_t, decltype(&std::free)>> memory;
  const auto aligned_copy = [&](const std::string& bytes) {
    // aligned_alloc wants a size that is a multiple of the alignment (C11; ASan checks it).
    const std::size_t size = (bytes.size() / kAlign + 1) * kAlign;
    auto* p = static_cast<std::uint8_t*>(std::aligned_alloc(kAlign, size));
    std::memcpy(p, bytes.data(), bytes.size());
    memory.emplace_back(p, &std::free);
    return std::span<const std::uint8_t>(p, bytes.size());
  };
  const std::string a = random_bytes(1 << 20, 11), b = random_bytes(2 * kAlign, 12),
                    c = random_bytes(777, 13), d = random_bytes(1 << 20, 14);
  auto sink = platform::FileSink::create(dir.path() / "gathered", true).value();
  const std::span<const std::uint8_t> aligned_pieces[] = {aligned_copy(a), {}, aligned_copy(b)};
  ASSERT_TRUE(sink->write(std::span(aligned_pieces)));
  EXPECT_TRUE(sink->direct()) << "aligned pieces turned O_DIRECT off";
  const std::span<const std::uint8_t> ragged[] = {aligned_copy(c), aligned_copy(d)};
  ASSERT_TRUE(sink->write(std::span(ragged)));
  EXPECT_FALSE(sink->direct()) << "a 777-byte piece cannot go O_DIRECT";
  ASSERT_TRUE(sink->finish());
  EXPECT_EQ(read_file(dir.path() / "gathered").value(), a + b + c + d);
}

// A gathered write cut short inside a piece (here by the file size limit, as a full disk would)
// is retried from where it stopped and reports the failure, never a success; the file holds
// exactly the bytes up to the limit, in order.
TEST(FileSinkTest, AGatheredWriteCutShortReportsTheFailureAndKeepsWhatLanded) {
  testing::TempDir dir;
  const auto path = dir.path() / "short";
  const std::string content = random_bytes(4 << 20, 21);
  const pid_t child = ::fork();
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{(5 << 19) + 123, (5 << 19) + 123};  // 2.5 MiB and 123 bytes
    ::setrlimit(RLIMIT_FSIZE, &limit);
    auto sink = platform::FileSink::create(path, true);
    if (!sink) ::_exit(2);
    const auto all = bytes_of(content);
    const std::span<const std::uint8_t> pieces[] = {
        all.subspan(0, 1 << 20), all.subspan(1 << 20, 1 << 20), all.subspan(2 << 20)};
    ::_exit((*sink)->write(std::span(pieces)) ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the write past the limit was reported as a success";
  EXPECT_EQ(read_file(path).value(), content.substr(0, (5 << 19) + 123));
}

}  // namespace
}  // namespace riposte::agent
