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

}  // namespace riposte::platform
