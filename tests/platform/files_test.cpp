#include "platform/files.h"

#include <fmt/format.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>

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
  agent::Sha256Sink sha;
  auto entry = files->quarantine(sample, vault, "case-1-payload", &sha);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(sha.hex_digest(), crypto::sha256_hex(content)) << "the bytes of the vaulted file";
  EXPECT_FALSE(fs::exists(sample));
  EXPECT_EQ(mode_of(vault), 0700u);
  EXPECT_EQ(mode_of(vault / "case-1-payload"), 0u);
  EXPECT_EQ(entry->original.path, sample.string());
  EXPECT_EQ(entry->original.mode, 0640u);
  EXPECT_EQ(entry->original.uid, 1234u);
  EXPECT_FALSE(files->quarantine(dir.path() / "missing", vault, "x", nullptr));
  EXPECT_FALSE(files->quarantine(sample, vault, "../escape", nullptr));

  // A file appearing at the original path is not overwritten.
  std::ofstream(sample) << "new";
  EXPECT_FALSE(files->restore(*entry, vault, false));
  fs::remove(sample);

  ASSERT_TRUE(files->restore(*entry, vault, false));
  EXPECT_EQ(read_file(sample).value(), content);
  EXPECT_EQ(mode_of(sample), 0640u);
  struct stat st {};
  ::stat(sample.c_str(), &st);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_FALSE(fs::exists(vault / "case-1-payload"));
}

// A directory a user owns, as /home/alice or /tmp/build would be: links planted in it must not
// steer a root agent.
class SymlinkTest : public FilesTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create files other users own";
    FilesTest::SetUp();
    ::chmod(dir.path().c_str(), 0755);
    user_dir = dir.path() / "home";
    fs::create_directory(user_dir);
    ASSERT_EQ(::chown(user_dir.c_str(), kNobody, kNobody), 0);
    secret_dir = dir.path() / "root-only";
    fs::create_directory(secret_dir);
    ::chmod(secret_dir.c_str(), 0700);
    std::ofstream(secret_dir / "shadow") << "root:$y$secret";
  }
  // `link` -> `target`, owned by `uid` (the link itself, as a user's would be).
  static void plant_link(const fs::path& target, const fs::path& link, uid_t uid) {
    fs::create_symlink(target, link);
    ASSERT_EQ(::lchown(link.c_str(), uid, uid), 0);
  }
  static constexpr uid_t kNobody = 65534;
  fs::path user_dir, secret_dir;
};

TEST_F(SymlinkTest, CollectAndHashRefuseAParentDirectorySwappedForAUsersLink) {
  auto files = make_files();
  agent::Sha256Sink sha;
  // The alert named user_dir/docs/shadow; the user replaced docs with a link to the secret.
  plant_link(secret_dir, user_dir / "docs", kNobody);
  auto collected = files->stream(user_dir / "docs" / "shadow", sha, 0);
  ASSERT_FALSE(collected) << "followed a user's link to " << collected->resolved_path;
  EXPECT_NE(collected.error().message.find((user_dir / "docs").string() +
                                           " is a symbolic link owned by uid 65534"),
            std::string::npos)
      << collected.error().message;
  EXPECT_FALSE(files->inspect(user_dir / "docs" / "shadow"));

  // A root-owned link is no better inside a directory the user can write: they could swap it.
  plant_link(secret_dir, user_dir / "rootlink", 0);
  auto via_root_link = files->stream(user_dir / "rootlink" / "shadow", sha, 0);
  ASSERT_FALSE(via_root_link);
  EXPECT_NE(via_root_link.error().message.find("which a user other than root can write"),
            std::string::npos)
      << via_root_link.error().message;
}

TEST_F(SymlinkTest, RootPlacedSystemLinksStillWorkAndTheResolvedPathIsRecorded) {
  struct stat lib {};
  if (::lstat("/lib", &lib) != 0 || !S_ISLNK(lib.st_mode)) GTEST_SKIP() << "/lib is no link here";
  auto files = make_files();
  agent::Sha256Sink sha;
  auto info = files->stream("/lib/os-release", sha, 0);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->path, "/lib/os-release");
  EXPECT_EQ(info->resolved_path, (fs::canonical("/lib") / "os-release").string());
  EXPECT_EQ(sha.hex_digest(), crypto::sha256_hex(read_file("/usr/lib/os-release").value()));
}

// /proc/PID/root and friends are root-owned links whose text means a path in another process's
// namespace: walked as text they would name the host's file. Refused.
TEST_F(SymlinkTest, ProcMagicLinksAreNotWalked) {
  agent::Sha256Sink sha;
  auto through_proc = make_files()->stream("/proc/self/root/etc/hostname", sha, 0);
  ASSERT_FALSE(through_proc);
  EXPECT_NE(through_proc.error().message.find("is a /proc link"), std::string::npos)
      << through_proc.error().message;
}

TEST_F(SymlinkTest, QuarantineRefusesAParentSwappedForAUsersLink) {
  auto files = make_files();
  plant_link(secret_dir, user_dir / "docs", kNobody);
  auto moved = files->quarantine(user_dir / "docs" / "shadow", dir.path() / "vault", "v1", nullptr);
  ASSERT_FALSE(moved);
  EXPECT_NE(moved.error().message.find("symbolic link owned by uid 65534"), std::string::npos)
      << moved.error().message;
  EXPECT_TRUE(fs::exists(secret_dir / "shadow"));
}

// Restore goes back to the directory the file came from, walked again: if a user replaced that
// directory with a link to a root-only one, nothing is written there. Setuid bits come back only
// when asked for.
TEST_F(SymlinkTest, RestoreOnlyIntoAVerifiedParentAndWithoutSetuidUnlessAsked) {
  auto files = make_files();
  const auto vault = dir.path() / "vault";
  const auto drop = user_dir / "drop";
  fs::create_directory(drop);
  ASSERT_EQ(::chown(drop.c_str(), kNobody, kNobody), 0);
  const auto tool = drop / "tool";
  std::ofstream(tool) << "#!/bin/sh\n";
  ASSERT_EQ(::chown(tool.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(tool.c_str(), 04755), 0);
  auto entry = files->quarantine(tool, vault, "v-tool", nullptr);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->original.mode, 04755u);

  // The user swaps drop/ for a link to the root-only directory.
  fs::rename(drop, user_dir / "drop.old");
  plant_link(secret_dir, drop, kNobody);
  auto swapped = files->restore(*entry, vault, false);
  ASSERT_FALSE(swapped);
  EXPECT_NE(swapped.error().message.find("symbolic link owned by uid 65534"), std::string::npos)
      << swapped.error().message;
  EXPECT_FALSE(fs::exists(secret_dir / "tool"));
  EXPECT_TRUE(fs::exists(vault / "v-tool")) << "the file stays in the vault";

  fs::remove(drop);
  fs::rename(user_dir / "drop.old", drop);
  auto restored = files->restore(*entry, vault, false);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(mode_of(tool), 0755u) << "setuid is not given back without keep_setid";
  EXPECT_EQ(restored->mode, 0755u);

  auto again = files->quarantine(tool, vault, "v-tool-2", nullptr);
  ASSERT_TRUE(again);
  ASSERT_EQ(::chmod((vault / "v-tool-2").c_str(), 0), 0);
  entry->id = "v-tool-2";
  ASSERT_TRUE(files->restore(*entry, vault, true));
  EXPECT_EQ(mode_of(tool), 04755u) << "keep_setid restores it as it was";
}

// A child running `argv`, killed and reaped at the end of the test.
struct Running {
  explicit Running(std::vector<std::string> argv, uid_t as_uid = 0) {
    pid = ::fork();
    if (pid == 0) {
      if (as_uid != 0 && (::setgroups(0, nullptr) != 0 || ::setgid(as_uid) != 0 ||
                          ::setuid(as_uid) != 0))
        ::_exit(126);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Running() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  // Waits until the child runs an image whose /proc/PID/exe ends with `suffix`.
  bool runs(const std::string& suffix) {
    for (int i = 0; i < 200; ++i, ::usleep(10'000)) {
      std::error_code ec;
      const auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
      if (exe.find(suffix) != std::string::npos) return true;
    }
    return false;
  }
  ProcessRef ref() const { return {pid, make_process_control()->inspect(pid).value().start_ticks}; }
  pid_t pid = -1;
};

// Polls `condition` for up to two seconds.
bool wait_for(const std::function<bool()>& condition) {
  for (int i = 0; i < 200; ++i, ::usleep(10'000))
    if (condition()) return true;
  return false;
}

std::string sha_of_file(const fs::path& p) { return crypto::sha256_hex(read_file(p).value()); }

// The binary was deleted after the process started: the path names nothing any more, but the
// running image is still there to hash and collect, and the result says it was deleted.
TEST_F(FilesTest, ADeletedBinaryIsHashedFromTheRunningImage) {
  const auto binary = dir.path() / "dropper";
  fs::copy_file("/bin/sleep", binary);
  ::chmod(binary.c_str(), 0755);
  Running child({binary.string(), "30"});
  ASSERT_TRUE(child.runs("dropper"));
  const auto expected = sha_of_file(binary);
  fs::remove(binary);

  auto files = make_files();
  agent::Sha256Sink by_path;
  EXPECT_FALSE(files->stream(binary, by_path, 0)) << "the path names nothing any more";
  agent::Sha256Sink sha;
  auto info = files->stream_executable(child.ref(), sha, 0);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(sha.hex_digest(), expected);
  EXPECT_TRUE(info->deleted);
  EXPECT_EQ(info->path, binary.string());
  EXPECT_TRUE(make_process_control()->inspect(child.pid).value().exe_deleted);
}

// A process in its own mount namespace (a container) runs /…/ctr/prog, which on the host is a
// different file at the same path. Hashing the path would be wrong evidence, silently.
TEST_F(FilesTest, AProcessInAnotherMountNamespaceIsHashedFromItsOwnImage) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a mount namespace";
  const auto root = dir.path() / "ctr";
  fs::create_directory(root);
  fs::copy_file("/bin/true", root / "prog");  // what the host sees at that path
  const std::string script = fmt::format(
      "mount -t tmpfs none {0} && cp /bin/sleep {0}/prog && exec {0}/prog 30", root.string());
  Running child(
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script});
  ASSERT_TRUE(child.runs("/ctr/prog"));
  auto files = make_files();
  agent::Sha256Sink sha;
  auto info = files->stream_executable(child.ref(), sha, 0);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(sha.hex_digest(), sha_of_file("/bin/sleep")) << "the image the process runs";
  EXPECT_NE(sha.hex_digest(), sha_of_file(root / "prog")) << "not the host's file at that path";
  EXPECT_EQ(info->path, (root / "prog").string());
  EXPECT_FALSE(info->deleted);
  std::error_code ec;
  EXPECT_NE(info->mount_namespace, fs::read_symlink("/proc/self/ns/mnt", ec).string());
  EXPECT_EQ(make_process_control()->inspect(child.pid).value().mount_namespace,
            info->mount_namespace);
}

// An interpreter's evidence is its script: `sh ./job.sh` started in a directory is that
// directory's job.sh, read as the process sees it.
TEST_F(FilesTest, AnInterpretersScriptIsReadRelativeToItsWorkingDirectory) {
  const auto work = dir.path() / "work";
  fs::create_directory(work);
  std::ofstream(work / "job.sh") << "# RIPOSTE script evidence\nsleep 30\n";
  Running child({"/bin/sh", "-c", fmt::format("cd {} && exec /bin/sh ./job.sh", work.string())});
  ASSERT_TRUE(child.runs("dash"));
  ASSERT_TRUE(wait_for([&] {
    return !make_process_control()->inspect(child.pid).value().script.empty();
  }));
  EXPECT_EQ(make_process_control()->inspect(child.pid).value().script,
            (work / "./job.sh").string());
  auto files = make_files();
  agent::Sha256Sink sha;
  auto info = files->stream_script(child.ref(), sha, 0);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(sha.hex_digest(), sha_of_file(work / "job.sh"));
  EXPECT_EQ(info->resolved_path, (work / "job.sh").string());
  EXPECT_EQ(info->interpreter, "/usr/bin/dash");

  // Not an interpreter, or no file: refused, saying so.
  Running sleeper({"/bin/sleep", "30"});
  ASSERT_TRUE(sleeper.runs("sleep"));
  agent::Sha256Sink none;
  auto refused = files->stream_script(sleeper.ref(), none, 0);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("runs no script file"), std::string::npos);
}

// A containerized interpreter: its script path on the host is another file. The script read is
// the one inside the process's mount namespace.
TEST_F(FilesTest, AScriptInAnotherMountNamespaceIsReadFromThatNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a mount namespace";
  const auto root = dir.path() / "ctr";
  fs::create_directory(root);
  std::ofstream(root / "job.sh") << "echo the host's file\n";
  const std::string inside = "# inside the container\nsleep 30\n";
  const std::string script = fmt::format(
      "mount -t tmpfs none {0} && printf '# inside the container\\nsleep 30\\n' > {0}/job.sh && "
      "exec /bin/sh {0}/job.sh",
      root.string());
  Running child(
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script});
  ASSERT_TRUE(wait_for([&] {
    return make_process_control()->inspect(child.pid).value().script == (root / "job.sh").string();
  }));
  auto files = make_files();
  agent::Sha256Sink sha;
  auto info = files->stream_script(child.ref(), sha, 0);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(sha.hex_digest(), crypto::sha256_hex(inside)) << "the container's script";
  EXPECT_NE(sha.hex_digest(), sha_of_file(root / "job.sh")) << "not the host's file";
  std::error_code ec;
  EXPECT_NE(info->mount_namespace, fs::read_symlink("/proc/self/ns/mnt", ec).string());
}

// A user runs `tail -F /etc/shadow` under a file named `sh`: the command line claims a script
// the process cannot read. The agent (root) refuses to read for it what it could not read itself.
TEST_F(FilesTest, AScriptTheProcessCouldNotReadIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a process as another user";
  const auto fake = dir.path() / "sh";
  fs::copy_file("/usr/bin/tail", fake);
  ::chmod(dir.path().c_str(), 0755);
  ::chmod(fake.c_str(), 0755);
  const auto secret = dir.path() / "secret.txt";
  std::ofstream(secret) << "root only\n";
  ::chmod(secret.c_str(), 0600);
  // The child drops to nobody itself and execs the fake `sh`, so the pid is the process.
  Running child({fake.string(), "-F", secret.string()}, /*as_uid=*/65534);
  ASSERT_TRUE(child.runs("/sh"));
  auto files = make_files();
  agent::Sha256Sink sha;
  const auto ref = child.ref();
  // The claim is not even listed: the file is neither open in the process nor readable by it.
  EXPECT_EQ(make_process_control()->inspect(child.pid).value().script, "");
  auto info = files->stream_script(ref, sha, 0);
  ASSERT_FALSE(info) << "read " << info->resolved_path;
  EXPECT_NE(info.error().message.find("runs no script file"), std::string::npos)
      << info.error().message;
  // The same file made readable to that user is read: the check is the process's, not a ban.
  ::chmod(secret.c_str(), 0644);
  ASSERT_TRUE(wait_for([&] {
    return make_process_control()->inspect(child.pid).value().script == secret.string();
  }));
  agent::Sha256Sink again;
  EXPECT_TRUE(files->stream_script(ref, again, 0));
}

// A dropper run by BusyBox's shell: the executable is /usr/bin/busybox, a multi-call binary, and
// the applet comes from argv. The script is what the process holds open, hashed and read as such;
// never busybox itself. Both ways BusyBox runs a shell: `busybox sh x` and a link named `ash`.
TEST_F(FilesTest, ABusyBoxShellsScriptIsIdentifiedAndReadNotBusyBox) {
  const fs::path busybox = "/usr/bin/busybox";
  if (!fs::exists(busybox)) GTEST_SKIP() << "busybox is not installed (scripts/install-deps.sh)";
  const auto work = dir.path() / "work";
  fs::create_directory(work);
  // The sleep lets go of the test's output, or ctest waits for it to end.
  std::ofstream(work / "drop.sh") << "# RIPOSTE busybox dropper\nsleep 30 >/dev/null 2>&1\n";
  fs::create_symlink(busybox, work / "ash");
  const std::vector<std::vector<std::string>> ways{
      {"/bin/sh", "-c",
       fmt::format("cd {} && exec {} sh ./drop.sh", work.string(), busybox.string())},
      {"/bin/sh", "-c", fmt::format("cd {} && exec ./ash ./drop.sh", work.string())}};
  for (const auto& argv : ways) {
    SCOPED_TRACE(argv.back());
    Running child(argv);
    ASSERT_TRUE(child.runs("busybox"));
    ASSERT_TRUE(wait_for(
        [&] { return !make_process_control()->inspect(child.pid).value().script.empty(); }));
    const auto info = make_process_control()->inspect(child.pid).value();
    EXPECT_EQ(info.script, (work / "./drop.sh").string());
    EXPECT_NE(info.script_proof.find("open by the process"), std::string::npos)
        << info.script_proof;
    agent::Sha256Sink sha;
    auto read = make_files()->stream_script(child.ref(), sha, 0);
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(sha.hex_digest(), sha_of_file(work / "drop.sh"));
    EXPECT_NE(sha.hex_digest(), sha_of_file(busybox)) << "the script, not the multi-call binary";
  }
}

// An interpreter copied under a name that is no interpreter's (`kworkerd`): no list of names
// can know it. Its script is the argument it holds open.
TEST_F(FilesTest, AnInterpreterUnderAnotherNameIsKnownByTheScriptItHoldsOpen) {
  const auto work = dir.path() / "work";
  fs::create_directory(work);
  std::ofstream(work / "job.sh") << "# RIPOSTE renamed interpreter\nsleep 30 >/dev/null 2>&1\n";
  fs::copy_file("/usr/bin/dash", work / "kworkerd");
  Running child({(work / "kworkerd").string(), (work / "job.sh").string()});
  ASSERT_TRUE(child.runs("kworkerd"));
  ASSERT_TRUE(
      wait_for([&] { return !make_process_control()->inspect(child.pid).value().script.empty(); }));
  const auto info = make_process_control()->inspect(child.pid).value();
  EXPECT_EQ(info.script, (work / "job.sh").string());
  EXPECT_NE(info.script_proof.find("open by the process"), std::string::npos) << info.script_proof;
  agent::Sha256Sink sha;
  auto read = make_files()->stream_script(child.ref(), sha, 0);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(sha.hex_digest(), sha_of_file(work / "job.sh"));
}

// The script's path goes through a link a user owns: refused, as for any path.
TEST_F(FilesTest, AScriptReachedThroughAUsersLinkIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to own links as another user";
  const auto real = dir.path() / "real";
  fs::create_directory(real);
  std::ofstream(real / "job.sh") << "sleep 30\n";
  fs::create_directory_symlink(real, dir.path() / "via");
  ASSERT_EQ(::lchown((dir.path() / "via").c_str(), 65534, 65534), 0);
  Running child({"/bin/sh", (dir.path() / "via" / "job.sh").string()});
  ASSERT_TRUE(child.runs("dash"));
  auto files = make_files();
  agent::Sha256Sink sha;
  auto info = files->stream_script(child.ref(), sha, 0);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().message.find("owned by uid 65534"), std::string::npos)
      << info.error().message;
}

// A file that grows while it is read (`yes >> f`) is read up to the size it had when opened:
// the spool limit holds and the action ends. The sink here appends 8 MiB after the first chunk.
TEST_F(FilesTest, AFileGrowingWhileReadIsReadUpToItsSizeAtOpen) {
  struct GrowingSink final : ByteSink {
    explicit GrowingSink(fs::path p) : path(std::move(p)) {}
    Status write(std::span<const std::uint8_t> bytes) override {
      if (received == 0) std::ofstream(path, std::ios::app) << std::string(8 << 20, 'y');
      received += bytes.size();
      return ok_status();
    }
    fs::path path;
    std::uint64_t received = 0;
  } sink(sample);
  auto info = make_files()->stream(sample, sink, 4 << 20);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->size, content.size());
  EXPECT_EQ(sink.received, content.size());
  EXPECT_GT(fs::file_size(sample), content.size()) << "the file did grow meanwhile";
}

TEST_F(FilesTest, RelativePathsAreRefused) {
  agent::Sha256Sink sha;
  auto relative = make_files()->stream("etc/passwd", sha, 0);
  ASSERT_FALSE(relative);
  EXPECT_NE(relative.error().message.find("not an absolute path"), std::string::npos);
}

}  // namespace
}  // namespace riposte::platform
