#include "platform/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "agent/evidence_file.h"
#include "agent/sha256_sink.h"
#include "common/secure_file.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::platform {
namespace {

namespace fs = std::filesystem;

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  ::lstat(p.c_str(), &st);
  return st.st_mode & 07777;
}

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    content = std::string(3 << 20, 'x') + "tail";
    sample = dir.path() / "payload.bin";
    std::ofstream(sample, std::ios::binary) << content;
    ::chmod(sample.c_str(), 0640);
  }
  testing::TempDir dir;
  fs::path sample;
  std::string content;
};

TEST_F(FilesTest, HashStreamsTheWholeFile) {
  agent::Sha256Sink sha;
  auto info = make_files()->stream(sample, sha, 0);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->size, content.size());
  EXPECT_EQ(info->mode, 0640u);
  EXPECT_EQ(sha.hex_digest(), crypto::sha256_hex(content));
}

TEST_F(FilesTest, CollectWritesEvidenceWithItsHash) {
  auto evidence = agent::EvidenceFile::create(dir.path() / "evidence").value();
  ASSERT_TRUE(make_files()->stream(sample, *evidence, 0));
  EXPECT_EQ(evidence->finish().value(), crypto::sha256_hex(content));
  EXPECT_EQ(read_file(dir.path() / "evidence").value(), content);
  EXPECT_EQ(mode_of(dir.path() / "evidence"), 0600u);
}

TEST_F(FilesTest, RefusesWhatIsNotARegularFileAndOversizedFiles) {
  agent::Sha256Sink sha;
  auto files = make_files();
  EXPECT_FALSE(files->stream(dir.path(), sha, 0));
  ASSERT_EQ(::mkfifo((dir.path() / "fifo").c_str(), 0600), 0);
  auto fifo = files->stream(dir.path() / "fifo", sha, 0);
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos);
  fs::create_symlink(sample, dir.path() / "link");
  EXPECT_FALSE(files->stream(dir.path() / "link", sha, 0)) << "symlinks are not followed";
  auto big = files->stream(sample, sha, 1024);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("above the limit"), std::string::npos);
  EXPECT_FALSE(files->stream(dir.path() / "missing", sha, 0));
}

TEST_F(FilesTest, QuarantineMovesIntoALockedVaultAndRestoreGivesItBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to change file ownership";
  ASSERT_EQ(::chown(sample.c_str(), 1234, 5678), 0);
  const auto vault = dir.path() / "vault";
  auto files = make_files();
  auto entry = files->quarantine(sample, vault, "case-1-payload");
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_FALSE(fs::exists(sample));
  EXPECT_EQ(mode_of(vault), 0700u);
  EXPECT_EQ(mode_of(vault / "case-1-payload"), 0u);
  EXPECT_EQ(entry->original.path, sample.string());
  EXPECT_EQ(entry->original.mode, 0640u);
  EXPECT_EQ(entry->original.uid, 1234u);
  EXPECT_FALSE(files->quarantine(dir.path() / "missing", vault, "x"));
  EXPECT_FALSE(files->quarantine(sample, vault, "../escape"));

  // A file appearing at the original path is not overwritten.
  std::ofstream(sample) << "new";
  EXPECT_FALSE(files->restore(*entry, vault));
  fs::remove(sample);

  ASSERT_TRUE(files->restore(*entry, vault));
  EXPECT_EQ(read_file(sample).value(), content);
  EXPECT_EQ(mode_of(sample), 0640u);
  struct stat st {};
  ::stat(sample.c_str(), &st);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_FALSE(fs::exists(vault / "case-1-payload"));
}

}  // namespace
}  // namespace riposte::platform
