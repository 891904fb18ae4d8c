#include "controller/cli/operators.h"

#include <fmt/format.h>

#include <iostream>

namespace riposte::cli {

using nlohmann::json;

void OperatorCommands::attach(CLI::App& app) {
  auto* operators = app.add_subcommand("operators", "people and integrations using the API");
  operators->require_subcommand(1);
  create_ = operators->add_subcommand("create", "create an operator and issue their API token");
  create_->add_option("NAME", name_, "operator name (letters, digits, . _ - @)")->required();
  create_->add_option("--role", role_, "viewer, analyst, responder or admin")
      ->required()
      ->check(CLI::IsMember({"viewer", "analyst", "responder", "admin"}));
  create_->add_flag("--json", json_, "print JSON");
  list_ = operators->add_subcommand("list", "list operators");
  list_->add_flag("--json", json_, "print JSON");
  disable_ = operators->add_subcommand(
      "disable", "disable an operator: every token they hold is refused from now on");
  disable_->add_option("NAME", name_, "operator name")->required();
  disable_->add_flag("--json", json_, "print JSON");
}

std::optional<int> OperatorCommands::run(const Connection& c) {
  if (create_->parsed()) {
    const auto result =
        call(c, "POST", "/api/v1/operators", json{{"name", name_}, {"role", role_}});
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("Operator {} ({}) created.\nAPI token (shown once): {}\n",
                               text(result["name"]), text(result["role"]), text(result["token"]));
    }
    return 0;
  }
  if (list_->parsed()) {
    const auto result = call(c, "GET", "/api/v1/operators");
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& op : result["operators"]) {
      rows.push_back({text(op["name"]), text(op["role"]),
                      op["disabled_at"].is_null() ? "enabled" : "disabled", text(op["tokens"]),
                      text(op["created_at"]), text(op["created_by"])});
    }
    print_table({"NAME", "ROLE", "STATE", "TOKENS", "CREATED", "BY"}, rows);
    return 0;
  }
  if (disable_->parsed()) {
    const auto result = call(c, "POST", "/api/v1/operators/" + url_encode(name_) + "/disable");
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("Operator {} disabled at {}; their tokens are refused.\n",
                               text(result["name"]), text(result["disabled_at"]));
    }
    return 0;
  }
  return std::nullopt;
}

}  // namespace riposte::cli
