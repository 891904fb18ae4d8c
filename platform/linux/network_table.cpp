#include "platform/network_table.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "platform/linux/procfs.h"

namespace riposte::platform {

namespace {

namespace fs = std::filesystem;

const char* tcp_state(int state) {
  static const char* kNames[] = {"UNKNOWN",    "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                 "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                 "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
  return state >= 0 && state < 12 ? kNames[state] : "UNKNOWN";
}

// /proc/net addresses are hex in host byte order per 32-bit word: "0100007F:1F90".
bool parse_endpoint(const std::string& text, bool v6, std::string* address, std::uint16_t* port) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) return false;
  const auto hex = text.substr(0, colon);
  *port = static_cast<std::uint16_t>(std::stoul(text.substr(colon + 1), nullptr, 16));
  char out[INET6_ADDRSTRLEN] = {};
  if (!v6) {
    if (hex.size() != 8) return false;
    in_addr a{static_cast<in_addr_t>(std::stoul(hex, nullptr, 16))};
    ::inet_ntop(AF_INET, &a, out, sizeof(out));
  } else {
    if (hex.size() != 32) return false;
    in6_addr a{};
    for (int word = 0; word < 4; ++word) {
      const auto value =
          static_cast<std::uint32_t>(std::stoul(hex.substr(word * 8, 8), nullptr, 16));
      std::memcpy(&a.s6_addr[word * 4], &value, 4);
    }
    // A dual-stack socket's IPv4 peer (::ffff:198.51.100.23) is that IPv4 address: one host, one
    // spelling, whichever socket saw it.
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      ::inet_ntop(AF_INET, &a.s6_addr[12], out, sizeof(out));
    } else {
      ::inet_ntop(AF_INET6, &a, out, sizeof(out));
    }
  }
  *address = out;
  return true;
}

// inode -> owning pid, from the "socket:[N]" links in every /proc/PID/fd.
std::unordered_map<std::uint64_t, pid_t> socket_owners() {
  std::unordered_map<std::uint64_t, pid_t> owners;
  std::error_code ec;
  for (const auto& proc : fs::directory_iterator("/proc", ec)) {
    const auto name = proc.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::error_code fd_ec;
    for (const auto& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      const auto target = fs::read_symlink(fd.path(), link_ec).string();
      if (link_ec || !target.starts_with("socket:[")) continue;
      owners.emplace(std::stoull(target.substr(8)), static_cast<pid_t>(std::stol(name)));
    }
  }
  return owners;
}

class ProcNetworkTable final : public NetworkTable {
 public:
  Result<std::vector<Connection>> connections() override {
    const auto owners = socket_owners();
    std::vector<Connection> out;
    for (const char* protocol : {"tcp", "tcp6", "udp", "udp6"}) {
      std::ifstream in(fmt::format("/proc/net/{}", protocol));
      std::string line;
      std::getline(in, line);  // header
      const bool v6 = std::string_view(protocol).ends_with('6');
      const bool tcp = std::string_view(protocol).starts_with("tcp");
      while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state_hex, queues, timer, retransmits, uid, timeout;
        std::uint64_t inode = 0;
        if (!(fields >> slot >> local >> remote >> state_hex >> queues >> timer >> retransmits >>
              uid >> timeout >> inode)) {
          continue;
        }
        Connection c;
        c.protocol = protocol;
        if (!parse_endpoint(local, v6, &c.local_address, &c.local_port) ||
            !parse_endpoint(remote, v6, &c.remote_address, &c.remote_port)) {
          continue;
        }
        const int state = std::stoi(state_hex, nullptr, 16);
        c.state = tcp ? tcp_state(state) : (state == 1 ? "ESTABLISHED" : "UNCONN");
        c.inode = inode;
        if (auto it = owners.find(inode); it != owners.end()) {
          c.pid = it->second;
          if (auto stat = linux_impl::read_stat(c.pid)) c.process = stat->comm;
        }
        out.push_back(std::move(c));
      }
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<NetworkTable> make_network_table() { return std::make_unique<ProcNetworkTable>(); }

}  // namespace riposte::platform
