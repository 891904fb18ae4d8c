#pragma once

// Network quarantine: isolate the host except for what must stay reachable (loopback, the
// controller, an operator allow list). Applied and removed atomically.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace riposte::platform {

struct AllowedPeer {
  std::string address;           // IPv4/IPv6 address or CIDR prefix
  std::uint16_t port = 0;        // 0 = any port
  std::string protocol = "tcp";  // "tcp", "udp" or "any" (any requires port 0)
};

struct QuarantineSpec {
  AllowedPeer controller;  // required: the agent's own channel must survive quarantine
  std::vector<AllowedPeer> allow;
};

class Firewall {
 public:
  virtual ~Firewall() = default;
  // Replaces any previous quarantine in one transaction: there is no moment with no rules, or
  // with two rule sets.
  virtual Status quarantine(const QuarantineSpec& spec) = 0;
  // Removes the quarantine; releasing a host that is not quarantined is not an error.
  virtual Status release() = 0;
  virtual Result<bool> quarantined() = 0;
};

// Validates a spec (addresses, ports, protocols, a controller present) before anything is applied.
Status validate(const QuarantineSpec& spec);

// nftables through libnftables, in a dedicated table (inet riposte_quarantine).
std::unique_ptr<Firewall> make_firewall();

}  // namespace riposte::platform
