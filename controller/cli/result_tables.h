#pragma once

// An action's result as a person reads it in a terminal: list-shaped results (process.list and
// process.tree, network.connections, host.logins, yara.scan, process.kill) as tables with one row
// per item, anything else as `key: value` lines. `--json` prints the result exactly instead.

#include <nlohmann/json.hpp>
#include <string>

namespace riposte::cli {

// `result` is the kind's result message as JSON (action_dispatcher.h action_json).
void print_result(const std::string& kind, const nlohmann::json& result);

}  // namespace riposte::cli
