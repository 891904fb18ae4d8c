#include "common/log_budget.h"

#include <gtest/gtest.h>

namespace riposte {
namespace {

// A flood of refused connections writes a bounded number of lines a minute, and the next line
// written says how many were not.
TEST(LogBudget, AtMostSoManyLinesAMinuteAndTheNextSaysHowManyWereHeldBack) {
  LogBudget budget(3);
  std::uint64_t held_back = 99;
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += budget.take(1'000 + i, held_back);
  EXPECT_EQ(written, 3);
  EXPECT_EQ(held_back, 0u);  // from the third line, written before any was held back
  EXPECT_FALSE(budget.take(60'999, held_back));  // still the same minute
  ASSERT_TRUE(budget.take(61'000, held_back));
  EXPECT_EQ(held_back, 998u);
  EXPECT_EQ(LogBudget::held_back_note(held_back, "refused connections"),
            " (998 more refused connections not logged)");
  EXPECT_EQ(LogBudget::held_back_note(0, "x"), "");
  EXPECT_TRUE(budget.take(61'001, held_back));
  EXPECT_EQ(held_back, 0u);
}

}  // namespace
}  // namespace riposte
