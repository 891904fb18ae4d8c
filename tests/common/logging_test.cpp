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

}  // namespace
}  // namespace riposte
