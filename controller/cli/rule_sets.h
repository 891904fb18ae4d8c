#pragma once

// `riposte rule-sets upload|list|show`: YARA rule sets stored once on the controller and named by
// their SHA-256 in yara.scan actions. `riposte action run yara.scan --param rules=@FILE` uploads
// the file the same way (upload_rule_set) and sends its hash.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "controller/cli/support.h"

namespace riposte::cli {

// Reads `path` and uploads it; dies naming the file when it cannot be read. Returns the
// controller's answer (sha256, size, name, created).
nlohmann::json upload_rule_set(const Connection& c, const std::string& path,
                               const std::string& name);

// A file's whole content; dies naming the file when it cannot be read.
std::string read_whole_file(const std::string& path);

class RuleSetCommands {
 public:
  void attach(CLI::App& app);
  std::optional<int> run(const Connection& c);

 private:
  CLI::App* upload_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  bool json_ = false;
  bool content_ = false;
  std::string file_;
  std::string name_;
  std::string sha256_;
};

}  // namespace riposte::cli
