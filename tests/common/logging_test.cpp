#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

namespace riposte {
namespace {

std::string journal_line(spdlog::level::level_enum level, std::string_view text) {
  spdlog::details::log_msg msg("agent", level, text);
  spdlog::memory_buf_t out;
  journal_formatter()->format(msg, out);
  return std::string(out.data(), out.size());
}

// journald turns the "<N>" prefix into the entry's priority (sd-daemon(3)).
TEST(JournalFormatter, SyslogPriorityPrefixAndNoTimestamp) {
  EXPECT_EQ(journal_line(spdlog::level::err, "cannot open actions.db"),
            "<3>agent: cannot open actions.db\n");
  EXPECT_EQ(journal_line(spdlog::level::warn, "retrying"), "<4>agent: retrying\n");
  EXPECT_EQ(journal_line(spdlog::level::info, "connected"), "<6>agent: connected\n");
  EXPECT_EQ(journal_line(spdlog::level::debug, "frame"), "<7>agent: frame\n");
  EXPECT_EQ(journal_line(spdlog::level::critical, "abort"), "<2>agent: abort\n");
}

// A hostname an agent reported, an alert's field: quoted text cannot forge a second log line or
// send terminal escapes to whoever reads the log.
TEST(JournalFormatter, ControlCharactersInTheMessageAreEscaped) {
  EXPECT_EQ(journal_line(spdlog::level::info, "agent web-01\nFAKE entry \x1b[2J done"),
            "<6>agent: agent web-01\\x0aFAKE entry \\x1b[2J done\n");
  EXPECT_EQ(journal_line(spdlog::level::info, "tab\there"), "<6>agent: tab\\x09here\n");
}

}  // namespace
}  // namespace riposte
