#pragma once

// Which script an interpreter process runs, from its executable and its argument vector: for a
// shell, Python, Perl, Ruby, Node.js or PHP started as `bash -x /tmp/x.sh` or
// `python3 -u app.py`, the evidence that matters is /tmp/x.sh or app.py, not /usr/bin/bash.
// Pure: no file is touched (Files::stream_script opens the script in the process's own view).

#include <string>
#include <string_view>
#include <vector>

namespace riposte::platform {

// The script argument as the command line gives it (relative paths are relative to the
// process's working directory), or "" when `exe` is not a known interpreter or runs no file:
// inline code (`bash -c`, `python3 -c`, `perl -e`, `node -e`), a module (`python3 -m`), standard
// input (`-` or nothing), an interactive shell.
std::string interpreter_script(std::string_view exe, const std::vector<std::string>& argv);

// The argument that may be the file a process executes, for any program:
//   - a known interpreter, recognised by its executable's file name, or BusyBox running an
//     interpreter applet (the multi-call binary runs the applet argv[0] names: `sh`, `ash`;
//     `busybox sh x.sh` names it in argv[1]): its script argument as above, `interpreter` set to
//     the name that matched. Another program's argv[0] is never trusted (it sets it itself);
//   - any other program (an interpreter copied under another name, say): its first argument that
//     is not an option, `interpreter` empty. Only a caller that finds the process holding that
//     file open may call it the script (linux/procfs.h script_of).
struct ScriptArgument {
  std::string path;
  std::string interpreter;
};
ScriptArgument script_argument(std::string_view exe, const std::vector<std::string>& argv);

}  // namespace riposte::platform
