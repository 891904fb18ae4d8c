#pragma once

// Network namespaces for tests that change the network (nftables rules, listeners): whatever they
// do stays inside a namespace the test created, never on this machine's own network.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

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

}  // namespace riposte::testing
