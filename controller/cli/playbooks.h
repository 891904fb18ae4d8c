#pragma once

// `riposte playbooks validate DIR`: loads every playbook file in DIR with the controller's own
// loader, offline, and prints each playbook's steps or each file's first error (FILE:LINE).
// `riposte playbooks impact FILE`: for each action step, the assets it can touch (from the
// controller's asset map), who is responsible for them, and the mode it would really run in
// under the controller's autonomy ceilings: the list to agree with those teams before raising
// a playbook's autonomy.
// `riposte playbooks list` and `riposte playbooks run NAME --alert ID [--simulate]`: the
// playbooks the controller loaded, and starting one over an alert.
// `riposte playbooks test FILE --alerts FILE.jsonl`: the backtest, offline — per recorded alert,
// whether the playbook triggers, the path it takes and the actions it would dispatch.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/cli/support.h"

namespace riposte::cli {

class PlaybookCommands {
 public:
  void attach(CLI::App& app);
  // Runs an offline command that was parsed (validate, test); nullopt when none was.
  std::optional<int> run_offline();
  // Runs a command that asks the controller (impact, list, run); nullopt when none was parsed.
  std::optional<int> run(const Connection& c);

 private:
  CLI::App* validate_ = nullptr;
  CLI::App* impact_ = nullptr;
  CLI::App* test_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* start_ = nullptr;
  std::string name_;
  std::string alert_id_;
  bool simulate_ = false;
  bool force_ = false;
  bool from_controller_ = false;
  std::string config_;
  std::string file_;
  std::string alerts_;
  bool json_ = false;
  std::vector<std::string> dirs_;
};

}  // namespace riposte::cli
