#pragma once

// `riposte playbooks validate DIR`: loads every playbook file in DIR with the controller's own
// loader, offline, and prints each playbook's steps or each file's first error (FILE:LINE).

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace riposte::cli {

class PlaybookCommands {
 public:
  void attach(CLI::App& app);
  // Runs the command that was parsed; nullopt when none of these was. Needs no controller.
  std::optional<int> run();

 private:
  CLI::App* validate_ = nullptr;
  bool json_ = false;
  std::string dir_;
};

}  // namespace riposte::cli
