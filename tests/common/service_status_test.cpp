#include "common/service_status.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/secure_file.h"
#include "tests/test_dir.h"

namespace riposte {
namespace {

using nlohmann::json;

TEST(ServiceStatus, RunningWhileThisProcessLivesAndStoppedAfterEnd) {
  testing::TempDir dir;
  ManualClock clock(1'800'000'000'000);
  ServiceStatus status(dir.path() / "status.json", clock);
  ASSERT_TRUE(status.begin());
  auto view = read_service_status(dir.path() / "status.json");
  EXPECT_TRUE(view.present);
  EXPECT_TRUE(view.running);
  EXPECT_EQ(view.fields["pid"], static_cast<long>(::getpid()));
  EXPECT_EQ(view.fields["started_at"], "2027-01-15T08:00:00.000Z");
  status.set("connected", true);
  EXPECT_EQ(read_service_status(dir.path() / "status.json").fields["connected"], true);
  status.end("stopped");
  view = read_service_status(dir.path() / "status.json");
  EXPECT_FALSE(view.running);
  EXPECT_EQ(view.fields["stop_reason"], "stopped");
}

// A daemon killed with SIGKILL leaves running:true behind; its dead pid must not read as running.
TEST(ServiceStatus, DeadPidIsNotRunning) {
  testing::TempDir dir;
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(write_file_atomic(dir.path() / "status.json",
                                json{{"pid", child}, {"running", true}}.dump(), 0644));
  EXPECT_FALSE(read_service_status(dir.path() / "status.json").running);
}

TEST(ServiceStatus, MissingOrCorruptFileIsAbsent) {
  testing::TempDir dir;
  EXPECT_FALSE(read_service_status(dir.path() / "status.json").present);
  ASSERT_TRUE(write_file_atomic(dir.path() / "status.json", "{not json", 0644));
  EXPECT_FALSE(read_service_status(dir.path() / "status.json").present);
}

// The last error of a crashed run is what an operator looking at a restart loop needs: a new
// start keeps it; errors logged through spdlog land in the file.
TEST(ServiceStatus, ErrorLogLinesBecomeLastErrorAndSurviveRestart) {
  testing::TempDir dir;
  ManualClock clock(1'800'000'000'000);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>()));
  {
    auto status = std::make_shared<ServiceStatus>(dir.path() / "status.json", clock);
    ASSERT_TRUE(status->begin());
    record_errors_in(status);
    spdlog::warn("only a warning");
    EXPECT_TRUE(read_service_status(dir.path() / "status.json").fields["last_error"].is_null());
    spdlog::error("cannot open {}", "/var/lib/riposte/riposte.db");
    status->end("exited");
  }
  spdlog::set_default_logger(previous);
  ServiceStatus restarted(dir.path() / "status.json", clock);
  ASSERT_TRUE(restarted.begin());
  auto view = read_service_status(dir.path() / "status.json");
  EXPECT_TRUE(view.running);
  EXPECT_EQ(view.fields["last_error"], "cannot open /var/lib/riposte/riposte.db");
  EXPECT_EQ(view.fields["last_error_at"], "2027-01-15T08:00:00.000Z");
}

}  // namespace
}  // namespace riposte
