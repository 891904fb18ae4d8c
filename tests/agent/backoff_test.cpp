#include "agent/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace riposte::agent {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DelaysGrowExponentiallyWithinJitterBounds) {
  Backoff backoff(milliseconds(100), milliseconds(10'000), 1);
  std::int64_t ceiling = 100;
  for (int i = 0; i < 6; ++i) {
    const auto d = backoff.next().count();
    EXPECT_GE(d, ceiling / 2) << "attempt " << i;
    EXPECT_LE(d, ceiling) << "attempt " << i;
    ceiling *= 2;
  }
}

TEST(Backoff, NeverExceedsTheMaximumHoweverManyAttempts) {
  Backoff backoff(milliseconds(100), milliseconds(5'000), 2);
  for (int i = 0; i < 200; ++i) {
    const auto d = backoff.next();
    EXPECT_LE(d, milliseconds(5'000));
    EXPECT_GE(d, milliseconds(0));
  }
  // Late attempts sit in the top band: [max/2, max].
  EXPECT_GE(backoff.next(), milliseconds(2'500));
}

TEST(Backoff, ResetStartsOver) {
  Backoff backoff(milliseconds(100), milliseconds(60'000), 3);
  for (int i = 0; i < 10; ++i) backoff.next();
  backoff.reset();
  EXPECT_EQ(backoff.attempt(), 0u);
  EXPECT_LE(backoff.next(), milliseconds(100));
}

TEST(Backoff, JitterSpreadsAFleet) {
  // Agents with different seeds must not all pick the same delay after a controller restart.
  std::set<std::int64_t> delays;
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Backoff backoff(milliseconds(1000), milliseconds(60'000), seed);
    delays.insert(backoff.next().count());
  }
  EXPECT_GT(delays.size(), 25u);
}

}  // namespace
}  // namespace riposte::agent
