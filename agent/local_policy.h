#pragma once

// The agent's own safety policy: checks no controller can override, applied before any action
// touches the endpoint. A refusal carries a reason for the operator.

#include <string>
#include <vector>

#include "platform/process_control.h"

namespace riposte::agent {

struct LocalPolicyConfig {
  // Processes never to kill or suspend, by name (comm) or by executable path.
  std::vector<std::string> protected_names;
  std::vector<std::string> protected_paths;
};

class LocalPolicy {
 public:
  LocalPolicy(LocalPolicyConfig config, pid_t agent_pid);

  // May this process be killed or suspended? Refuses PID 1, kernel threads, the agent itself and
  // anything on the protected lists.
  Status may_signal(const platform::ProcessInfo& process) const;

 private:
  LocalPolicyConfig config_;
  pid_t agent_pid_;
};

}  // namespace riposte::agent
