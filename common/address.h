#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace riposte {

struct HostPort {
  std::string host;  // name or address, without IPv6 brackets
  std::uint16_t port = 0;
  std::string to_string() const;
};

// "host:port", "1.2.3.4:port" or "[::1]:port". Port 0 is allowed only when `allow_port_zero`
// (listeners asking the OS for a free port).
Result<HostPort> parse_host_port(std::string_view text, bool allow_port_zero = false);

}  // namespace riposte
