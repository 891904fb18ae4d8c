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

 private:
  bool v6_ = false;
  std::array<std::uint8_t, 16> bytes_{};
  int prefix_ = 0;
};

}  // namespace riposte::controller
