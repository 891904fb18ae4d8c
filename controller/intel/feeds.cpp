#include "controller/intel/feeds.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/json_fields.h"
#include "common/utc_time.h"

namespace riposte::controller {

using nlohmann::json;
namespace t = observable_type;
namespace fs = std::filesystem;
namespace jf = riposte::json_fields;

namespace {

constexpr std::size_t kMaxSkipReasons = 5;

void skip(FeedContents& out, std::string reason) {
  ++out.skipped;
  if (out.skip_reasons.size() < kMaxSkipReasons) out.skip_reasons.push_back(std::move(reason));
}

// `ip:port` and `[v6]:port` (C2 feeds such as ThreatFox write them) -> the address; anything
// else unchanged. An unbracketed IPv6 address is left alone: its colons are not a port.
std::string_view without_port(std::string_view value) {
  if (value.size() > 2 && value.front() == '[') {
    const auto close = value.find(']');
    if (close != std::string_view::npos && close + 1 < value.size() && value[close + 1] == ':')
      return value.substr(1, close - 1);
    return value;
  }
  const auto colon = value.rfind(':');
  if (colon == std::string_view::npos || value.find(':') != colon) return value;
  const auto port = value.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }))
    return value;
  const auto host = value.substr(0, colon);
  return canonical_observable(t::kIp, host) ? host : value;
}

// Malpedia-style malware family names (`win.asyncrat`, `elf.mirai`): they parse as domains.
bool looks_like_family_name(std::string_view value) {
  static constexpr std::string_view kPlatforms[] = {"win.", "elf.", "apk.", "osx.", "ios.",
                                                    "js.",  "jar.", "ps1.", "py.",  "php.",
                                                    "vbs.", "asp.", "sh.",  "pl."};
  if (std::count(value.begin(), value.end(), '.') != 1) return false;
  return std::any_of(std::begin(kPlatforms), std::end(kPlatforms),
                     [&](std::string_view p) { return value.starts_with(p); });
}

// Why `network` cannot be an indicator, "" when it can. A range of host-local addresses, one that
// holds a sink or host-local address (0.0.0.0/0, 127.0.0.0/8, ::/0), one so broad it names a good
// part of the Internet, or one of private space would confirm alerts about nearly anything, or
// about our own hosts.
std::string unusable_network(const IpNetwork& network) {
  const auto text = network.to_string();
  const auto base = text.substr(0, text.find('/'));
  // Addresses every host has or no host owns: loopback, link-local (169.254.169.254, the cloud
  // metadata service), multicast, broadcast, unspecified.
  if (const auto scope = host_local_scope(base); !scope.empty())
    return fmt::format("{} is a range of {} addresses: never an indicator", text, scope);
  const int broadest = network.is_v6() ? 16 : 8;
  if (network.prefix_length() < broadest)
    return fmt::format("{} is broader than /{}: too broad to be an indicator", text, broadest);
  for (auto sink : {"0.0.0.0", "127.0.0.1", "::", "::1", "169.254.169.254", "224.0.0.1",
                    "255.255.255.255", "fe80::1", "ff02::1"})
    if (network.contains(sink))
      return fmt::format(
          "{} holds {}, an address every host has or none owns: never an "
          "indicator",
          text, sink);
  // A range of private space (RFC 1918, CGNAT RFC 6598, IPv6 ULA RFC 4193) is every
  // organisation's own network: a bogon list's entry, which would confirm alerts about our own
  // hosts. A single private address may still be an indicator.
  for (auto private_range :
       {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"}) {
    const auto range = IpNetwork::parse(private_range);
    if (range && range->contains(base) && network.prefix_length() >= range->prefix_length() &&
        network.prefix_length() < (network.is_v6() ? 128 : 32))
      return fmt::format(
          "{} is a range of private space ({}): a bogon list's entry, not an "
          "indicator",
          text, private_range);
  }
  return "";
}

// Adds `raw` as `type` (guessed when empty); CIDR ranges become networks. Returns why it was not
// added, "" when it was.
std::string add_indicator(FeedContents& out, std::string_view raw, std::string_view type = {}) {
  auto value = trim_whitespace(raw);
  if (value.empty()) return "an empty value";
  if (type.empty() || type == t::kIp) value = without_port(value);
  if ((type.empty() || type == t::kIp) && value.find('/') != std::string_view::npos &&
      value.find("://") == std::string_view::npos) {
    if (auto network = IpNetwork::parse(value)) {
      if (auto why = unusable_network(*network); !why.empty()) return why;
      out.networks.push_back(*network);
      return "";
    }
  }
  if (type.empty()) {
    auto guessed = guess_observable_type(value);
    if (!guessed)
      return fmt::format("\"{}\" is not an IP address, domain, URL or hash", value.substr(0, 80));
    type = *guessed;
  }
  auto canonical = canonical_observable(type, value);
  if (!canonical) return fmt::format("\"{}\" is not a valid {}", value.substr(0, 80), type);
  // Blocklists publish sinks (`0.0.0.0 domain`), and an address every host has would confirm
  // every alert that mentions it.
  if (type == t::kIp) {
    if (const auto scope = host_local_scope(*canonical); !scope.empty())
      return fmt::format("{} ({} address) is a sink or every host's own: never an indicator",
                         *canonical, scope);
  }
  out.indicators.push_back({std::string(type), std::move(*canonical), ""});
  return "";
}

// Adds `raw` valid in [from_ms, until_ms) as judged at `now_ms`: unbounded now, an indicator;
// bounded, a timed one that confirms only inside its window.
std::string add_indicator_for(FeedContents& out, std::int64_t now_ms, std::int64_t from_ms,
                              std::int64_t until_ms, std::string_view raw, std::string_view type) {
  if (from_ms <= now_ms && until_ms == 0) return add_indicator(out, raw, type);
  FeedContents scratch;
  auto why = add_indicator(scratch, raw, type);
  for (auto& indicator : scratch.indicators)
    out.timed.push_back({std::move(indicator), std::nullopt, from_ms, until_ms});
  for (auto& network : scratch.networks)
    out.timed.push_back({std::nullopt, network, from_ms, until_ms});
  return why;
}

// Names a hosts file gives the machine itself, not indicators.
bool hosts_file_own_name(std::string_view name) {
  const auto lower = ascii_lower(name);
  return lower == "localhost" || lower == "localhost.localdomain" || lower == "local" ||
         lower == "broadcasthost" || lower.starts_with("ip6-") || lower.ends_with(".localhost");
}

Result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{fmt::format("cannot read {}", path.string())};
  std::ostringstream text;
  text << in.rdbuf();
  auto contents = text.str();
  // A UTF-8 byte order mark (Windows editors write one) is not part of the first line.
  if (contents.starts_with("\xEF\xBB\xBF")) contents.erase(0, 3);
  return contents;
}

Result<json> read_json(const fs::path& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  try {
    return json::parse(*text);
  } catch (const json::parse_error& e) {
    const auto upto = std::min<std::size_t>(e.byte, text->size());
    const auto line = 1 + std::count(text->begin(), text->begin() + static_cast<long>(upto), '\n');
    return Error{fmt::format("{}: not valid JSON at line {} (byte {})", path.string(), line,
                             e.byte)};
  } catch (const json::exception& e) {
    // Valid syntax the parser still refuses: a number out of range (found by fuzz_feed_stix).
    return Error{fmt::format("{}: not usable JSON: {}", path.string(), e.what())};
  }
}

template <typename Fn>
void for_each_line(const std::string& text, Fn fn) {
  std::size_t line_no = 0, start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(++line_no, line);
    start = end + 1;
  }
}

// One indicator per line ("value  # comment"); text after it is counted as not read. Lines in
// hosts-file form (`0.0.0.0 domain [domain...]`, `127.0.0.1 domain`, as URLhaus and most DNS
// blocklists publish them) yield their names: the address in front is where the list sends them
// (a sink, or a block page), not an indicator.
Result<FeedContents> load_list(const FeedConfig& feed) {
  auto text = read_file(feed.path);
  if (!text) return text.error();
  FeedContents out;
  std::size_t lines = 0, comments = 0, hosts_lines = 0;
  for_each_line(*text, [&](std::size_t line_no, std::string_view line) {
    ++lines;
    line = trim_whitespace(line);
    if (line.empty() || line.front() == '#' || line.front() == ';') {
      ++comments;
      return;
    }
    line = trim_whitespace(line.substr(0, line.find('#')));
    std::vector<std::string_view> tokens;
    for (std::size_t at = 0; at < line.size();) {
      const auto end = std::min(line.find_first_of(" \t", at), line.size());
      if (end > at) tokens.push_back(line.substr(at, end - at));
      at = end + 1;
    }
    const auto address = canonical_observable(t::kIp, tokens.front());
    // `ADDRESS name [name...]`: a hosts-file line. Its names are the indicators; the address is
    // where the list sends them (a sink, or a block page's server), never one.
    if (tokens.size() > 1 && address) {
      ++hosts_lines;
      if (host_local_scope(*address).empty())
        skip(out, fmt::format("line {}: {} is where this hosts-file line sends its names (a block "
                              "page?), not an indicator",
                              line_no, *address));
      for (std::size_t i = 1; i < tokens.size(); ++i) {
        if (hosts_file_own_name(tokens[i])) {
          skip(out, fmt::format("line {}: \"{}\" is the hosts file's name for the machine itself",
                                line_no, tokens[i].substr(0, 80)));
          continue;
        }
        if (auto why = add_indicator(out, tokens[i], t::kDomain); !why.empty())
          skip(out, fmt::format("line {}: {}", line_no, why));
      }
      return;
    }
    if (auto why = add_indicator(out, tokens.front()); !why.empty())
      skip(out, fmt::format("line {}: {}", line_no, why));
    else if (tokens.size() > 1)
      skip(
          out,
          fmt::format(
              "line {}: \"{}\" after the indicator is not read", line_no,
              line.substr(static_cast<std::size_t>(tokens[1].data() - line.data())).substr(0, 80)));
  });
  out.detail = fmt::format(
      "{} lines: {} comments or blank, {} in hosts-file form (an address, "
      "then names){}",
      lines, comments, hosts_lines,
      out.skipped ? fmt::format(", {} entries skipped", out.skipped) : "");
  return out;
}

Result<FeedContents> load_csv(const FeedConfig& feed) {
  auto text = read_file(feed.path);
  if (!text) return text.error();
  std::vector<std::string> header;
  std::vector<std::pair<std::size_t, std::vector<std::string>>> rows;
  std::string last_comment;
  for_each_line(*text, [&](std::size_t line_no, std::string_view line) {
    if (trim_whitespace(line).empty()) return;
    if (line.front() == '#') {
      last_comment = std::string(trim_whitespace(line.substr(1)));
      return;
    }
    auto fields = split_csv_line(line);
    // A header is either the last comment line before the data (Feodo writes it so) or a first
    // data line that names the configured column.
    if (rows.empty() && header.empty()) {
      if (!feed.column.empty() &&
          std::find(fields.begin(), fields.end(), feed.column) != fields.end()) {
        header = std::move(fields);
        return;
      }
      if (last_comment.find(',') != std::string::npos) header = split_csv_line(last_comment);
    }
    rows.emplace_back(line_no, std::move(fields));
  });

  std::size_t column = 0;
  std::string chosen_by;
  // Header names publishers give their indicator column, best first.
  static constexpr std::string_view kIndicatorHeaders[] = {
      "ioc_value", "ioc", "indicator", "indicator_value", "dst_ip", "ip_address", "ip", "url",
      "domain", "hostname", "sha256_hash", "sha256", "sha1_hash", "sha1", "md5_hash", "md5",
      "value"};
  // Columns that name things about an indicator, never the indicator: a malware family such as
  // `win.asyncrat` reads like a domain.
  static constexpr std::string_view kNotIndicators[] = {
      "malware", "fk_malware", "malware_alias", "malware_printable", "family", "tags", "tag",
      "threat_type", "ioc_type", "reporter", "reference", "first_seen_utc", "last_seen_utc",
      "first_seen", "last_seen", "confidence_level", "status", "anonymous", "name"};
  const auto header_name = [&](std::size_t c) {
    return c < header.size() ? ascii_lower(header[c]) : std::string();
  };
  if (feed.column.empty()) {
    for (auto wanted : kIndicatorHeaders) {
      const auto it = std::find_if(header.begin(), header.end(),
                                   [&](const std::string& h) { return ascii_lower(h) == wanted; });
      if (it != header.end()) {
        column = static_cast<std::size_t>(it - header.begin());
        chosen_by = fmt::format("column {} '{}' (by its header name)", column + 1, *it);
        break;
      }
    }
  }
  if (!chosen_by.empty()) {
    // chosen by header name
  } else if (!feed.column.empty()) {
    const auto it = std::find(header.begin(), header.end(), feed.column);
    if (it == header.end()) {
      return Error{fmt::format("{}: no column '{}' in the header{}", feed.path.string(),
                               feed.column,
                               header.empty() ? " (no header line found)"
                                              : fmt::format(" ({})", fmt::join(header, ", ")))};
    }
    column = static_cast<std::size_t>(it - header.begin());
    chosen_by = fmt::format("column {} '{}' (configured)", column + 1, feed.column);
  } else {
    // The first column where most of the first rows hold indicators, skipping columns whose
    // header says they describe the indicator rather than hold it.
    // A column of addresses, URLs or hashes is preferred over one that only reads as domains:
    // malware family names (`win.asyncrat`, Malpedia's style) do too.
    std::size_t width = 0;
    for (const auto& [n, fields] : rows) width = std::max(width, fields.size());
    bool found = false;
    for (const bool domains_too : {false, true}) {
      for (std::size_t c = 0; c < width && !found; ++c) {
        const auto name = header_name(c);
        if (std::find(std::begin(kNotIndicators), std::end(kNotIndicators), name) !=
            std::end(kNotIndicators))
          continue;
        std::size_t sampled = 0, hits = 0;
        for (std::size_t r = 0; r < rows.size() && sampled < 20; ++r, ++sampled) {
          if (c >= rows[r].second.size()) continue;
          const auto value = without_port(trim_whitespace(rows[r].second[c]));
          const auto type = guess_observable_type(value);
          if (type && (*type != t::kDomain || (domains_too && !looks_like_family_name(value))))
            ++hits;
        }
        if (sampled > 0 && hits * 2 > sampled) {
          column = c;
          found = true;
          chosen_by = fmt::format("column {}{} (most values are indicators)", c + 1,
                                  name.empty() ? "" : " '" + header[c] + "'");
        }
      }
    }
    if (!found && !rows.empty()) {
      return Error{fmt::format("{}: no column holds indicators; set 'column' to the header name",
                               feed.path.string())};
    }
  }
  FeedContents out;
  out.detail = chosen_by;
  for (const auto& [line_no, fields] : rows) {
    if (column >= fields.size()) {
      skip(out, fmt::format("line {}: no column {}", line_no, column + 1));
    } else if (auto why = add_indicator(out, fields[column]); !why.empty()) {
      skip(out, fmt::format("line {}, column {}: {}", line_no, column + 1, why));
    }
  }
  return out;
}

// When a MISP attribute stops being an indicator: the earliest of its expiration sightings
// (`Sighting[].type` "2", `date_sighting` in Unix seconds), 0 when it has none. False-positive
// sightings (type "1") are one organisation's report, not the publisher's retraction: they are
// kept, as MISP itself keeps the attribute. nullopt when a sighting cannot be read.
Result<std::int64_t> misp_expiry_ms(const json& attribute) {
  const auto it = attribute.find("Sighting");
  if (it == attribute.end() || it->is_null()) return std::int64_t{0};
  if (!it->is_array()) return Error{"\"Sighting\" is not a list"};
  std::int64_t earliest = 0;
  for (const auto& sighting : *it) {
    if (!sighting.is_object()) return Error{"a sighting is not an object"};
    const auto type = sighting.contains("type") && sighting["type"].is_number_integer()
                          ? std::to_string(sighting["type"].get<std::int64_t>())
                          : jf::string_or(sighting, "type", "0");
    if (type != "2") continue;
    const auto date = sighting.contains("date_sighting") && sighting["date_sighting"].is_number()
                          ? sighting["date_sighting"].dump()
                          : jf::string_or(sighting, "date_sighting");
    char* end = nullptr;
    errno = 0;
    const long long seconds = std::strtoll(date.c_str(), &end, 10);
    if (date.empty() || end != date.c_str() + date.size() || errno != 0 || seconds < 0 ||
        seconds > 253'402'300'799LL)
      return Error{fmt::format("an expiration sighting's date_sighting \"{}\" is not Unix seconds",
                               date.substr(0, 40))};
    const std::int64_t ms = seconds * 1000;
    if (earliest == 0 || ms < earliest) earliest = ms;
  }
  return earliest;
}

// MISP attribute types we can look up, and which part of a composite value ("a|b") to use.
void add_misp_attribute(FeedContents& out, const json& attribute, const std::string& where,
                        std::int64_t now_ms) {
  if (!attribute.is_object()) return;
  // A flag that is not a boolean is not read as either value: a retracted indicator must not come
  // back because its "deleted" was written "1".
  for (const char* flag : {"deleted", "to_ids"}) {
    if (attribute.contains(flag) && !attribute[flag].is_boolean()) {
      skip(out, fmt::format("{}: an attribute's \"{}\" is not a boolean ({})", where, flag,
                            attribute[flag].type_name()));
      return;
    }
  }
  if (jf::bool_or(attribute, "deleted", false)) {
    ++out.revoked;
    return;
  }
  // to_ids=false marks context, not something to detect on.
  if (!jf::bool_or(attribute, "to_ids", true)) {
    ++out.not_for_detection;
    return;
  }
  const auto type = jf::string_at(attribute, "type");
  if (!type) {
    skip(out, attribute.contains("type")
                  ? fmt::format("{}: an attribute's \"type\" is not a string ({})", where,
                                attribute["type"].type_name())
                  : fmt::format("{}: an attribute has no \"type\"", where));
    return;
  }
  const auto expiry = misp_expiry_ms(attribute);
  if (!expiry) {
    skip(out, fmt::format("{}: {} attribute: {}", where, *type, expiry.error().message));
    return;
  }
  if (*expiry != 0 && *expiry <= now_ms) {
    ++out.expired;
    return;
  }
  const auto add = [&](std::string_view raw, std::string_view as) {
    return add_indicator_for(out, now_ms, 0, *expiry, raw, as);
  };
  const auto value = jf::string_or(attribute, "value");
  const auto bar = value.find('|');
  const std::string first = value.substr(0, bar);
  const std::string second = bar == std::string::npos ? "" : value.substr(bar + 1);
  std::string why;
  if (*type == "ip-src" || *type == "ip-dst") {
    why = add(value, t::kIp);
  } else if (*type == "ip-src|port" || *type == "ip-dst|port") {
    why = add(first, t::kIp);
  } else if (*type == "domain" || *type == "hostname") {
    why = add(value, t::kDomain);
  } else if (*type == "domain|ip" || *type == "hostname|port") {
    why = add(first, t::kDomain);
    if (*type == "domain|ip") {
      if (auto ip_why = add(second, t::kIp); !ip_why.empty()) why = ip_why;
    }
  } else if (*type == "url") {
    why = add(value, t::kUrl);
  } else if (*type == "md5" || *type == "sha1" || *type == "sha256") {
    why = add(value, *type);
  } else if (*type == "filename|md5" || *type == "filename|sha1" || *type == "filename|sha256") {
    why = add(second, type->substr(9));
  } else {
    return;  // other attribute kinds (text, email-subject, ...) are context
  }
  if (why.empty()) return;
  if (jf::holds_non_string(attribute, "value"))
    skip(out, fmt::format("{}: {} attribute's \"value\" is not a string ({})", where, *type,
                          attribute["value"].type_name()));
  else
    skip(out, fmt::format("{}: {} attribute: {}", where, *type, why));
}

Result<FeedContents> load_misp(const FeedConfig& feed, std::int64_t now_ms) {
  if (!fs::is_directory(feed.path))
    return Error{
        fmt::format("{}: a MISP feed is a directory with manifest.json", feed.path.string())};
  auto manifest = read_json(feed.path / "manifest.json");
  if (!manifest) return manifest.error();
  if (!manifest->is_object())
    return Error{fmt::format("{}: manifest.json must map event UUIDs to event summaries",
                             feed.path.string())};
  FeedContents out;
  for (const auto& [uuid, summary] : manifest->items()) {
    const bool safe = !uuid.empty() && std::all_of(uuid.begin(), uuid.end(), [](unsigned char c) {
      return std::isxdigit(c) || c == '-';
    });
    if (!safe)
      return Error{
          fmt::format("{}: manifest key '{}' is not an event UUID", feed.path.string(), uuid)};
    const auto file = feed.path / (uuid + ".json");
    auto event = read_json(file);
    if (!event)
      return Error{fmt::format("MISP feed {}: event listed in manifest.json: {}", feed.name,
                               event.error().message)};
    const auto* body =
        event->is_object() && event->contains("Event") ? &(*event)["Event"] : nullptr;
    if (body == nullptr || !body->is_object())
      return Error{fmt::format("{}: not a MISP event (no \"Event\" object)", file.string())};
    const auto where = file.filename().string();
    if (const auto it = body->find("Attribute"); it != body->end() && it->is_array()) {
      for (const auto& a : *it) add_misp_attribute(out, a, where, now_ms);
    }
    if (const auto it = body->find("Object"); it != body->end() && it->is_array()) {
      for (const auto& object : *it) {
        if (!object.is_object()) continue;
        // A deleted object takes its attributes with it, whatever each of them says.
        if (object.contains("deleted") && object["deleted"] == true) {
          if (const auto attrs = object.find("Attribute");
              attrs != object.end() && attrs->is_array())
            out.revoked += attrs->size();
          continue;
        }
        if (const auto attrs = object.find("Attribute"); attrs != object.end() && attrs->is_array())
          for (const auto& a : *attrs) add_misp_attribute(out, a, where, now_ms);
      }
    }
  }
  return out;
}

// One comparison of a STIX pattern: `object-path = 'value'` or `... ISSUBSET 'cidr'`; `group`
// numbers the comparisons joined by AND inside one observation expression.
struct StixComparison {
  std::string path;
  std::string op;
  std::string value;
  int group = 0;
};

// A group of comparisons joined by AND that only narrows one object, as MISP's STIX 2.1 export
// writes an address: [network-traffic:dst_ref.type = 'ipv4-addr' AND
// network-traffic:dst_ref.value = '203.0.113.5' AND network-traffic:dst_port = '443'] is the
// address. The one comparison that names the value, rewritten to the address's own path;
// an error when the group correlates anything else.
Result<StixComparison> single_indicator_of(const std::vector<StixComparison>& group) {
  if (group.size() == 1) return group.front();
  const auto object = group.front().path.substr(0, group.front().path.find(':'));
  const StixComparison* value = nullptr;
  std::string ref_type;
  for (const auto& c : group) {
    if (c.path.substr(0, c.path.find(':')) != object)
      return Error{"'AND' across objects is a correlation, not a single indicator"};
    const auto field = c.path.substr(c.path.find(':') + 1);
    if (object == "network-traffic" && (field == "dst_ref.value" || field == "src_ref.value")) {
      if (value != nullptr) return Error{"'AND' of two addresses is not a single indicator"};
      value = &c;
    } else if (object == "network-traffic" &&
               (field == "dst_ref.type" || field == "src_ref.type")) {
      ref_type = c.value;
    } else if (object == "network-traffic" &&
               (field == "dst_port" || field == "src_port" || field.starts_with("protocols"))) {
      // narrows the same connection: the address is still the indicator
    } else {
      return Error{fmt::format("'AND' with {} is not a single indicator", c.path)};
    }
  }
  if (value == nullptr) return Error{"'AND' without an address is not a single indicator"};
  if (!ref_type.empty() && ref_type != "ipv4-addr" && ref_type != "ipv6-addr" &&
      ref_type != "domain-name")
    return Error{fmt::format("'AND' on a {} reference is not an indicator we match", ref_type)};
  StixComparison out = *value;
  out.path = (ref_type.empty() ? std::string("ipv4-addr") : ref_type) + ":value";
  if (ref_type.empty() && out.value.find(':') != std::string::npos) out.path = "ipv6-addr:value";
  return out;
}

// Parses the patterns we can use: one or more observation expressions joined by OR, each a list
// of comparisons joined by OR. Anything with AND, FOLLOWEDBY or qualifiers is a correlation a
// single-observable lookup cannot confirm: an error naming it.
Result<std::vector<StixComparison>> parse_stix_pattern(std::string_view pattern) {
  std::vector<StixComparison> out;
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < pattern.size() && std::isspace(static_cast<unsigned char>(pattern[i]))) ++i;
  };
  auto word = [&] {
    skip_space();
    std::size_t start = i;
    while (i < pattern.size() && !std::isspace(static_cast<unsigned char>(pattern[i])) &&
           pattern[i] != '[' && pattern[i] != ']' && pattern[i] != '\'' && pattern[i] != '=')
      ++i;
    return std::string(pattern.substr(start, i - start));
  };
  int depth = 0;
  int group = 0;
  bool joined = false;  // the next comparison joins the current group (after AND)
  while (true) {
    skip_space();
    if (i >= pattern.size()) break;
    if (pattern[i] == '[' || pattern[i] == '(') {
      if (pattern[i] == '[') {
        if (joined) return Error{"'AND' between observations is a correlation"};
        ++group;
      }
      ++depth;
      ++i;
      continue;
    }
    if (pattern[i] == ']' || pattern[i] == ')') {
      --depth;
      ++i;
      continue;
    }
    auto token = word();
    if (token.empty()) return Error{fmt::format("unexpected '{}'", pattern[i])};
    if (token == "OR") {
      if (joined) return Error{"'AND' followed by 'OR'"};
      ++group;
      continue;
    }
    if (token == "AND") {
      if (out.empty() || joined) return Error{"'AND' without a comparison before it"};
      joined = true;
      continue;
    }
    if (token == "FOLLOWEDBY" || token == "WITHIN" || token == "REPEATS" || token == "START" ||
        token == "NOT")
      return Error{fmt::format("'{}' patterns are not single indicators", token)};
    if (depth == 0) return Error{fmt::format("'{}' outside an observation expression", token)};
    // token is an object path, possibly with a quoted part: file:hashes.'SHA-256'
    std::string path = token;
    while (i < pattern.size() && pattern[i] == '\'') {
      const auto close = pattern.find('\'', i + 1);
      if (close == std::string_view::npos) return Error{"unterminated quote"};
      path += pattern.substr(i, close - i + 1);
      i = close + 1;
      path += word();
    }
    skip_space();
    std::string op;
    if (i < pattern.size() && pattern[i] == '=') {
      op = "=";
      ++i;
    } else {
      op = word();
    }
    if (op != "=" && op != "ISSUBSET")
      return Error{fmt::format("operator '{}' is not an exact match", op)};
    skip_space();
    if (i >= pattern.size() || pattern[i] != '\'') return Error{"expected a quoted value"};
    std::string value;
    for (++i; i < pattern.size() && pattern[i] != '\''; ++i) {
      if (pattern[i] == '\\' && i + 1 < pattern.size()) ++i;
      value += pattern[i];
    }
    if (i >= pattern.size()) return Error{"unterminated value"};
    ++i;
    if (!joined) ++group;
    joined = false;
    out.push_back({path, op, value, group});
  }
  if (depth != 0) return Error{"unbalanced brackets"};
  if (joined) return Error{"'AND' at the end"};
  if (out.empty()) return Error{"empty pattern"};
  // Each AND group becomes its one indicator, or the pattern is refused.
  std::vector<StixComparison> singles;
  for (std::size_t start = 0; start < out.size();) {
    std::size_t end = start;
    while (end < out.size() && out[end].group == out[start].group) ++end;
    auto one = single_indicator_of({out.begin() + static_cast<long>(start),
                                    out.begin() + static_cast<long>(end)});
    if (!one) return one.error();
    singles.push_back(std::move(*one));
    start = end;
  }
  return singles;
}

// The indicators of a feed's bundles, one version per id: STIX 2.1 (3.6, versioning) makes the
// version with the latest `modified` the current one, and a revocation final, so an export or a
// directory of daily bundles that revokes or expires an indicator in a newer version is obeyed
// whatever the order of files and objects.
struct StixVersions {
  struct Latest {
    json object;
    std::int64_t modified_ms = 0;
    bool revoked = false;  // some version said so: it stays revoked
  };
  std::map<std::string, Latest> by_id;
  // In the order first seen: an id (its latest version), or an object without one (itself).
  std::vector<std::pair<std::string, json>> order;

  void add(const json& object) {
    const auto id = jf::string_or(object, "id");
    if (id.empty()) {
      order.emplace_back("", object);
      return;
    }
    const auto stamp = [&](const char* field) -> std::int64_t {
      const auto text = jf::string_or(object, field);
      return text.empty() ? 0 : parse_rfc3339_ms(text).value_or(0);
    };
    const auto modified = std::max(stamp("modified"), stamp("created"));
    const bool revoked = object.contains("revoked") && object["revoked"] == true;
    auto [it, fresh] = by_id.try_emplace(id);
    if (fresh) order.emplace_back(id, json());
    auto& latest = it->second;
    latest.revoked = latest.revoked || revoked;
    if (fresh || modified >= latest.modified_ms) {
      latest.object = object;
      latest.modified_ms = modified;
    }
  }
};

Status collect_stix_bundle(StixVersions& versions, const json& bundle, const fs::path& file) {
  if (jf::string_or(bundle, "type") != "bundle")
    return Error{
        fmt::format("{}: not a STIX bundle (\"type\": \"bundle\" missing)", file.string())};
  // The version is each object's own `spec_version` (STIX 2.1 put it there); a bundle-level one,
  // which STIX 2.0 had and some publishers still write beside 2.1 objects, says nothing.
  if (!bundle.contains("objects")) return ok_status();
  if (!bundle["objects"].is_array())
    return Error{fmt::format("{}: \"objects\" must be a list", file.string())};
  for (const auto& object : bundle["objects"])
    if (jf::string_or(object, "type") == "indicator") versions.add(object);
  return ok_status();
}

void add_stix_indicators(FeedContents& out, const StixVersions& versions, std::int64_t now_ms) {
  std::vector<json> objects;
  for (const auto& [id, object] : versions.order) {
    if (id.empty()) {
      objects.push_back(object);
      continue;
    }
    const auto& latest = versions.by_id.at(id);
    if (latest.revoked &&
        !(latest.object.contains("revoked") && latest.object["revoked"] == true)) {
      ++out.revoked;  // an older version revoked it: revocation is final (STIX 2.1 3.6)
      continue;
    }
    objects.push_back(latest.object);
  }
  for (const auto& object : objects) {
    const auto id = jf::string_or(object, "id", "?");
    if (jf::string_or(object, "spec_version") != "2.1") {
      skip(out, fmt::format("{}: not a STIX 2.1 object (spec_version {})", id,
                            object.contains("spec_version") ? object["spec_version"].dump()
                                                            : "missing: STIX 2.0"));
      continue;
    }
    if (object.contains("revoked") && !object["revoked"].is_boolean()) {
      skip(out, fmt::format("{}: \"revoked\" is not a boolean ({})", id,
                            object["revoked"].type_name()));
      continue;
    }
    if (jf::bool_or(object, "revoked", false)) {
      ++out.revoked;
      continue;
    }
    // OpenCTI's own flag: an indicator kept for knowledge, not for detection.
    if (object.contains("x_opencti_detection") && !object["x_opencti_detection"].is_boolean()) {
      skip(out, fmt::format("{}: \"x_opencti_detection\" is not a boolean ({})", id,
                            object["x_opencti_detection"].type_name()));
      continue;
    }
    if (!jf::bool_or(object, "x_opencti_detection", true)) {
      ++out.not_for_detection;
      continue;
    }
    // The window the producer vouches for (STIX 2.1 4.7: valid_from required, valid_until
    // optional and after it).
    std::int64_t window[2] = {0, 0};
    bool readable = true;
    for (int i = 0; i < 2; ++i) {
      const char* field = i == 0 ? "valid_from" : "valid_until";
      if (!object.contains(field) || object[field].is_null()) continue;
      const auto text = object[field].is_string() ? object[field].get<std::string>() : "";
      const auto ms = parse_rfc3339_ms(text);
      if (!ms) {
        skip(out, fmt::format("{}: \"{}\" is not a timestamp ({})", id, field,
                              object[field].dump().substr(0, 60)));
        readable = false;
        break;
      }
      window[i] = *ms;
    }
    if (!readable) continue;
    if (window[1] != 0 && window[1] <= window[0]) {
      skip(out, fmt::format("{}: valid_until is not after valid_from: never valid", id));
      continue;
    }
    if (window[1] != 0 && window[1] <= now_ms) {
      ++out.expired;
      continue;
    }
    if (jf::string_or(object, "pattern_type") != "stix") {
      skip(out, fmt::format("{}: pattern_type {} is not stix", id,
                            object.contains("pattern_type")
                                ? object["pattern_type"].dump().substr(0, 80)
                                : "missing"));
      continue;
    }
    if (jf::holds_non_string(object, "pattern")) {
      skip(out, fmt::format("{}: \"pattern\" is not a string ({})", id,
                            object["pattern"].type_name()));
      continue;
    }
    auto comparisons = parse_stix_pattern(jf::string_or(object, "pattern"));
    if (!comparisons) {
      skip(out, fmt::format("{}: {}", id, comparisons.error().message));
      continue;
    }
    for (const auto& c : *comparisons) {
      std::string_view type;
      if (c.path == "ipv4-addr:value" || c.path == "ipv6-addr:value") type = t::kIp;
      if (c.path == "domain-name:value") type = t::kDomain;
      if (c.path == "url:value") type = t::kUrl;
      if (c.path == "file:hashes.MD5" || c.path == "file:hashes.'MD5'") type = t::kMd5;
      if (c.path == "file:hashes.'SHA-1'" || c.path == "file:hashes.SHA1") type = t::kSha1;
      if (c.path == "file:hashes.'SHA-256'" || c.path == "file:hashes.SHA256") type = t::kSha256;
      if (type.empty()) {
        skip(out, fmt::format("{}: '{}' is not an indicator type we match", id, c.path));
        continue;
      }
      if (c.op == "ISSUBSET" && type != t::kIp) {
        skip(out, fmt::format("{}: ISSUBSET on {}", id, c.path));
        continue;
      }
      if (auto why = add_indicator_for(out, now_ms, window[0], window[1], c.value, type);
          !why.empty())
        skip(out, fmt::format("{}: {}", id, why));
    }
  }
}

Result<FeedContents> load_stix(const FeedConfig& feed, std::int64_t now_ms) {
  std::vector<fs::path> files;
  if (fs::is_directory(feed.path)) {
    for (const auto& entry : fs::directory_iterator(feed.path))
      if (entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) return Error{fmt::format("{}: no *.json bundles", feed.path.string())};
  } else {
    files.push_back(feed.path);
  }
  StixVersions versions;
  for (const auto& file : files) {
    auto bundle = read_json(file);
    if (!bundle) return bundle.error();
    if (auto s = collect_stix_bundle(versions, *bundle, file); !s) return s.error();
  }
  FeedContents out;
  add_stix_indicators(out, versions, now_ms);
  return out;
}

}  // namespace

std::vector<std::string> split_csv_line(std::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  for (auto& f : fields) f = std::string(trim_whitespace(f));
  return fields;
}

Result<FeedContents> load_feed(const FeedConfig& feed, std::int64_t now_ms) {
  if (!fs::exists(feed.path))
    return Error{fmt::format("feed '{}': {} does not exist", feed.name, feed.path.string())};
  Result<FeedContents> loaded = Error{""};
  if (feed.format == "csv") {
    loaded = load_csv(feed);
  } else if (feed.format == "list") {
    loaded = load_list(feed);
  } else if (feed.format == "misp") {
    loaded = load_misp(feed, now_ms);
  } else if (feed.format == "stix") {
    loaded = load_stix(feed, now_ms);
  } else {
    return Error{fmt::format("feed '{}': unknown format '{}' (csv, list, misp or stix)", feed.name,
                             feed.format)};
  }
  if (!loaded) return Error{fmt::format("feed '{}': {}", feed.name, loaded.error().message)};
  if (loaded->indicators.empty() && loaded->networks.empty() && loaded->timed.empty() &&
      loaded->skipped > 0) {
    return Error{fmt::format("feed '{}': none of its {} entries is a usable indicator (first: {})",
                             feed.name, loaded->skipped, loaded->skip_reasons.front())};
  }
  return loaded;
}

}  // namespace riposte::controller
