#include "controller/cli/operators.h"

#include <fmt/format.h>

#include <iostream>

namespace riposte::cli {

using nlohmann::json;

void OperatorCommands::attach(CLI::App& app) {
  auto* operators = app.add_subcommand("operators", "people and integrations using the API");
  operators->require_subcommand(1);
  operators_.create =
      operators->add_subcommand("create", "create an operator and issue their API token");
  operators_.create->add_option("NAME", name_, "operator name (letters, digits, . _ - @)")
      ->required();
  operators_.create->add_option("--role", role_, "viewer, analyst, responder or admin")
      ->required()
      ->check(CLI::IsMember({"viewer", "analyst", "responder", "admin"}));
  operators_.list = operators->add_subcommand("list", "list operators (and integrations)");
  operators_.disable = operators->add_subcommand(
      "disable", "disable an operator: every token they hold is refused from now on");

  auto* integrations = app.add_subcommand(
      "integrations", "SIEM forwarders: tokens that only submit alerts, with a max mode");
  integrations->require_subcommand(1);
  integrations_.create =
      integrations->add_subcommand("create", "create an integration and issue its token");
  integrations_.create->add_option("NAME", name_, "integration name (letters, digits, . _ - @)")
      ->required();
  integrations_.create
      ->add_option("--max-mode", max_mode_,
                   "the highest mode a run its alerts start may act in (default approve)")
      ->check(CLI::IsMember({"simulate", "approve", "auto"}));
  integrations_.list = integrations->add_subcommand("list", "list integrations");
  integrations_.disable = integrations->add_subcommand(
      "disable", "disable an integration: its tokens are refused from now on");

  for (auto* noun : {&operators_, &integrations_}) {
    noun->disable->add_option("NAME", name_, "its name")->required();
    for (auto* verb : {noun->create, noun->list, noun->disable})
      verb->add_flag("--json", json_, "print JSON");
  }
}

std::optional<int> OperatorCommands::run(const Connection& c) {
  const bool integration = integrations_.create->parsed() || integrations_.list->parsed() ||
                           integrations_.disable->parsed();
  const auto& noun = integration ? integrations_ : operators_;
  const std::string path = integration ? "/api/v1/integrations" : "/api/v1/operators";
  if (noun.create->parsed()) {
    const auto result =
        call(c, "POST", path,
             integration ? json{{"name", name_}, {"max_mode", max_mode_}}
                         : json{{"name", name_}, {"role", role_}});
    if (json_ && integration) {
      std::cout << json{{"name", result["name"]},
                        {"role", result["role"]},
                        {"max_mode", result["max_mode"]},
                        {"token", result["token"]}}
                       .dump(2)
                << "\n";
    } else if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("{} {} created (role {}{}).\nAPI token (shown once): {}\n",
                               integration ? "Integration" : "Operator", text(result["name"]),
                               text(result["role"]),
                               integration ? ", max mode " + text(result["max_mode"]) : "",
                               text(result["token"]));
    }
    return 0;
  }
  if (noun.list->parsed()) {
    const auto result = call(c, "GET", path);
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& op : result[integration ? "integrations" : "operators"]) {
      rows.push_back({text(op["name"]), text(op["role"]),
                      op["max_mode"].is_null() ? "-" : text(op["max_mode"]),
                      op["disabled_at"].is_null() ? "enabled" : "disabled", text(op["tokens"]),
                      text(op["created_at"]), text(op["created_by"])});
    }
    print_table({"NAME", "ROLE", "MAX MODE", "STATE", "TOKENS", "CREATED", "BY"}, rows);
    return 0;
  }
  if (noun.disable->parsed()) {
    const auto result = call(c, "POST", path + "/" + url_encode(name_) + "/disable");
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("{} {} disabled at {}; its tokens are refused.\n",
                               integration ? "Integration" : "Operator", text(result["name"]),
                               text(result["disabled_at"]));
    }
    return 0;
  }
  return std::nullopt;
}

}  // namespace riposte::cli
