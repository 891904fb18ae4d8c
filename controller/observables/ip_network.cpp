#include "controller/observables/ip_network.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>

namespace riposte::controller {

namespace {

// The address as 16 bytes (IPv4 in the first four) and whether it is IPv6.
std::optional<std::pair<std::array<std::uint8_t, 16>, bool>> parse_address(
    const std::string& text) {
  std::array<std::uint8_t, 16> bytes{};
  if (::inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) return std::pair{bytes, false};
  if (::inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) {
    // IPv4-mapped IPv6 is the IPv4 address (see canonical_observable).
    if (IN6_IS_ADDR_V4MAPPED(reinterpret_cast<const in6_addr*>(bytes.data()))) {
      std::array<std::uint8_t, 16> v4{};
      std::memcpy(v4.data(), bytes.data() + 12, 4);
      return std::pair{v4, false};
    }
    return std::pair{bytes, true};
  }
  return std::nullopt;
}

}  // namespace

std::optional<IpNetwork> IpNetwork::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto address = parse_address(std::string(text.substr(0, slash)));
  if (!address) return std::nullopt;
  IpNetwork network;
  network.v6_ = address->second;
  const int max_prefix = network.v6_ ? 128 : 32;
  network.prefix_ = max_prefix;
  // ::ffff:a.b.c.d/N became IPv4: its prefix counts the 96 mapping bits too.
  const bool mapped = !network.v6_ && text.substr(0, slash).find(':') != std::string_view::npos;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    int prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (mapped) {
      if (prefix < 96 || prefix > 128) return std::nullopt;
      prefix -= 96;
    }
    if (prefix > max_prefix) return std::nullopt;
    network.prefix_ = prefix;
  }
  network.bytes_ = address->first;
  for (int bit = network.prefix_; bit < max_prefix; ++bit)
    network.bytes_[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return network;
}

bool IpNetwork::contains(std::string_view text) const {
  auto address = parse_address(std::string(text));
  if (!address || address->second != v6_) return false;
  const auto& bytes = address->first;
  const int whole = prefix_ / 8;
  if (std::memcmp(bytes.data(), bytes_.data(), static_cast<std::size_t>(whole)) != 0) return false;
  if (prefix_ % 8 == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> (prefix_ % 8));
  return (bytes[whole] & mask) == bytes_[whole];
}

std::string IpNetwork::to_string() const {
  char buffer[INET6_ADDRSTRLEN];
  ::inet_ntop(v6_ ? AF_INET6 : AF_INET, bytes_.data(), buffer, sizeof buffer);
  return fmt::format("{}/{}", buffer, prefix_);
}

std::string_view host_local_scope(std::string_view address) {
  static const std::array<std::pair<IpNetwork, std::string_view>, 9> kScopes = {{
      {*IpNetwork::parse("127.0.0.0/8"), "loopback"},
      {*IpNetwork::parse("::1"), "loopback"},
      {*IpNetwork::parse("169.254.0.0/16"), "link-local"},
      {*IpNetwork::parse("fe80::/10"), "link-local"},
      {*IpNetwork::parse("0.0.0.0/8"), "unspecified"},
      {*IpNetwork::parse("::"), "unspecified"},
      {*IpNetwork::parse("224.0.0.0/4"), "multicast"},
      {*IpNetwork::parse("ff00::/8"), "multicast"},
      {*IpNetwork::parse("255.255.255.255"), "broadcast"},
  }};
  for (const auto& [network, scope] : kScopes)
    if (network.contains(address)) return scope;
  return "";
}

}  // namespace riposte::controller
