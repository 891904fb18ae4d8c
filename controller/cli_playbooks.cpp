#include "controller/cli_playbooks.h"

#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "controller/playbook.h"

namespace riposte::cli {

using nlohmann::json;
using namespace riposte::controller;

void PlaybookCommands::attach(CLI::App& app) {
  auto* playbooks = app.add_subcommand("playbooks", "response playbooks");
  playbooks->require_subcommand(1);
  validate_ = playbooks->add_subcommand(
      "validate", "check every playbook file in a directory, offline (exit 1 on any error)");
  validate_->add_option("DIR", dir_, "playbooks directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  validate_->add_flag("--json", json_, "print JSON");
}

std::optional<int> PlaybookCommands::run() {
  if (!validate_->parsed()) return std::nullopt;
  const auto loaded = load_playbook_directory(dir_);
  json out{{"playbooks", json::array()}, {"errors", loaded.errors}};
  for (const auto& playbook : loaded.playbooks) {
    json steps = json::array();
    for (const auto& step : playbook.steps) {
      json s{{"id", step.id}, {"kind", step_kind_name(step.kind)}, {"line", step.line}};
      if (step.kind == StepKind::action || step.kind == StepKind::query) s["action"] = step.action;
      if (step.kind == StepKind::action) s["mode"] = autonomy_mode_name(step.mode);
      steps.push_back(std::move(s));
    }
    out["playbooks"].push_back(json{{"file", playbook.file.string()},
                                    {"name", playbook.name},
                                    {"version", playbook.version},
                                    {"owner", playbook.owner},
                                    {"steps", std::move(steps)}});
  }
  if (json_) {
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& playbook : out["playbooks"]) {
      std::string actions;
      for (const auto& step : playbook["steps"]) {
        if (!step.contains("mode")) continue;
        actions += fmt::format("{}{} ({})", actions.empty() ? "" : ", ",
                               step["action"].get<std::string>(), step["mode"].get<std::string>());
      }
      std::cout << fmt::format("ok  {} {} v{}: {} steps{}\n", playbook["file"].get<std::string>(),
                               playbook["name"].get<std::string>(),
                               playbook["version"].get<std::string>(), playbook["steps"].size(),
                               actions.empty() ? "" : "; acts: " + actions);
    }
    for (const auto& error : loaded.errors) std::cout << "ERR " << error << "\n";
    std::cout << fmt::format("{} playbook(s) valid, {} error(s)\n", loaded.playbooks.size(),
                             loaded.errors.size());
  }
  return loaded.errors.empty() && !loaded.playbooks.empty() ? 0 : 1;
}

}  // namespace riposte::cli
