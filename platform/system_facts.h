#pragma once

// What an endpoint is: the facts the agent reports in its Hello and Inventory.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace riposte::platform {

struct SystemFacts {
  std::string hostname;
  std::string os_name;     // human-readable, e.g. "Debian GNU/Linux 12 (bookworm)"
  std::string os_id;       // e.g. "debian"
  std::string os_version;  // e.g. "12"
  std::string kernel;      // kernel release
  std::string arch;
  std::vector<std::string> ip_addresses;  // non-loopback, up interfaces
  std::vector<std::string> mac_addresses;
  std::uint64_t uptime_seconds = 0;
  std::uint64_t boot_time_unix = 0;
};

class SystemFactsSource {
 public:
  virtual ~SystemFactsSource() = default;
  // Collects the current facts. Facts that cannot be read are left empty rather than failing.
  virtual SystemFacts collect() = 0;
};

// The implementation for the OS this binary was built for.
std::unique_ptr<SystemFactsSource> make_system_facts_source();

}  // namespace riposte::platform
