#include "agent/local_policy.h"

#include <fmt/format.h>

#include <algorithm>

namespace riposte::agent {

LocalPolicy::LocalPolicy(LocalPolicyConfig config, pid_t agent_pid)
    : config_(std::move(config)), agent_pid_(agent_pid) {}

Status LocalPolicy::may_signal(const platform::ProcessInfo& p) const {
  if (p.pid == 1) return Error{"refused by local policy: pid 1 (init) is never signalled"};
  if (p.kernel_thread || p.pid == 2 || p.ppid == 2) {
    return Error{fmt::format("refused by local policy: {} ({}) is a kernel thread", p.pid, p.name)};
  }
  if (p.pid == agent_pid_)
    return Error{"refused by local policy: the agent does not signal itself"};
  const auto& names = config_.protected_names;
  if (std::find(names.begin(), names.end(), p.name) != names.end()) {
    return Error{fmt::format("refused by local policy: process name '{}' is protected", p.name)};
  }
  const auto& paths = config_.protected_paths;
  if (!p.exe.empty() && std::find(paths.begin(), paths.end(), p.exe) != paths.end()) {
    return Error{fmt::format("refused by local policy: executable {} is protected", p.exe)};
  }
  return ok_status();
}

}  // namespace riposte::agent
