#pragma once

// `riposte integrations create|list|disable`: the identities SIEM forwarders submit alerts with.
// An integration has role `ingest` (it may submit alerts and nothing else) and a max mode that
// caps every run its alerts start. Admin only.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "controller/cli/support.h"

namespace riposte::cli {

class IntegrationCommands {
 public:
  void attach(CLI::App& app);
  // Runs the command that was parsed; nullopt when none of these was.
  std::optional<int> run(const Connection& c);

 private:
  CLI::App* create_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* disable_ = nullptr;
  bool json_ = false;
  std::string name_;
  std::string max_mode_ = "approve";
};

}  // namespace riposte::cli
