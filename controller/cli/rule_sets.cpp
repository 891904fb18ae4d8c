#include "controller/cli/rule_sets.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace riposte::cli {

using nlohmann::json;

std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) die(fmt::format("{} is a directory, not a file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) die(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::string content;
  try {
    content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    die(fmt::format("cannot read {}", path));
  }
  if (in.bad()) die(fmt::format("cannot read {}", path));
  return content;
}

json upload_rule_set(const Connection& c, const std::string& path, const std::string& name) {
  auto content = read_whole_file(path);
  if (content.empty()) die(fmt::format("{} is empty", path));
  const auto label = name.empty() ? std::filesystem::path(path).filename().string() : name;
  auto parsed = json::parse(
      call_raw_text(c, "POST", "/api/v1/rule-sets?name=" + url_encode(label), std::move(content)),
      nullptr, false);
  if (!parsed.is_object() || !parsed.contains("sha256"))
    die("controller sent a response that is not a rule set");
  return parsed;
}

void RuleSetCommands::attach(CLI::App& app) {
  auto* sets = app.add_subcommand("rule-sets", "YARA rule sets stored on the controller");
  sets->require_subcommand(1);
  upload_ = sets->add_subcommand("upload", "store a .yar file once; actions name it by SHA-256");
  upload_->add_option("FILE", file_, "the rules (any size up to the controller's limit)")
      ->required();
  upload_->add_option("--name", name_, "a name to show (default: the file's name)");
  upload_->add_flag("--json", json_, "print JSON");
  list_ = sets->add_subcommand("list", "rule sets stored, newest first");
  list_->add_flag("--json", json_, "print JSON");
  show_ = sets->add_subcommand("show", "one rule set");
  show_->add_option("SHA256", sha256_, "its SHA-256")->required();
  show_->add_flag("--content", content_, "print the rules themselves");
  show_->add_flag("--json", json_, "print JSON");
}

std::optional<int> RuleSetCommands::run(const Connection& c) {
  if (upload_->parsed()) {
    const auto result = upload_rule_set(c, file_, name_);
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("Rule set {} ({} bytes, {}){}\nUse it with: riposte action run "
                               "yara.scan --param rules_sha256={} ...\n",
                               text(result["sha256"]), text(result["size"]), text(result["name"]),
                               result.value("created", false) ? "" : " was already stored",
                               text(result["sha256"]));
    }
    return 0;
  }
  if (list_->parsed()) {
    const auto result = call(c, "GET", "/api/v1/rule-sets");
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : result.at("rule_sets"))
      rows.push_back({text(r["sha256"]), text(r["size"]), text(r["name"]), text(r["created_by"]),
                      text(r["created_at"])});
    print_table({"SHA256", "SIZE", "NAME", "CREATED BY", "CREATED AT"}, rows);
    return 0;
  }
  if (show_->parsed()) {
    if (content_) {
      std::cout << call_raw(c, "GET", "/api/v1/rule-sets/" + sha256_ + "/content");
      return 0;
    }
    const auto result = call(c, "GET", "/api/v1/rule-sets/" + sha256_);
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      for (const char* key : {"sha256", "size", "name", "created_by", "created_at"})
        std::cout << fmt::format("{:<12} {}\n", std::string(key) + ":", text(result[key]));
    }
    return 0;
  }
  return std::nullopt;
}

}  // namespace riposte::cli
