#include "controller/observables/observable.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace riposte::controller {

namespace {

bool is_hex(std::string_view text, std::size_t length) {
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c); });
}

std::optional<std::string> canonical_ip(std::string_view text) {
  std::string copy(text);
  // IPv6 literals arrive bracketed from URL-ish sources.
  if (copy.size() > 2 && copy.front() == '[' && copy.back() == ']')
    copy = copy.substr(1, copy.size() - 2);
  char buffer[INET6_ADDRSTRLEN];
  in_addr v4{};
  if (::inet_pton(AF_INET, copy.c_str(), &v4) == 1) {
    return std::string(::inet_ntop(AF_INET, &v4, buffer, sizeof buffer));
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, copy.c_str(), &v6) == 1) {
    // IPv4-mapped (::ffff:198.51.100.23, as dual-stack daemons log IPv4 clients) is the IPv4
    // address: the same host must be the same observable in alerts, feeds and history.
    if (IN6_IS_ADDR_V4MAPPED(&v6))
      return std::string(::inet_ntop(AF_INET, &v6.s6_addr[12], buffer, sizeof buffer));
    return std::string(::inet_ntop(AF_INET6, &v6, buffer, sizeof buffer));
  }
  return std::nullopt;
}

// RFC 1035 host names: dot-separated labels of letters, digits and hyphens, at least two labels,
// a top-level label that is not all digits (that would be an IP address).
bool is_domain(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  if (text.back() == '.') text.remove_suffix(1);
  int labels = 0;
  std::string_view last;
  while (!text.empty()) {
    const auto dot = text.find('.');
    const auto label = text.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (unsigned char c : label) {
      if (!std::isalnum(c) && c != '-' && c != '_') return false;
    }
    ++labels;
    last = label;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
    if (text.empty()) return false;
  }
  const bool numeric_tld =
      std::all_of(last.begin(), last.end(), [](unsigned char c) { return std::isdigit(c); });
  return labels >= 2 && !numeric_tld;
}

// scheme://host[:port][/...] with a host that is a domain or an IP address.
bool is_url(std::string_view text) {
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0 || scheme_end > 10) return false;
  const auto scheme = ascii_lower(text.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https" && scheme != "ftp") return false;
  auto rest = text.substr(scheme_end + 3);
  auto host = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    return close != std::string_view::npos && canonical_ip(host.substr(0, close + 1)).has_value();
  }
  host = host.substr(0, host.find(':'));
  return is_domain(host) || canonical_ip(host).has_value();
}

bool is_file_path(std::string_view text) {
  if (text.empty() || text.size() > 4096) return false;
  if (text.find('\0') != std::string_view::npos) return false;
  const bool posix = text.front() == '/';
  const bool windows = text.size() >= 3 && std::isalpha(static_cast<unsigned char>(text[0])) &&
                       text[1] == ':' && (text[2] == '\\' || text[2] == '/');
  const bool unc = text.starts_with("\\\\");
  return posix || windows || unc;
}

bool is_user(std::string_view text) {
  if (text.empty() || text.size() > 256) return false;
  return std::all_of(text.begin(), text.end(),
                     [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
}

bool is_pid(std::string_view text) {
  if (text.empty() || text.size() > 10) return false;
  if (!std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
    return false;
  const auto pid = std::stoll(std::string(text));
  return pid > 0 && pid <= 0x7fffffff;
}

}  // namespace

nlohmann::json observables_json(const std::vector<Observable>& observables) {
  auto list = nlohmann::json::array();
  for (const auto& o : observables) {
    nlohmann::json item{{"type", o.type}, {"value", o.value}};
    if (!o.start.empty()) item["start"] = o.start;
    if (!o.entity_id.empty()) item["entity_id"] = o.entity_id;
    list.push_back(std::move(item));
  }
  return list;
}

std::string_view trim_whitespace(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool same_host_name(std::string_view a, std::string_view b) {
  const auto x = ascii_lower(a), y = ascii_lower(b);
  if (x.empty() || y.empty()) return false;
  const auto first_label = [](const std::string& name) { return name.substr(0, name.find('.')); };
  return x == y || first_label(x) == y || first_label(y) == x;
}

std::optional<std::string> canonical_observable(std::string_view type, std::string_view raw) {
  namespace t = observable_type;
  const auto value = trim_whitespace(raw);
  if (type == t::kIp) return canonical_ip(value);
  if (type == t::kDomain) {
    if (!is_domain(value)) return std::nullopt;
    auto lower = ascii_lower(value);
    if (lower.back() == '.') lower.pop_back();
    return lower;
  }
  if (type == t::kUrl) return is_url(value) ? std::optional<std::string>(value) : std::nullopt;
  if (type == t::kMd5 || type == t::kSha1 || type == t::kSha256) {
    const std::size_t length = type == t::kMd5 ? 32 : type == t::kSha1 ? 40 : 64;
    return is_hex(value, length) ? std::optional<std::string>(ascii_lower(value)) : std::nullopt;
  }
  if (type == t::kFilePath)
    return is_file_path(value) ? std::optional<std::string>(value) : std::nullopt;
  if (type == t::kProcess) return is_pid(value) ? std::optional<std::string>(value) : std::nullopt;
  if (type == t::kUser) return is_user(value) ? std::optional<std::string>(value) : std::nullopt;
  return std::nullopt;
}

std::optional<std::string_view> guess_observable_type(std::string_view raw) {
  namespace t = observable_type;
  const auto value = trim_whitespace(raw);
  if (canonical_ip(value)) return t::kIp;
  if (is_url(value)) return t::kUrl;
  if (is_hex(value, 32)) return t::kMd5;
  if (is_hex(value, 40)) return t::kSha1;
  if (is_hex(value, 64)) return t::kSha256;
  if (is_domain(value)) return t::kDomain;
  return std::nullopt;
}

}  // namespace riposte::controller
