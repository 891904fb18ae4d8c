#pragma once

// An IPv4 or IPv6 network ("10.0.0.0/8", "2001:db8::/32", or one address), for asset entries and
// threat-intel CIDR indicators.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace riposte::controller {

class IpNetwork {
 public:
  // nullopt when `text` is not an address or address/prefix. Host bits are masked off.
  static std::optional<IpNetwork> parse(std::string_view text);
  bool contains(std::string_view address) const;
  std::string to_string() const;
  bool is_v6() const { return v6_; }
  int prefix_length() const { return prefix_; }

 private:
  bool v6_ = false;
  std::array<std::uint8_t, 16> bytes_{};
  int prefix_ = 0;
};

// Why `address` can never name one host on its own: "loopback", "link-local", "unspecified",
// "multicast" or "broadcast" (every host has it, or it is not a host's address at all). ""
// for any other address, and for text that is not an address. RFC 1122 3.2.1.3, RFC 3927,
// RFC 4291 2.4/2.5, RFC 1112; IPv4-mapped IPv6 counts as the IPv4 address.
std::string_view host_local_scope(std::string_view address);

}  // namespace riposte::controller
