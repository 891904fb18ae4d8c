#include "controller/cli_playbooks.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "controller/autonomy_policy.h"
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
  impact_ = playbooks->add_subcommand(
      "impact", "for each action step: the assets it can touch, their stakeholders, the real mode");
  impact_->add_option("FILE", file_, "playbook file")->required()->check(CLI::ExistingFile);
  impact_->add_flag("--json", json_, "print JSON");
}

std::optional<int> PlaybookCommands::run(const Connection& c) {
  if (!impact_->parsed()) return std::nullopt;
  const auto playbook = load_playbook(file_);
  if (!playbook) die(playbook.error().message);
  auto policy = autonomy_policy_from_json(call(c, "GET", "/api/v1/autonomy"));
  if (!policy) die("the controller's autonomy policy: " + policy.error().message);
  const auto assets = call(c, "GET", "/api/v1/assets");
  // Targets are decided per alert (or are `all`), so an action step can touch any asset in the
  // map, and any enrolled host the map does not cover.
  json rows = json::array();
  for (const auto& step : playbook->steps) {
    if (step.kind != StepKind::action) continue;
    const auto row = [&](const std::string& asset, const std::optional<AssetClass>& cls,
                         const json& people, const std::string& hosts) {
      const auto effective = effective_mode(step.mode, *policy, cls);
      rows.push_back(json{{"step", step.id},
                          {"action", step.action},
                          {"declared_mode", autonomy_mode_name(step.mode)},
                          {"asset", asset},
                          {"hosts", hosts},
                          {"environment", cls ? json(cls->environment) : json(nullptr)},
                          {"criticality", cls ? json(cls->criticality) : json(nullptr)},
                          {"stakeholders", people},
                          {"effective_mode", autonomy_mode_name(effective.mode)},
                          {"why", effective.why}});
    };
    for (const auto& entry : assets["entries"]) {
      json people = json::array();
      if (!text(entry["owner"]).empty()) people.push_back(entry["owner"]);
      for (const auto& person : entry["stakeholders"]) people.push_back(person);
      std::string hosts;
      for (const auto& host : assets["hosts"]) {
        const auto& names = host["assets"];
        if (std::find(names.begin(), names.end(), entry["name"]) == names.end()) continue;
        hosts += (hosts.empty() ? "" : " ") + text(host["hostname"]);
      }
      row(text(entry["name"]), AssetClass{text(entry["environment"]), text(entry["criticality"])},
          people, hosts);
    }
    if (!assets["agents_not_covered"].empty()) {
      std::string hosts;
      for (const auto& host : assets["agents_not_covered"])
        hosts += (hosts.empty() ? "" : " ") + text(host["hostname"]);
      row("(no asset entry)", std::nullopt, json::array(), hosts);
    }
  }
  if (json_) {
    std::cout << json{{"playbook", playbook->name}, {"impact", rows}}.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows) {
    std::string people;
    for (const auto& p : r["stakeholders"]) people += (people.empty() ? "" : ", ") + text(p);
    table.push_back({text(r["step"]), text(r["action"]), text(r["asset"]), text(r["environment"]),
                     text(r["criticality"]), people.empty() ? "-" : people,
                     text(r["declared_mode"]), text(r["effective_mode"]),
                     r["hosts"].get<std::string>().empty() ? "-" : text(r["hosts"])});
  }
  std::cout << "Playbook " << playbook->name << ": what each action step can touch\n";
  print_table({"STEP", "ACTION", "ASSET", "ENVIRONMENT", "CRITICALITY", "STAKEHOLDERS", "DECLARED",
               "EFFECTIVE", "HOSTS"},
              table);
  return 0;
}

std::optional<int> PlaybookCommands::run_offline() {
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
