// Which file an interpreter runs, from command lines as they appear in /proc/PID/cmdline.

#include "platform/interpreter_script.h"

#include <gtest/gtest.h>

namespace riposte::platform {
namespace {

struct Case {
  std::string exe;
  std::vector<std::string> argv;
  std::string script;
};

TEST(InterpreterScript, NamesTheScriptFileAndNothingForInlineCodeModulesOrStdin) {
  const std::vector<Case> cases{
      {"/usr/bin/bash", {"bash", "/tmp/x.sh"}, "/tmp/x.sh"},
      {"/usr/bin/bash", {"/bin/bash", "-x", "-e", "run.sh", "arg"}, "run.sh"},
      {"/usr/bin/dash", {"sh", "./job.sh"}, "./job.sh"},
      {"/usr/bin/bash", {"bash", "-o", "pipefail", "deploy.sh"}, "deploy.sh"},
      {"/usr/bin/bash", {"bash", "--", "-weird-name.sh"}, "-weird-name.sh"},
      {"/usr/bin/bash", {"bash", "-c", "curl x | sh"}, ""},
      {"/usr/bin/bash", {"bash", "-xc", "id"}, ""},
      {"/usr/bin/bash", {"bash", "-i"}, ""},
      {"/usr/bin/bash", {"bash"}, ""},
      {"/usr/bin/bash", {"bash", "-"}, ""},
      {"/usr/bin/zsh", {"zsh", "s.zsh"}, "s.zsh"},
      {"/usr/bin/python3.11", {"python3", "-u", "app.py", "--port", "80"}, "app.py"},
      {"/usr/bin/python3.11", {"python3", "-W", "ignore", "app.py"}, "app.py"},
      {"/usr/bin/python3.11", {"python3", "-m", "http.server"}, ""},
      {"/usr/bin/python3.11", {"python3", "-c", "import os"}, ""},
      {"/usr/bin/perl", {"perl", "-w", "tool.pl"}, "tool.pl"},
      {"/usr/bin/perl", {"perl", "-we", "print 1"}, ""},
      {"/usr/bin/perl", {"perl", "-I", "/opt/lib", "tool.pl"}, "tool.pl"},
      {"/usr/bin/ruby3.1", {"ruby", "-r", "json", "x.rb"}, "x.rb"},
      {"/usr/bin/node", {"node", "--require", "ts-node/register", "server.js"}, "server.js"},
      {"/usr/bin/node", {"node", "-e", "1"}, ""},
      {"/usr/bin/php8.2", {"php", "-f", "shell.php"}, "shell.php"},
      {"/usr/bin/php8.2", {"php", "-r", "system('id');"}, ""},
      {"/usr/bin/sleep", {"sleep", "30"}, ""},
      {"/usr/bin/python3-config", {"python3-config", "x.py"}, ""},
      {"", {"bash", "x.sh"}, ""},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.argv) joined += a + " ";
    EXPECT_EQ(interpreter_script(c.exe, c.argv), c.script) << c.exe << ": " << joined;
  }
}

}  // namespace
}  // namespace riposte::platform
