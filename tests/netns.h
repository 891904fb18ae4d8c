#pragma once

// Network namespaces for tests that change the network (nftables rules, listeners): whatever they
// do stays inside a namespace the test created, never on this machine's own network.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace riposte::testing {

// Runs `fn` on a thread that has entered network namespace `ns` (/var/run/netns/NS, as `ip netns
// add` makes it): sockets it creates, and libnftables contexts it opens, belong to that namespace.
template <typename Fn>
auto in_netns(const std::string& ns, Fn fn) {
  std::optional<decltype(fn())> result;
  std::thread([&] {
    const int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "cannot enter netns " << ns;
      return;
    }
    ::close(fd);
    result.emplace(fn());
  }).join();
  if (!result) {
    if constexpr (std::is_default_constructible_v<decltype(fn())>)
      return decltype(fn()){};
    else
      throw std::runtime_error("cannot enter netns " + ns);
  }
  return std::move(*result);
}

// "The outside" for tests that need a host to talk to an address that is not its own: a network
// namespace behind a veth pair, this host at 198.18.N.1/30 and the outside peer at 198.18.N.2
// (RFC 2544's benchmark range, routed nowhere else). Loopback cannot stand in: 127.0.0.0/8 is
// every host's own address and never an outside one. Each test picks its own N, so tests run in
// parallel (and agents, which see every connection on this host) never mix theirs up.
class OutsideNetwork {
 public:
  explicit OutsideNetwork(int n)
      : ns_("riposte-outside-" + std::to_string(::getpid()) + "-" + std::to_string(n)),
        veth_("rqo" + std::to_string(::getpid() % 10000) + "x" + std::to_string(n)),
        address_("198.18." + std::to_string(n) + ".2") {
    const auto prefix = "198.18." + std::to_string(n) + ".";
    for (const auto& cmd : std::vector<std::string>{
             "ip netns add " + ns_,
             "ip link add " + veth_ + " type veth peer name " + veth_ + "p netns " + ns_,
             "ip addr add " + prefix + "1/30 dev " + veth_, "ip link set " + veth_ + " up",
             "ip -n " + ns_ + " addr add " + prefix + "2/30 dev " + veth_ + "p",
             "ip -n " + ns_ + " link set " + veth_ + "p up", "ip -n " + ns_ + " link set lo up"})
      EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    sockaddr_in at{};
    at.sin_family = AF_INET;
    ::inet_pton(AF_INET, address_.c_str(), &at.sin_addr);
    listener_ = in_netns(ns_, [&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
      EXPECT_EQ(::listen(fd, 4), 0);
      return fd;
    });
    socklen_t length = sizeof at;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&at), &length);
    port_ = ntohs(at.sin_port);
  }
  // Deleting the namespace takes the veth pair and whatever listened in it.
  ~OutsideNetwork() {
    ::close(listener_);
    if (std::system(("ip netns del " + ns_).c_str()) != 0) ADD_FAILURE() << "netns " << ns_;
  }
  OutsideNetwork(const OutsideNetwork&) = delete;
  OutsideNetwork& operator=(const OutsideNetwork&) = delete;

  // The outside peer's address, and the port it listens on (connections are queued, not read).
  const std::string& address() const { return address_; }
  std::uint16_t port() const { return port_; }
  int listener() const { return listener_; }

 private:
  std::string ns_, veth_, address_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace riposte::testing
