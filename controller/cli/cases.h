#pragma once

// `riposte cases|approvals|runs ...`: incidents as cases (list, show, update, report, stats),
// the approvals playbooks wait for (list, show, approve, deny), and playbook runs (list, show).
// `riposte playbooks run NAME --alert ID [--simulate]` starts a run (cli_playbooks.h).

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "controller/cli/support.h"

namespace riposte::cli {

class CaseCommands {
 public:
  void attach(CLI::App& app);
  // Runs the command that was parsed; nullopt when none of these was.
  std::optional<int> run(const Connection& c);

 private:
  int show_case(const Connection& c);
  int show_run(const Connection& c);
  int show_approval(const nlohmann::json& a);

  CLI::App* case_list_ = nullptr;
  CLI::App* case_show_ = nullptr;
  CLI::App* case_update_ = nullptr;
  CLI::App* case_report_ = nullptr;
  CLI::App* case_stats_ = nullptr;
  CLI::App* approval_list_ = nullptr;
  CLI::App* approval_show_ = nullptr;
  CLI::App* approve_ = nullptr;
  CLI::App* deny_ = nullptr;
  CLI::App* run_list_ = nullptr;
  CLI::App* run_show_ = nullptr;
  CLI::App* run_cancel_ = nullptr;
  bool json_ = false;
  std::string id_;
  std::string status_, severity_, assignee_, note_;
  std::string since_ = "30d";
  std::string format_ = "md";
  std::string output_;
  std::string state_;
  std::string case_;
  std::string reason_;
  int limit_ = 50;
  bool wait_ = false;
  std::string wait_timeout_ = "10m";

  // approvals approve --wait: follows the run until what the approval let go has ended.
  int wait_for_approved(const Connection& c, const nlohmann::json& approval);
};

}  // namespace riposte::cli
