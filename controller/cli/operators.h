#pragma once

// `riposte operators create|list|disable`: the named people who use the API, each with a role
// (viewer, analyst, responder, admin); and `riposte integrations create|list|disable`: the
// identities SIEM forwarders submit alerts with (role `ingest`, which may submit alerts and
// nothing else, and a max mode that caps every run their alerts start). Both are operators on
// the controller (one table, one token scheme); admin only.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "controller/cli/support.h"

namespace riposte::cli {

class OperatorCommands {
 public:
  void attach(CLI::App& app);
  // Runs the command that was parsed; nullopt when none of these was.
  std::optional<int> run(const Connection& c);

 private:
  // One noun's three verbs: "operators" or "integrations".
  struct Noun {
    CLI::App* create = nullptr;
    CLI::App* list = nullptr;
    CLI::App* disable = nullptr;
  };
  Noun operators_, integrations_;
  bool json_ = false;
  std::string name_;
  std::string role_;
  std::string max_mode_ = "approve";
};

}  // namespace riposte::cli
