#include "controller/cli/integrations.h"

#include <fmt/format.h>

#include <iostream>

namespace riposte::cli {

using nlohmann::json;

void IntegrationCommands::attach(CLI::App& app) {
  auto* integrations = app.add_subcommand(
      "integrations", "SIEM forwarders: tokens that only submit alerts, with a max mode");
  integrations->require_subcommand(1);
  create_ = integrations->add_subcommand("create", "create an integration and issue its token");
  create_->add_option("NAME", name_, "integration name (letters, digits, . _ - @)")->required();
  create_
      ->add_option("--max-mode", max_mode_,
                   "the highest mode a run its alerts start may act in (default approve)")
      ->check(CLI::IsMember({"simulate", "approve", "auto"}));
  create_->add_flag("--json", json_, "print {name, role, max_mode, token}");
  list_ = integrations->add_subcommand("list", "list integrations");
  list_->add_flag("--json", json_, "print JSON");
  disable_ = integrations->add_subcommand(
      "disable", "disable an integration: its tokens are refused from now on");
  disable_->add_option("NAME", name_, "integration name")->required();
  disable_->add_flag("--json", json_, "print JSON");
}

std::optional<int> IntegrationCommands::run(const Connection& c) {
  if (create_->parsed()) {
    const auto result =
        call(c, "POST", "/api/v1/integrations", json{{"name", name_}, {"max_mode", max_mode_}});
    if (json_) {
      std::cout << json{{"name", result["name"]},
                        {"role", result["role"]},
                        {"max_mode", result["max_mode"]},
                        {"token", result["token"]}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << fmt::format(
          "Integration {} created (role {}, max mode {}).\nAPI token (shown once): {}\n",
          text(result["name"]), text(result["role"]), text(result["max_mode"]),
          text(result["token"]));
    }
    return 0;
  }
  if (list_->parsed()) {
    const auto result = call(c, "GET", "/api/v1/integrations");
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& op : result["integrations"]) {
      rows.push_back({text(op["name"]), text(op["max_mode"]),
                      op["disabled_at"].is_null() ? "enabled" : "disabled", text(op["tokens"]),
                      text(op["created_at"]), text(op["created_by"])});
    }
    print_table({"NAME", "MAX MODE", "STATE", "TOKENS", "CREATED", "BY"}, rows);
    return 0;
  }
  if (disable_->parsed()) {
    const auto result = call(c, "POST", "/api/v1/integrations/" + url_encode(name_) + "/disable");
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("Integration {} disabled at {}; its tokens are refused.\n",
                               text(result["name"]), text(result["disabled_at"]));
    }
    return 0;
  }
  return std::nullopt;
}

}  // namespace riposte::cli
