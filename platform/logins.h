#pragma once

// Who is and was logged in: current sessions (utmp) and recent logins (wtmp), for enrichment.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace riposte::platform {

struct LoginRecord {
  std::string user;
  std::string terminal;
  std::string host;  // remote host for network logins, empty for local
  pid_t pid = 0;
  std::int64_t time_unix_ms = 0;
  bool active = false;  // still logged in (from utmp)
};

class Logins {
 public:
  virtual ~Logins() = default;
  virtual Result<std::vector<LoginRecord>> current() = 0;
  // Newest first, at most `limit` user logins.
  virtual Result<std::vector<LoginRecord>> recent(std::size_t limit) = 0;
};

// Reads utmp/wtmp files; paths are injectable so tests can use files they wrote.
std::unique_ptr<Logins> make_logins(std::string utmp_path = "/var/run/utmp",
                                    std::string wtmp_path = "/var/log/wtmp");

}  // namespace riposte::platform
