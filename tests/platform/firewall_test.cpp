// Quarantine for real: two network namespaces joined by a veth pair, made by the test. The
// "host" namespace gets quarantined; the "peer" namespace plays the controller and everyone else.

#include "platform/firewall.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "agent/quarantine_keeper.h"
#include "tests/integration/harness.h"
#include "tests/netns.h"

namespace riposte::platform {
namespace {

using riposte::testing::in_netns;
using riposte::testing::run_command;

int listen_on(const std::string& ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0)
    return -1;
  return fd;
}

// A TCP handshake within 400 ms? Dropped SYNs time out; that is what quarantine looks like.
bool connects(const std::string& ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  pollfd p{fd, POLLOUT, 0};
  bool ok = false;
  if (::poll(&p, 1, 400) == 1) {
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    ok = error == 0;
  }
  ::close(fd);
  return ok;
}

// Polls `count()` until it reaches `want` (up to 5 s).
template <typename Count>
bool wait_until_count(Count count, std::size_t want) {
  for (int i = 0; i < 50; ++i, std::this_thread::sleep_for(std::chrono::milliseconds(100)))
    if (count() >= want) return true;
  return false;
}

class QuarantineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    const auto suffix = std::to_string(::getpid());
    host = "rq-host-" + suffix;
    peer = "rq-peer-" + suffix;
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"ip", "netns", "add", host},
             {"ip", "netns", "add", peer},
             {"ip", "link", "add", "rqh" + suffix, "netns", host, "type", "veth", "peer", "name",
              "rqp" + suffix, "netns", peer},
             {"ip", "-n", host, "addr", "add", "10.77.0.1/24", "dev", "rqh" + suffix},
             {"ip", "-n", peer, "addr", "add", "10.77.0.2/24", "dev", "rqp" + suffix},
             {"ip", "-n", host, "link", "set", "rqh" + suffix, "up"},
             {"ip", "-n", peer, "link", "set", "rqp" + suffix, "up"},
             {"ip", "-n", host, "link", "set", "lo", "up"},
             {"ip", "-n", peer, "link", "set", "lo", "up"}}) {
      const auto r = run_command(cmd);
      ASSERT_EQ(r.exit_code, 0) << cmd[0] << " " << cmd[1] << " " << cmd[2] << ": " << r.err;
    }
    // Listeners: the "controller" (9000), an arbitrary service (9001) and an allow-listed one
    // (9002) on the peer; a service on the host (22000) and one on its loopback (22001).
    for (int port : {9000, 9001, 9002})
      peer_listeners.push_back(in_netns(peer, [&] { return listen_on("10.77.0.2", port); }));
    host_listeners.push_back(in_netns(host, [] { return listen_on("10.77.0.1", 22000); }));
    host_listeners.push_back(in_netns(host, [] { return listen_on("127.0.0.1", 22001); }));
    for (int fd : peer_listeners) ASSERT_GE(fd, 0);
    for (int fd : host_listeners) ASSERT_GE(fd, 0);
  }

  void TearDown() override {
    for (int fd : peer_listeners) ::close(fd);
    for (int fd : host_listeners) ::close(fd);
    if (!host.empty()) {
      run_command({"ip", "netns", "del", host});
      run_command({"ip", "netns", "del", peer});
    }
  }

  bool host_reaches(int port) {
    return in_netns(host, [&] { return connects("10.77.0.2", port); });
  }
  bool peer_reaches_host() {
    return in_netns(peer, [] { return connects("10.77.0.1", 22000); });
  }
  bool host_reaches_own_loopback() {
    return in_netns(host, [] { return connects("127.0.0.1", 22001); });
  }

  QuarantineSpec spec() const { return {{"10.77.0.2", 9000, "tcp"}, {{"10.77.0.2", 9002, "tcp"}}}; }

  std::string host, peer;
  std::vector<int> peer_listeners, host_listeners;
};

TEST_F(QuarantineTest, IsolatesTheHostExceptControllerLoopbackAndAllowListThenReleases) {
  ASSERT_TRUE(host_reaches(9001));
  ASSERT_TRUE(peer_reaches_host());

  auto firewall = make_firewall();
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(spec()).ok(); }));
  EXPECT_TRUE(in_netns(host, [&] { return firewall->quarantined().value_or(false); }));

  EXPECT_TRUE(host_reaches(9000)) << "the controller must stay reachable";
  EXPECT_TRUE(host_reaches(9002)) << "the allow list must stay reachable";
  EXPECT_TRUE(host_reaches_own_loopback());
  EXPECT_FALSE(host_reaches(9001)) << "everything else is cut";
  EXPECT_FALSE(peer_reaches_host()) << "inbound is cut too";

  // What an operator would look at: the ruleset as nft prints it.
  const auto listed = run_command({"ip", "netns", "exec", host, "nft", "list", "ruleset"});
  EXPECT_NE(listed.out.find("table inet riposte_quarantine"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("policy drop"), std::string::npos) << listed.out;

  ASSERT_TRUE(in_netns(host, [&] { return firewall->release().ok(); }));
  EXPECT_FALSE(in_netns(host, [&] { return firewall->quarantined().value_or(true); }));
  EXPECT_TRUE(host_reaches(9001));
  EXPECT_TRUE(peer_reaches_host());
  EXPECT_EQ(
      run_command({"ip", "netns", "exec", host, "nft", "list", "ruleset"}).out.find("riposte"),
      std::string::npos);
}

TEST_F(QuarantineTest, ReapplyingReplacesTheRulesAtomically) {
  auto firewall = make_firewall();
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(spec()).ok(); }));
  auto narrower = spec();
  narrower.allow.clear();
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(narrower).ok(); }));
  EXPECT_FALSE(host_reaches(9002)) << "the second rule set replaced the first";
  EXPECT_TRUE(host_reaches(9000));
  const auto listed = run_command({"ip", "netns", "exec", host, "nft", "list", "ruleset"});
  std::size_t tables = 0;
  for (std::size_t at = 0;
       (at = listed.out.find("table inet riposte_quarantine", at)) != std::string::npos; ++at)
    ++tables;
  EXPECT_EQ(tables, 1u);
  // Releasing twice is fine.
  EXPECT_TRUE(in_netns(host, [&] { return firewall->release().ok(); }));
  EXPECT_TRUE(in_netns(host, [&] { return firewall->release().ok(); }));
}

TEST_F(QuarantineTest, AgentRestartReappliesAPersistedQuarantineAndTimeoutReleasesIt) {
  auto firewall = make_firewall();
  testing::TempDir state;
  ManualClock clock(1'000'000);
  const auto file = state.path() / "quarantine.json";
  {
    agent::QuarantineKeeper keeper(*firewall, file, clock);
    ASSERT_TRUE(in_netns(
        host, [&] { return keeper.quarantine(spec(), clock.now_unix_ms() + 60'000).ok(); }));
  }
  // The agent goes away and the rules with it (reboot, someone flushed the ruleset).
  ASSERT_EQ(run_command({"ip", "netns", "exec", host, "nft", "flush", "ruleset"}).exit_code, 0);
  ASSERT_TRUE(host_reaches(9001));

  // The agent code path on start: restore() re-applies what was persisted.
  agent::QuarantineKeeper restarted(*firewall, file, clock);
  EXPECT_TRUE(in_netns(host, [&] { return restarted.restore().value_or(false); }));
  EXPECT_FALSE(host_reaches(9001));
  EXPECT_TRUE(host_reaches(9000));

  // Not yet due; then due: released automatically, state gone.
  EXPECT_FALSE(in_netns(host, [&] { return restarted.release_if_due().value_or(true); }));
  clock.advance_ms(60'000);
  EXPECT_TRUE(in_netns(host, [&] { return restarted.release_if_due().value_or(false); }));
  EXPECT_TRUE(host_reaches(9001));
  EXPECT_FALSE(std::filesystem::exists(file));
  // With no intent persisted, restore() removes stray rules instead of keeping them.
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(spec()).ok(); }));
  EXPECT_FALSE(in_netns(host, [&] { return restarted.restore().value_or(true); }));
  EXPECT_TRUE(host_reaches(9001));
}

// The quarantine table as the kernel holds it, by hook: what network.status now reports.
TEST_F(QuarantineTest, TheKernelsTableIsReadBackWithItsDroppingHooks) {
  auto firewall = make_firewall();
  auto before = in_netns(host, [&] { return firewall->enforced(); });
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_FALSE(before->present);
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(spec()).ok(); }));
  auto during = in_netns(host, [&] { return firewall->enforced(); });
  ASSERT_TRUE(during);
  EXPECT_TRUE(during->present);
  EXPECT_EQ(during->hooks, (std::vector<std::string>{"input", "output", "forward"}));
  EXPECT_TRUE(during->complete());
  ASSERT_TRUE(in_netns(host, [&] { return firewall->release().ok(); }));
  EXPECT_FALSE(in_netns(host, [&] { return firewall->enforced(); })->present);
}

// Other software's tables (Docker's nat and filter chains here) are neither touched by applying a
// quarantine nor by releasing it.
TEST_F(QuarantineTest, DockersTablesAreLeftAsTheyWere) {
  const std::string docker_rules =
      "table ip nat {\n"
      "  chain DOCKER {\n  }\n"
      "  chain POSTROUTING {\n"
      "    type nat hook postrouting priority srcnat; policy accept;\n"
      "    ip saddr 172.17.0.0/16 oifname != \"docker0\" masquerade\n"
      "  }\n"
      "}\n"
      "table ip filter {\n"
      "  chain DOCKER-USER {\n    return\n  }\n"
      "  chain FORWARD {\n"
      "    type filter hook forward priority filter; policy drop;\n"
      "    jump DOCKER-USER\n"
      "    oifname \"docker0\" ct state related,established accept\n"
      "  }\n"
      "}\n";
  testing::TempDir dir;
  std::ofstream(dir.path() / "docker.nft") << docker_rules;
  ASSERT_EQ(
      run_command({"ip", "netns", "exec", host, "nft", "-f", (dir.path() / "docker.nft").string()})
          .exit_code,
      0);
  const auto listing = [&](const char* family, const char* table) {
    return run_command({"ip", "netns", "exec", host, "nft", "list", "table", family, table}).out;
  };
  const auto nat = listing("ip", "nat");
  const auto filter = listing("ip", "filter");
  ASSERT_NE(filter.find("DOCKER-USER"), std::string::npos) << filter;

  auto firewall = make_firewall();
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(spec()).ok(); }));
  EXPECT_EQ(listing("ip", "nat"), nat);
  EXPECT_EQ(listing("ip", "filter"), filter);
  ASSERT_TRUE(in_netns(host, [&] { return firewall->release().ok(); }));
  EXPECT_EQ(listing("ip", "nat"), nat);
  EXPECT_EQ(listing("ip", "filter"), filter);
}

// A "container" namespace routed through the quarantined host, as Docker, libvirt or Kubernetes
// hosts route theirs: the host's forwarding must be cut too, except to the allow list.
class ForwardingQuarantineTest : public QuarantineTest {
 protected:
  void SetUp() override {
    QuarantineTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const auto suffix = std::to_string(::getpid());
    container = "rq-ctr-" + suffix;
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"ip", "netns", "add", container},
             {"ip", "link", "add", "rqc" + suffix, "netns", host, "type", "veth", "peer", "name",
              "rqd" + suffix, "netns", container},
             {"ip", "-n", host, "addr", "add", "10.78.0.1/24", "dev", "rqc" + suffix},
             {"ip", "-n", container, "addr", "add", "10.78.0.2/24", "dev", "rqd" + suffix},
             {"ip", "-n", host, "link", "set", "rqc" + suffix, "up"},
             {"ip", "-n", container, "link", "set", "rqd" + suffix, "up"},
             {"ip", "-n", container, "link", "set", "lo", "up"},
             {"ip", "-n", container, "route", "add", "default", "via", "10.78.0.1"},
             {"ip", "-n", peer, "route", "add", "10.78.0.0/24", "via", "10.77.0.1"},
             {"ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1"}}) {
      const auto r = run_command(cmd);
      ASSERT_EQ(r.exit_code, 0) << cmd[0] << " " << cmd[1] << " " << cmd[2] << ": " << r.err;
    }
  }
  void TearDown() override {
    if (!container.empty()) run_command({"ip", "netns", "del", container});
    QuarantineTest::TearDown();
  }
  bool container_reaches(int port) {
    return in_netns(container, [&] { return connects("10.77.0.2", port); });
  }
  std::string container;
};

TEST_F(ForwardingQuarantineTest, TrafficTheHostForwardsIsCutExceptTheAllowListThenRestored) {
  ASSERT_TRUE(container_reaches(9001)) << "the container reaches the peer through the host";
  auto firewall = make_firewall();
  ASSERT_TRUE(in_netns(host, [&] { return firewall->quarantine(spec()).ok(); }));
  EXPECT_FALSE(container_reaches(9001)) << "forwarded traffic flows while quarantined";
  EXPECT_FALSE(container_reaches(9000)) << "the controller is the host agent's channel only";
  EXPECT_TRUE(container_reaches(9002)) << "the allow list holds for forwarded traffic too";
  EXPECT_FALSE(host_reaches(9001));
  ASSERT_TRUE(in_netns(host, [&] { return firewall->release().ok(); }));
  EXPECT_TRUE(container_reaches(9001));
}

// `systemctl reload nftables` with a stock /etc/nftables.conf runs `flush ruleset`; someone with
// root may also add an accept rule. The watch puts the quarantine back within seconds and says
// what it found; nothing is reported while the table is as applied.
TEST_F(QuarantineTest, FlushedOrAlteredQuarantineIsPutBackWithinFiveSecondsAndReported) {
  auto firewall = make_firewall();
  testing::TempDir state;
  SystemClock clock;
  agent::QuarantineKeeper keeper(*firewall, state.path() / "quarantine.json", clock);
  auto applied =
      in_netns(host, [&] { return keeper.quarantine(spec(), std::nullopt, "action-42"); });
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(applied->hooks, (std::vector<std::string>{"input", "output", "forward"}));

  std::mutex mutex;
  std::vector<agent::QuarantineTamper> seen;
  std::unique_ptr<agent::QuarantineWatch> watch;
  // Created on a thread inside the host namespace: the watch's own thread inherits it.
  in_netns(host, [&] {
    watch = std::make_unique<agent::QuarantineWatch>(keeper, std::chrono::milliseconds(500),
                                                     [&](const agent::QuarantineTamper& t) {
                                                       std::lock_guard lock(mutex);
                                                       seen.push_back(t);
                                                     });
    return true;
  });
  const auto tampers = [&] {
    std::lock_guard lock(mutex);
    return seen.size();
  };
  const auto blocked_again_within = [&](std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!host_reaches(9001)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(tampers(), 0u) << "an untouched quarantine is not reported";

  ASSERT_EQ(run_command({"ip", "netns", "exec", host, "nft", "flush", "ruleset"}).exit_code, 0);
  EXPECT_TRUE(blocked_again_within(std::chrono::seconds(5)));
  ASSERT_TRUE(wait_until_count(tampers, 1u));
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(seen[0].what, "removed");
    EXPECT_EQ(seen[0].action_id, "action-42");
    EXPECT_TRUE(seen[0].reapplied.ok());
  }
  EXPECT_TRUE(host_reaches(9000));

  for (const char* chain : {"input", "output"}) {
    ASSERT_EQ(run_command({"ip", "netns", "exec", host, "nft", "insert", "rule", "inet",
                           "riposte_quarantine", chain, "accept"})
                  .exit_code,
              0);
  }
  EXPECT_TRUE(blocked_again_within(std::chrono::seconds(5)));
  ASSERT_TRUE(wait_until_count(tampers, 2u));
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(seen[1].what, "altered");
  }
  auto kernel = in_netns(host, [&] { return firewall->enforced(); });
  ASSERT_TRUE(kernel);
  EXPECT_TRUE(kernel->complete());
  EXPECT_EQ(kernel->listing.find("\t\t\taccept\n"), std::string::npos)
      << "the inserted accept rules are gone: " << kernel->listing;

  // Released on purpose: nothing to put back.
  ASSERT_TRUE(in_netns(host, [&] { return keeper.release().ok(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(tampers(), 2u);
  EXPECT_TRUE(host_reaches(9001));
  watch.reset();
}

TEST(QuarantineSpecValidation, RefusesSpecsThatWouldCutTheControllerOrInjectRules) {
  EXPECT_FALSE(validate(QuarantineSpec{}));
  EXPECT_FALSE(validate({{"10.0.0.1", 0, "tcp"}, {}}));
  EXPECT_FALSE(validate({{"10.0.0.1", 443, "udp"}, {}}));
  EXPECT_FALSE(validate({{"controller.example", 443, "tcp"}, {}}));
  EXPECT_FALSE(validate({{"10.0.0.1", 443, "tcp"}, {{"1.2.3.4; flush ruleset", 0, "any"}}}));
  EXPECT_FALSE(validate({{"10.0.0.1", 443, "tcp"}, {{"10.0.0.0/33", 0, "any"}}}));
  EXPECT_FALSE(validate({{"10.0.0.1", 443, "tcp"}, {{"10.0.0.9", 53, "any"}}}));
  EXPECT_FALSE(validate({{"10.0.0.1", 443, "tcp"}, {{"10.0.0.9", 53, "icmp"}}}));
  EXPECT_TRUE(
      validate({{"10.0.0.1", 443, "tcp"}, {{"10.0.0.53", 53, "udp"}, {"fd00::/8", 0, "any"}}}));
}

}  // namespace
}  // namespace riposte::platform
