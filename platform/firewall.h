#pragma once

// Network quarantine: isolate the host except for what must stay reachable (loopback, the
// controller, an operator allow list). Applied and removed atomically. Traffic the host forwards
// (containers, VMs, pods behind it) is dropped too, except to and from the allow list.

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

// What the kernel enforces now, read back from it (not what was asked).
struct EnforcedQuarantine {
  bool present = false;            // the quarantine table exists
  std::vector<std::string> hooks;  // its base chains with policy drop: "input", "output", "forward"
  std::string listing;             // the table as nftables lists it: equal listings, same rules
  // The table is there and holds all three hooks with policy drop.
  bool complete() const { return present && hooks.size() == 3; }
};

class Firewall {
 public:
  virtual ~Firewall() = default;
  // Replaces any previous quarantine in one transaction: there is no moment with no rules, or
  // with two rule sets.
  virtual Status quarantine(const QuarantineSpec& spec) = 0;
  // Removes the quarantine; releasing a host that is not quarantined is not an error.
  virtual Status release() = 0;
  // Reads the table back from the kernel. An error only when nftables cannot be asked at all.
  virtual Result<EnforcedQuarantine> enforced() = 0;
  Result<bool> quarantined() {
    auto state = enforced();
    if (!state) return state.error();
    return state->present;
  }
};

// Validates a spec (addresses, ports, protocols, a controller present) before anything is applied.
Status validate(const QuarantineSpec& spec);

// nftables through libnftables, in a dedicated table (inet riposte_quarantine).
std::unique_ptr<Firewall> make_firewall();

}  // namespace riposte::platform
