#pragma once

// The endpoint's current TCP and UDP sockets, with the process that owns each.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace riposte::platform {

struct Connection {
  std::string protocol;  // "tcp", "tcp6", "udp", "udp6"
  std::string local_address;
  std::uint16_t local_port = 0;
  std::string remote_address;
  std::uint16_t remote_port = 0;
  std::string
      state;  // TCP state name ("ESTABLISHED", "LISTEN", ...); UDP: "UNCONN" or "ESTABLISHED"
  std::uint64_t inode = 0;
  pid_t pid = 0;  // 0 when no process could be found (another namespace, already closed)
  std::string process;
};

class NetworkTable {
 public:
  virtual ~NetworkTable() = default;
  virtual Result<std::vector<Connection>> connections() = 0;
};

// Reads /proc/net/{tcp,tcp6,udp,udp6} and maps socket inodes to processes through /proc/*/fd.
std::unique_ptr<NetworkTable> make_network_table();

}  // namespace riposte::platform
