#pragma once

// Typed observables: the things in an alert that can be looked up, validated against agents and
// confirmed by threat intelligence. A value is only ever emitted under a type it really is: a
// "hash" that is not hex of the right length is not an md5, "999.1.1.1" is not an ip.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace riposte::controller {

// The closed set of observable types, as they appear in the API.
namespace observable_type {
inline constexpr std::string_view kIp = "ip";
inline constexpr std::string_view kDomain = "domain";
inline constexpr std::string_view kUrl = "url";
inline constexpr std::string_view kMd5 = "md5";
inline constexpr std::string_view kSha1 = "sha1";
inline constexpr std::string_view kSha256 = "sha256";
inline constexpr std::string_view kFilePath = "file_path";
inline constexpr std::string_view kProcess = "process";  // value: pid; `start` when known
inline constexpr std::string_view kUser = "user";
}  // namespace observable_type

struct Observable {
  std::string type;
  std::string value;
  std::string start;  // process only: start time (RFC 3339) when the source gave it
  // process only: the source's own id for the process, unique across pid reuse (ECS
  // process.entity_id, Sysmon ProcessGuid), kept for people and for correlating events.
  std::string entity_id;
  bool operator==(const Observable&) const = default;
};

// The canonical form of `value` as `type`, or nullopt when it is not one: IPs as inet_ntop prints
// them, domains and hashes lower-cased, surrounding whitespace dropped.
std::optional<std::string> canonical_observable(std::string_view type, std::string_view value);

// The type a bare indicator looks like (ip, url, md5, sha1, sha256, domain), for intel lists and
// lookups where no type is given; nullopt when it looks like none of them.
std::optional<std::string_view> guess_observable_type(std::string_view value);

// [{type, value[, start]}]: how the API shows observables and the store keeps them.
nlohmann::json observables_json(const std::vector<Observable>& observables);

// `text` without leading and trailing whitespace.
std::string_view trim_whitespace(std::string_view text);

// Lower-cases ASCII.
std::string ascii_lower(std::string_view text);

// Whether two host names name one host: equal ignoring case, or one is the other's first label
// ("web-1" and "web-1.corp.example"). Host resolution and case linking both use it.
bool same_host_name(std::string_view a, std::string_view b);

}  // namespace riposte::controller
