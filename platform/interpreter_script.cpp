#include "platform/interpreter_script.h"

#include <algorithm>
#include <array>
#include <regex>

namespace riposte::platform {

namespace {

struct Family {
  std::regex name;  // the executable's file name
  // Options after which no script file follows (the code is inline or comes from a module).
  std::vector<std::string_view> inline_code;
  // Options that take the next argument as their value (so it is not the script).
  std::vector<std::string_view> with_value;
  // An option whose value is the script itself (`php -f script.php`).
  std::string_view script_option = "";
};

const std::vector<Family>& families() {
  static const std::vector<Family> kFamilies{
      // sh, bash, dash, zsh, ksh, mksh, busybox's ash
      {std::regex(R"((ba|da|z|k|mk|a)?sh)"), {"-c"}, {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}},
      {std::regex(R"(python[0-9.]*)"), {"-c", "-m"}, {"-W", "-X", "-Q"}},
      {std::regex(R"(perl[0-9.]*)"), {"-e", "-E"}, {"-I", "-M", "-m"}},
      {std::regex(R"(ruby[0-9.]*)"), {"-e"}, {"-I", "-r", "-C", "-E"}},
      {std::regex(R"(node(js)?)"), {"-e", "--eval", "-p", "--print"}, {"-r", "--require", "--import"}},
      {std::regex(R"(php[0-9.]*)"), {"-r"}, {"-c", "-d", "-z"}, "-f"},
  };
  return kFamilies;
}

std::string base_name(std::string_view path) {
  const auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

const Family* family_of(const std::string& name) {
  for (const auto& f : families())
    if (std::regex_match(name, f.name)) return &f;
  return nullptr;
}

std::string script_of_family(const Family* family, const std::vector<std::string>& argv);

}  // namespace

std::string interpreter_script(std::string_view exe, const std::vector<std::string>& argv) {
  const Family* family = family_of(base_name(exe));
  if (family == nullptr) return "";
  return script_of_family(family, argv);
}

ScriptArgument script_argument(std::string_view exe, const std::vector<std::string>& argv) {
  auto name = base_name(exe);
  if (const auto* family = family_of(name)) return {script_of_family(family, argv), name};
  std::vector<std::string> args = argv;
  // A multi-call binary (BusyBox) runs the applet argv[0] names (a link named `sh`), or argv[1]
  // when run by its own name (`busybox sh x.sh`). Any other program's argv[0] is its own claim
  // (`exec -a python3`), never trusted to make it an interpreter.
  if (!args.empty() && name == "busybox") {
    if (base_name(args[0]) == "busybox" && args.size() > 1) args.erase(args.begin());
    const auto applet = base_name(args[0]);
    if (const auto* family = family_of(applet)) return {script_of_family(family, args), applet};
  }
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--") return {i + 1 < args.size() ? args[i + 1] : "", ""};
    if (args[i].empty() || args[i].starts_with("-") || args[i].starts_with("+")) continue;
    return {args[i], ""};
  }
  return {};
}

namespace {

std::string script_of_family(const Family* family, const std::vector<std::string>& argv) {
  const auto is = [](const std::vector<std::string_view>& list, std::string_view arg) {
    return std::find(list.begin(), list.end(), arg) != list.end();
  };
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return i + 1 < argv.size() && argv[i + 1] != "-" ? argv[i + 1] : "";
    if (arg == "-") return "";  // the script comes on standard input
    if (is(family->inline_code, arg)) return "";
    if (!family->script_option.empty() && arg == family->script_option)
      return i + 1 < argv.size() ? argv[i + 1] : "";
    // Bundled short options ending in an inline-code flag: `bash -xc 'cmd'`, `perl -we '...'`.
    if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
      const std::string last = std::string("-") + arg.back();
      if (is(family->inline_code, last)) return "";
    }
    if (is(family->with_value, arg)) {
      ++i;
      continue;
    }
    if (arg.starts_with("-") || arg.starts_with("+")) continue;
    return std::string(arg);
  }
  return "";
}

}  // namespace

}  // namespace riposte::platform
