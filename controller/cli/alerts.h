#pragma once

// `riposte alerts|intel|assets ...`: alert intake and what the controller learned about
// each alert (validation, enrichment, confidence), threat-intel lookups, the asset map.

#include <CLI/CLI.hpp>
#include <string>

#include "controller/cli/support.h"

namespace riposte::cli {

class AlertCommands {
 public:
  void attach(CLI::App& app);
  // Runs the command that was parsed; nullopt when none of these was.
  std::optional<int> run(const Connection& c);

 private:
  int submit(const Connection& c);
  int show(const Connection& c);

  CLI::App* submit_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* lookup_ = nullptr;
  CLI::App* feeds_ = nullptr;
  CLI::App* reload_ = nullptr;
  CLI::App* assets_ = nullptr;
  bool json_ = false;
  std::string file_;
  std::string format_;
  std::size_t batch_ = 1000;
  std::string status_;
  int limit_ = 50;
  std::string id_;
  std::string value_;
};

}  // namespace riposte::cli
