#pragma once

// For `riposte-controller up`: runs a riposte-agent on this same host as a child process, enrolled
// against this controller, so one command gives a working controller with an agent.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace riposte::controller {

// Runs `argv` to completion; returns its exit status (or an error if it could not start).
Result<int> run_child_to_completion(const std::vector<std::string>& argv);

// Starts `argv` in the background; returns its pid.
Result<pid_t> spawn_child(const std::vector<std::string>& argv);

// The riposte-agent binary installed next to this executable.
std::filesystem::path sibling_executable(const std::string& name);

}  // namespace riposte::controller
