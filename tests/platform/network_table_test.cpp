// A real loopback connection made by the test appears in the socket table with this process as
// its owner, and in the on-disk connection history.

#include "platform/network_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/connection_history.h"
#include "tests/test_dir.h"

namespace riposte::platform {
namespace {

struct LoopbackPair {
  int listener = -1, client = -1, server = -1;
  std::uint16_t port = 0;
  LoopbackPair() {
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(listener, 1);
    socklen_t length = sizeof(addr);
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length);
    port = ntohs(addr.sin_port);
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    server = ::accept(listener, nullptr, nullptr);
  }
  ~LoopbackPair() {
    for (int fd : {listener, client, server}) ::close(fd);
  }
};

TEST(NetworkTable, LoopbackConnectionShowsWithThisProcessAsOwner) {
  LoopbackPair pair;
  auto table = make_network_table()->connections();
  ASSERT_TRUE(table) << table.error().message;
  const Connection* outbound = nullptr;
  const Connection* listening = nullptr;
  for (const auto& c : *table) {
    if (c.protocol == "tcp" && c.remote_port == pair.port && c.remote_address == "127.0.0.1")
      outbound = &c;
    if (c.protocol == "tcp" && c.local_port == pair.port && c.state == "LISTEN") listening = &c;
  }
  ASSERT_NE(outbound, nullptr);
  EXPECT_EQ(outbound->state, "ESTABLISHED");
  EXPECT_EQ(outbound->pid, ::getpid());
  EXPECT_FALSE(outbound->process.empty());
  ASSERT_NE(listening, nullptr);
  EXPECT_EQ(listening->pid, ::getpid());
}

// A dual-stack listener's IPv4 client is listed in /proc/net/tcp6 as ::ffff:127.0.0.1: the table
// says 127.0.0.1, so validation's "did any host talk to this IP" finds it either way.
TEST(NetworkTable, AnIpv4PeerOfADualStackSocketIsItsIpv4Address) {
  const int listener = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int off = 0;
  ::setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  sockaddr_in6 addr6{};
  addr6.sin6_family = AF_INET6;
  addr6.sin6_addr = in6addr_any;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr6), sizeof(addr6)), 0);
  ::listen(listener, 1);
  socklen_t length = sizeof(addr6);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr6), &length);
  const std::uint16_t port = ntohs(addr6.sin6_port);
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const int server = ::accept(listener, nullptr, nullptr);
  auto table = make_network_table()->connections();
  ASSERT_TRUE(table) << table.error().message;
  const Connection* accepted = nullptr;
  for (const auto& c : *table)
    if (c.protocol == "tcp6" && c.local_port == port && c.state == "ESTABLISHED") accepted = &c;
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->remote_address, "127.0.0.1");
  EXPECT_EQ(accepted->local_address, "127.0.0.1");
  for (int fd : {listener, client, server}) ::close(fd);
}

TEST(ConnectionHistory, RemembersContactsAndForgetsThemAfterRetention) {
  testing::TempDir dir;
  constexpr std::int64_t kDay = 24LL * 3600 * 1000;
  auto history = agent::ConnectionHistory::open(dir.path() / "connections.db").value();
  LoopbackPair pair;
  const std::int64_t t0 = 1'800'000'000'000;
  ASSERT_TRUE(history->record(make_network_table()->connections().value(), t0));
  ASSERT_TRUE(history->record(make_network_table()->connections().value(), t0 + kDay));

  auto seen = history->contacts("127.0.0.1", t0 - kDay).value();
  auto ours = std::find_if(seen.begin(), seen.end(),
                           [&](const auto& s) { return s.remote_port == pair.port; });
  ASSERT_NE(ours, seen.end());
  EXPECT_EQ(ours->pid, ::getpid());
  EXPECT_EQ(ours->first_seen_ms, t0);
  EXPECT_EQ(ours->last_seen_ms, t0 + kDay);
  EXPECT_TRUE(history->contacts("192.0.2.99", 0).value().empty());
  EXPECT_TRUE(history->contacts("127.0.0.1", t0 + 2 * kDay).value().empty())
      << "nothing seen since";

  // Survives reopening (the agent restarting), then ages out after 30 days.
  history.reset();
  history = agent::ConnectionHistory::open(dir.path() / "connections.db").value();
  EXPECT_FALSE(history->contacts("127.0.0.1", 0).value().empty());
  EXPECT_EQ(history->prune(t0 + 30 * kDay).value(), 0);
  EXPECT_GT(history->prune(t0 + 32 * kDay).value(), 0);
  EXPECT_TRUE(history->contacts("127.0.0.1", 0).value().empty());
}

}  // namespace
}  // namespace riposte::platform
