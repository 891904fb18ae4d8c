// Per-address limits on the listeners: open connections at once, new ones a second, IPv6 counted
// by its /64, and memory bounded whatever addresses come.

#include "controller/gateway/connection_limiter.h"

#include <gtest/gtest.h>

namespace riposte::controller {
namespace {

using boost::asio::ip::make_address;
using namespace std::chrono_literals;

TEST(ConnectionLimiter, AnAddressHoldsAtMostItsConcurrentShareUntilTicketsReturn) {
  auto limiter = std::make_shared<ConnectionLimiter>("test", ConnectionLimits{.concurrent = 3});
  const auto a = make_address("192.0.2.1");
  std::vector<ConnectionLimiter::Ticket> held;
  for (int i = 0; i < 3; ++i) held.push_back(limiter->admit(a).value());
  EXPECT_FALSE(limiter->admit(a));
  EXPECT_TRUE(limiter->admit(make_address("192.0.2.2")));  // another address: its own share
  EXPECT_EQ(limiter->active(a), 3u);
  held.front().release();
  held.front().release();  // twice is once
  EXPECT_EQ(limiter->active(a), 2u);
  held.pop_back();  // destruction returns it too
  EXPECT_EQ(limiter->active(a), 1u);
  EXPECT_TRUE(limiter->admit(a));
  EXPECT_EQ(limiter->refused(), 1u);
}

TEST(ConnectionLimiter, NewConnectionsAreLimitedToTheRateAfterTheBurst) {
  auto limiter =
      std::make_shared<ConnectionLimiter>("test", ConnectionLimits{.per_second = 10, .burst = 5});
  const auto a = make_address("198.51.100.7");
  auto t = std::chrono::steady_clock::time_point{} + 1h;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter->admit(a, t)) << i;
  EXPECT_FALSE(limiter->admit(a, t));
  t += 100ms;  // one token
  EXPECT_TRUE(limiter->admit(a, t));
  EXPECT_FALSE(limiter->admit(a, t));
  t += 10s;  // refilled to the burst, not beyond
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter->admit(a, t)) << i;
  EXPECT_FALSE(limiter->admit(a, t));
}

TEST(ConnectionLimiter, IPv6IsCountedByItsSlash64AndMappedIPv4AsIPv4) {
  EXPECT_EQ(limit_key(make_address("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
  EXPECT_EQ(limit_key(make_address("2001:db8:1:2:ffff:1:2:3")), "2001:db8:1:2::/64");
  EXPECT_EQ(limit_key(make_address("::ffff:192.0.2.9")), "192.0.2.9");
  auto limiter = std::make_shared<ConnectionLimiter>("test", ConnectionLimits{.concurrent = 1});
  auto held = limiter->admit(make_address("2001:db8:1:2::1"));
  EXPECT_FALSE(limiter->admit(make_address("2001:db8:1:2::2")));  // same /64
  EXPECT_TRUE(limiter->admit(make_address("2001:db8:1:3::1")));
  auto v4 = limiter->admit(make_address("192.0.2.9"));
  EXPECT_FALSE(limiter->admit(make_address("::ffff:192.0.2.9")));
}

TEST(ConnectionLimiter, ASprayOfAddressesDoesNotGrowMemoryWithoutBound) {
  auto limiter = std::make_shared<ConnectionLimiter>(
      "test", ConnectionLimits{.concurrent = 4, .per_second = 1, .burst = 1});
  auto t = std::chrono::steady_clock::time_point{} + 1h;
  for (std::uint32_t i = 0; i < ConnectionLimiter::kMaxAddresses + 1000; ++i) {
    const auto address = boost::asio::ip::address_v4(0x0A000000u + i);  // 10.0.0.0/8
    (void)limiter->admit(address, t);                                   // ticket returned at once
  }
  EXPECT_LE(limiter->tracked(), ConnectionLimiter::kMaxAddresses);
  // Addresses with connections open are never forgotten (their counts would be lost).
  std::vector<ConnectionLimiter::Ticket> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(limiter->admit(make_address("192.0.2.1"), t + 5s * i).value());
  for (std::uint32_t i = 0; i < ConnectionLimiter::kMaxAddresses; ++i)
    (void)limiter->admit(boost::asio::ip::address_v4(0x0B000000u + i), t + 30s);
  EXPECT_EQ(limiter->active(make_address("192.0.2.1")), 4u);
  EXPECT_FALSE(limiter->admit(make_address("192.0.2.1"), t + 60s));
}

TEST(ConnectionLimiter, ATicketOutlivingItsLimiterIsSafe) {
  auto limiter = std::make_shared<ConnectionLimiter>("test", ConnectionLimits{.concurrent = 1});
  auto ticket = limiter->admit(make_address("192.0.2.1")).value();
  limiter.reset();
  ticket.release();  // the ticket kept it alive
  SUCCEED();
}

}  // namespace
}  // namespace riposte::controller
