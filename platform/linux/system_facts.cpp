#include "platform/system_facts.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>

namespace riposte::platform {

namespace {

// os-release(5): KEY=value lines, values optionally quoted.
std::map<std::string, std::string> read_os_release() {
  std::map<std::string, std::string> fields;
  for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
    std::ifstream in(path);
    if (!in) continue;
    std::string line;
    while (std::getline(in, line)) {
      const auto eq = line.find('=');
      if (eq == std::string::npos || line.starts_with('#')) continue;
      std::string value = line.substr(eq + 1);
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
          value.back() == value.front()) {
        value = value.substr(1, value.size() - 2);
      }
      fields[line.substr(0, eq)] = value;
    }
    break;
  }
  return fields;
}

std::string format_mac(const unsigned char* addr, int length) {
  std::string out;
  char part[4];
  for (int i = 0; i < length; ++i) {
    std::snprintf(part, sizeof(part), i == 0 ? "%02x" : ":%02x", addr[i]);
    out += part;
  }
  return out;
}

void collect_addresses(SystemFacts& facts) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return;
  for (ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || (it->ifa_flags & IFF_LOOPBACK) || !(it->ifa_flags & IFF_UP)) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    switch (it->ifa_addr->sa_family) {
      case AF_INET:
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr, text,
                    sizeof(text));
        facts.ip_addresses.emplace_back(text);
        break;
      case AF_INET6:
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(it->ifa_addr)->sin6_addr, text,
                    sizeof(text));
        facts.ip_addresses.emplace_back(text);
        break;
      case AF_PACKET: {
        const auto* ll = reinterpret_cast<sockaddr_ll*>(it->ifa_addr);
        if (ll->sll_halen == 6) facts.mac_addresses.push_back(format_mac(ll->sll_addr, 6));
        break;
      }
      default:
        break;
    }
  }
  ::freeifaddrs(list);
  for (auto* v : {&facts.ip_addresses, &facts.mac_addresses}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
}

class LinuxSystemFacts final : public SystemFactsSource {
 public:
  SystemFacts collect() override {
    SystemFacts facts;
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) == 0) facts.hostname = host;
    utsname uts{};
    if (::uname(&uts) == 0) {
      facts.kernel = uts.release;
      facts.arch = uts.machine;
    }
    auto release = read_os_release();
    facts.os_name = release["PRETTY_NAME"];
    facts.os_id = release["ID"];
    facts.os_version = release["VERSION_ID"];
    struct sysinfo info {};
    if (::sysinfo(&info) == 0) {
      facts.uptime_seconds = static_cast<std::uint64_t>(info.uptime);
      facts.boot_time_unix = static_cast<std::uint64_t>(std::time(nullptr) - info.uptime);
    }
    collect_addresses(facts);
    return facts;
  }
};

}  // namespace

std::unique_ptr<SystemFactsSource> make_system_facts_source() {
  return std::make_unique<LinuxSystemFacts>();
}

}  // namespace riposte::platform
