#include "controller/cli/playbooks.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "controller/playbooks/autonomy_policy.h"
#include "controller/playbooks/impact.h"
#include "controller/playbooks/playbook.h"
#include "controller/playbooks/simulation.h"
#include "common/yaml_config.h"

namespace riposte::cli {

using nlohmann::json;
using namespace riposte::controller;

void PlaybookCommands::attach(CLI::App& app) {
  auto* playbooks = app.add_subcommand("playbooks", "response playbooks");
  playbooks->require_subcommand(1);
  validate_ = playbooks->add_subcommand(
      "validate",
      "check every playbook file in one or more directories, offline (exit 1 on any error)");
  validate_->add_option("DIR", dirs_, "playbooks directories (names must be unique across them)")
      ->required()
      ->check(CLI::ExistingDirectory);
  validate_->add_flag("--json", json_, "print JSON");
  impact_ = playbooks->add_subcommand(
      "impact", "for each action step: the assets it can touch, their stakeholders, the real mode");
  impact_->add_option("FILE", file_, "playbook file")->required()->check(CLI::ExistingFile);
  impact_->add_flag("--json", json_, "print JSON");
  test_ = playbooks->add_subcommand(
      "test", "backtest, offline: what the playbook would have done with recorded alerts");
  test_->add_option("FILE", file_, "playbook file")->required()->check(CLI::ExistingFile);
  test_
      ->add_option("--alerts", alerts_,
                   "alerts as `riposte alerts show ID --json` prints them: JSON lines or a list")
      ->required()
      ->check(CLI::ExistingFile);
  auto* config = test_->add_option("--config", config_,
                    "apply this controller.yaml's autonomy ceilings, source ceilings and rate "
                    "limits (offline)")
      ->check(CLI::ExistingFile);
  test_->add_flag("--controller", from_controller_,
                  "apply the running controller's autonomy policy (GET /api/v1/autonomy)")
      ->excludes(config);
  test_->add_flag("--json", json_, "print one JSON object per alert");
  list_ = playbooks->add_subcommand("list", "the playbooks the controller has loaded");
  list_->add_flag("--json", json_, "print JSON");
  start_ = playbooks->add_subcommand(
      "run", "run a loaded playbook over an alert now (a responder; an analyst with --simulate)");
  start_->add_option("NAME", name_, "playbook name")->required();
  start_->add_option("--alert", alert_id_, "alert id")->required();
  start_->add_flag("--simulate", simulate_,
                   "every action only simulated: signed, recorded, not sent");
  start_->add_flag("--force", force_,
                   "start even though a run of this playbook over the alert is unfinished");
  start_->add_flag("--json", json_, "print JSON");
}

namespace {

// The policy a backtest applies: controller.yaml's autonomy section, or the defaults a
// controller without one runs with.
AutonomyPolicy policy_from_config(const std::string& path) {
  if (path.empty()) return AutonomyPolicy{};
  try {
    const auto root = YAML::LoadFile(path);
    if (auto s = refuse_duplicate_keys(root, path); !s) die(s.error().message);
    if (!root.IsMap() || !root["autonomy"]) return AutonomyPolicy{};
    auto policy = autonomy_policy_from_json(yaml_to_json(root["autonomy"]));
    if (!policy) die(fmt::format("{}: {}", path, policy.error().message));
    return *policy;
  } catch (const YAML::Exception& e) {
    die(fmt::format("{}: {}", path, e.what()));
  }
}

int backtest(const std::string& file, const std::string& alerts_file, bool as_json,
             const AutonomyPolicy& policy, const std::string& policy_source,
             const std::string& case_link_prefix) {
  const auto playbook = load_playbook(file);
  if (!playbook) die(playbook.error().message);
  const auto alerts = read_json_documents(alerts_file);
  ModeReplay modes(policy);
  if (!as_json) std::cout << "Modes as " << policy_source << " would set them.\n";
  std::size_t triggered = 0, actions = 0, failed = 0;
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    const auto& alert = alerts[i];
    if (!alert.is_object())
      die(fmt::format("{}: alert {} is not a JSON object", alerts_file, i + 1));
    // A field of another JSON type than `riposte alerts show --json` writes (a string where an
    // object belongs) is this file's fault, said as such rather than as an internal error.
    Simulation sim;
    try {
      sim = simulate_playbook(*playbook, alert, case_link_prefix);
      modes.apply(*playbook, alert, sim);
    } catch (const json::exception& e) {
      die(fmt::format(
          "{}: alert {} is not shaped as `riposte alerts show --json` prints alerts: {}",
          alerts_file, i + 1, e.what()));
    }
    triggered += sim.triggered;
    actions += sim.actions.size();
    failed += !sim.error.empty();
    const auto id = alert.value("id", json("?"));
    if (as_json) {
      std::cout << simulation_json(sim, id).dump(-1, ' ', false, json::error_handler_t::replace)
                << "\n";
      continue;
    }
    const auto host_field = alert.value("host", json::object());
    const auto host = host_field.is_object() ? host_field.value("name", json("")) : host_field;
    std::cout << fmt::format("alert {} ({}): ", text(id), text(host));
    if (!sim.triggered) {
      std::cout << "not triggered: " << sim.not_triggered_because << "\n";
      continue;
    }
    std::string path;
    for (const auto& step : sim.path) path += (path.empty() ? "" : " -> ") + step.id;
    std::cout << "triggered\n  path: " << path << "\n";
    for (const auto& step : sim.path)
      std::cout << "    " << step.id << ": " << step.outcome << "\n";
    for (const auto& action : sim.actions) {
      std::cout << fmt::format("  would dispatch: {} to {} [{}] {}\n", text(action["action"]),
                               text(action["target"]), text(action["mode"]),
                               compact_json(action["parameters"]));
      if (action["declared_mode"] != action["mode"])
        std::cout << fmt::format("    declared {}, effective {}: {}\n",
                                 text(action["declared_mode"]), text(action["mode"]),
                                 text(action["why"]));
    }
    if (!sim.error.empty()) std::cout << "  FAILED: " << sim.error << "\n";
  }
  if (!as_json) {
    std::cout << fmt::format(
        "{} alert(s), {} triggered, {} action(s) would have been dispatched, {} run(s) failed\n",
        alerts.size(), triggered, actions, failed);
  }
  return 0;
}

}  // namespace

std::optional<int> PlaybookCommands::run(const Connection& c) {
  if (test_->parsed()) {  // --controller: the running controller's policy
    auto policy = autonomy_policy_from_json(call(c, "GET", "/api/v1/autonomy"));
    if (!policy) die("the controller's autonomy policy: " + policy.error().message);
    return backtest(file_, alerts_, json_, *policy, "the controller at " + c.server,
                    c.server + "/api/v1/cases/");
  }
  if (list_->parsed()) {
    const auto result = call(c, "GET", "/api/v1/playbooks");
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : result["playbooks"]) {
      rows.push_back({text(p["name"]), text(p["version"]), text(p["owner"]), p["steps"].dump(),
                      text(p["description"])});
    }
    print_table({"NAME", "VERSION", "OWNER", "STEPS", "DESCRIPTION"}, rows);
    return 0;
  }
  if (start_->parsed()) {
    const auto run =
        call(c, "POST", "/api/v1/runs",
             json{{"playbook", name_},
                  {"alert_id", alert_id_},
                  {"simulate", simulate_},
                  {"force", force_}});
    if (json_) {
      std::cout << run.dump(2) << "\n";
    } else {
      std::cout << fmt::format(
          "run {} of {} started{} (case {}); follow it with `riposte runs show "
          "{}`\n",
          text(run["id"]), text(run["playbook"]), simulate_ ? " in simulate only" : "",
          text(run["case_id"]), text(run["id"]));
    }
    return 0;
  }
  if (!impact_->parsed()) return std::nullopt;
  const auto playbook = load_playbook(file_);
  if (!playbook) die(playbook.error().message);
  auto policy = autonomy_policy_from_json(call(c, "GET", "/api/v1/autonomy"));
  if (!policy) die("the controller's autonomy policy: " + policy.error().message);
  const auto rows = playbook_impact(*playbook, *policy, call(c, "GET", "/api/v1/assets"));
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
  if (test_->parsed() && !from_controller_) {
    if (config_.empty()) {
      return backtest(file_, alerts_, json_, AutonomyPolicy{},
                      "a controller with the default autonomy policy (give --config or "
                      "--controller for yours)",
                      "");
    }
    return backtest(file_, alerts_, json_, policy_from_config(config_), config_, "");
  }
  if (!validate_->parsed()) return std::nullopt;
  const auto loaded =
      load_playbook_directories(std::vector<std::filesystem::path>(dirs_.begin(), dirs_.end()));
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
