#pragma once

// What an action did, in one line a reviewer reads: "killed pid 4242 (miner): terminated",
// "2 YARA matches: Mimikatz_Strings on /tmp/x, ...", "captured 1.2 GiB of memory (1.2 GiB core,
// sha256 3f2a…)". From the action's JSON form (action_dispatcher.h action_json: kind, state,
// reason, result as the kind's result message in proto3 JSON with field names as in
// actions.proto).

#include <nlohmann/json.hpp>
#include <string>

namespace riposte {

std::string action_outcome_text(const nlohmann::json& action);

// "812 bytes", "6.4 MiB", "1.2 GiB".
std::string bytes_text(std::uint64_t n);

}  // namespace riposte
