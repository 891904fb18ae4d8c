#include "agent/os_facts.h"

namespace riposte::agent {

proto::OsFacts to_proto(const platform::SystemFacts& f) {
  proto::OsFacts os;
  os.set_hostname(f.hostname);
  os.set_os_name(f.os_name);
  os.set_os_id(f.os_id);
  os.set_os_version(f.os_version);
  os.set_kernel(f.kernel);
  os.set_arch(f.arch);
  for (const auto& ip : f.ip_addresses) os.add_ip_addresses(ip);
  for (const auto& mac : f.mac_addresses) os.add_mac_addresses(mac);
  os.set_uptime_seconds(f.uptime_seconds);
  os.set_boot_time_unix(f.boot_time_unix);
  return os;
}

}  // namespace riposte::agent
