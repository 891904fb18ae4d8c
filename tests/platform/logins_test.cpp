// utmp/wtmp parsing on files written by the test with glibc's own writer (pututxline/updwtmpx),
// so the format is the one the system writes.

#include "platform/logins.h"

#include <gtest/gtest.h>
#include <utmpx.h>

#include <cstring>
#include <fstream>

#include "tests/test_dir.h"

namespace riposte::platform {
namespace {

utmpx login(const char* user, const char* line, const char* host, short type, long seconds) {
  utmpx u{};
  u.ut_type = type;
  u.ut_pid = 4242;
  std::strncpy(u.ut_user, user, sizeof(u.ut_user));
  std::strncpy(u.ut_line, line, sizeof(u.ut_line));
  std::strncpy(u.ut_host, host, sizeof(u.ut_host));
  u.ut_tv.tv_sec = static_cast<int32_t>(seconds);
  return u;
}

TEST(Logins, ReadsCurrentSessionsAndRecentLoginsNewestFirst) {
  testing::TempDir dir;
  const auto wtmp = (dir.path() / "wtmp").string();
  const auto utmp = (dir.path() / "utmp").string();
  auto a = login("alice", "pts/0", "203.0.113.7", USER_PROCESS, 1'700'000'000);
  auto boot = login("reboot", "~", "6.1.0", BOOT_TIME, 1'700'000'100);
  auto b = login("bob", "tty1", "", USER_PROCESS, 1'700'000'200);
  // updwtmpx appends but does not create, like the system's own files.
  std::ofstream(wtmp).close();
  std::ofstream(utmp).close();
  for (auto* u : {&a, &boot, &b}) updwtmpx(wtmp.c_str(), u);
  updwtmpx(utmp.c_str(), &b);  // bob is still logged in

  auto logins = make_logins(utmp, wtmp);
  auto recent = logins->recent(10).value();
  ASSERT_EQ(recent.size(), 2u) << "only user logins, not boot records";
  EXPECT_EQ(recent[0].user, "bob");
  EXPECT_EQ(recent[1].user, "alice");
  EXPECT_EQ(recent[1].host, "203.0.113.7");
  EXPECT_EQ(recent[1].terminal, "pts/0");
  EXPECT_EQ(recent[1].time_unix_ms, 1'700'000'000'000);
  EXPECT_EQ(logins->recent(1).value().size(), 1u);

  auto current = logins->current().value();
  ASSERT_EQ(current.size(), 1u);
  EXPECT_EQ(current[0].user, "bob");
  EXPECT_TRUE(current[0].active);

  auto none = make_logins((dir.path() / "absent").string(), (dir.path() / "absent2").string());
  EXPECT_TRUE(none->current().value().empty());
}

}  // namespace
}  // namespace riposte::platform
