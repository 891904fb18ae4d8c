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

}  // namespace

std::string interpreter_script(std::string_view exe, const std::vector<std::string>& argv) {
  const auto slash = exe.rfind('/');
  const std::string name(slash == std::string_view::npos ? exe : exe.substr(slash + 1));
  const Family* family = nullptr;
  for (const auto& f : families()) {
    if (std::regex_match(name, f.name)) {
      family = &f;
      break;
    }
  }
  if (family == nullptr) return "";
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

}  // namespace riposte::platform
