#pragma once

// `riposte operators create|list|disable`: the named people who use the API, each with a role
// (viewer, analyst, responder, admin). Admin only.

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
  CLI::App* create_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* disable_ = nullptr;
  bool json_ = false;
  std::string name_;
  std::string role_;
};

}  // namespace riposte::cli
