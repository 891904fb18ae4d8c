#include "controller/alerts/normalizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include "common/utc_time.h"
#include "protocol/crypto.h"

namespace riposte::controller {

using nlohmann::json;
namespace t = observable_type;

const json* find_field(const json& document, std::string_view path) {
  if (!document.is_object() || path.empty()) return nullptr;
  // Try every split of the path: the whole path as one key, then "a.b" + rest, then "a" + rest.
  for (std::size_t end = path.size();;) {
    // nlohmann's object comparator is std::less<>, so a string_view key needs no allocation.
    const auto it = document.find(path.substr(0, end));
    if (it != document.end()) {
      if (end == path.size()) return &*it;
      if (const auto* found = find_field(*it, path.substr(end + 1))) return found;
    }
    if (end == 0) return nullptr;
    end = path.rfind('.', end - 1);
    if (end == std::string_view::npos) return nullptr;
  }
}

std::string_view severity_from_risk_score(double score) {
  if (score < 22) return "low";
  if (score < 48) return "medium";
  if (score < 74) return "high";
  return "critical";
}

namespace {

// Dates alerts may carry: 1970-01-01 to 9999-12-31, in Unix milliseconds.
constexpr std::int64_t kLastMs = 253'402'300'799'999;  // 9999-12-31T23:59:59.999Z
bool is_date_ms(std::int64_t ms) { return ms >= 0 && ms <= kLastMs; }


// Reads typed fields of one document and collects what it finds; the first wrong type is kept as
// the error (a document with a wrong type is refused as a whole).
class FieldReader {
 public:
  explicit FieldReader(const json& document) : doc_(document) {}

  // A string field; numbers are accepted where sources write ids as numbers.
  std::optional<std::string> text(std::string_view path, bool allow_number = false) {
    const auto* v = find_field(doc_, path);
    if (!v || v->is_null()) return std::nullopt;
    if (v->is_string()) {
      auto s = v->get<std::string>();
      if (s.empty()) return std::nullopt;
      return s;
    }
    if (allow_number && v->is_number_integer()) return std::to_string(v->get<std::int64_t>());
    fail(path, allow_number ? "a string or an integer" : "a string", *v);
    return std::nullopt;
  }
  // The first of `paths` that is present.
  std::string first_text(std::initializer_list<std::string_view> paths, bool allow_number = false) {
    for (auto path : paths) {
      if (auto value = text(path, allow_number)) return *value;
    }
    return "";
  }
  // A string or a list of strings.
  std::vector<std::string> texts(std::string_view path) {
    std::vector<std::string> out;
    const auto* v = find_field(doc_, path);
    if (!v || v->is_null()) return out;
    if (v->is_string()) {
      out.push_back(v->get<std::string>());
      return out;
    }
    if (v->is_array()) {
      for (const auto& item : *v) {
        if (!item.is_string()) {
          fail(path, "a string or a list of strings", *v);
          return {};
        }
        out.push_back(item.get<std::string>());
      }
      return out;
    }
    fail(path, "a string or a list of strings", *v);
    return out;
  }
  // A number; numeric strings are accepted (Wazuh writes some numbers as strings).
  std::optional<double> number(std::string_view path) {
    const auto* v = find_field(doc_, path);
    if (!v || v->is_null()) return std::nullopt;
    if (v->is_number()) return v->get<double>();
    if (v->is_string()) {
      const auto s = v->get<std::string>();
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(d)) return d;
    }
    fail(path, "a number", *v);
    return std::nullopt;
  }
  // A date as Elasticsearch `date` fields take it (strict_date_optional_time||epoch_millis):
  // an ISO 8601 / RFC 3339 string, or epoch milliseconds as a number or a numeric string.
  // Only 1970-01-01 to 9999-12-31 reads as a date: anything else is a unit mistaken (epoch
  // nanoseconds), an overflow or an attack, and a start time outside it would "prove" any process.
  std::optional<std::int64_t> timestamp(std::string_view path) {
    const auto in_range = is_date_ms;
    const auto* v = find_field(doc_, path);
    if (!v || v->is_null()) return std::nullopt;
    if (v->is_number_unsigned()) {
      if (v->get<std::uint64_t>() <= static_cast<std::uint64_t>(kLastMs))
        return static_cast<std::int64_t>(v->get<std::uint64_t>());
    } else if (v->is_number_integer()) {
      if (in_range(v->get<std::int64_t>())) return v->get<std::int64_t>();
    } else if (v->is_number_float()) {
      const double ms = v->get<double>();
      if (std::isfinite(ms) && ms >= 0 && ms <= static_cast<double>(kLastMs))
        return static_cast<std::int64_t>(ms);
    } else if (v->is_string()) {
      const auto s = v->get<std::string>();
      if (s.empty()) return std::nullopt;
      if (auto ms = parse_rfc3339_ms(s); ms && in_range(*ms)) return ms;
      if (s.size() <= 19 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
            return std::isdigit(c) || c == '-';
          })) {
        char* end = nullptr;
        errno = 0;
        const long long ms = std::strtoll(s.c_str(), &end, 10);
        if (end == s.c_str() + s.size() && errno == 0 && in_range(ms)) return ms;
      }
    }
    fail(path, "a date (ISO 8601 text or epoch milliseconds) from 1970 to 9999", *v);
    return std::nullopt;
  }

  // Adds `value` as an observable of `type` if it is one; otherwise notes why it was dropped.
  void observable(std::string_view type, std::string_view path, std::string_view value,
                  std::string start = "", std::string entity_id = "") {
    if (value.empty()) return;
    auto canonical = canonical_observable(type, value);
    if (!canonical) {
      notes_.push_back(
          fmt::format("'{}' value \"{}\" is not a valid {}; dropped", path, clip(value), type));
      return;
    }
    Observable o{std::string(type), std::move(*canonical), std::move(start), std::move(entity_id)};
    if (std::find(observables_.begin(), observables_.end(), o) == observables_.end())
      observables_.push_back(std::move(o));
  }
  // A value of unknown type: the first observable type it is (IP, hash by length, URL, domain).
  void any_observable(std::string_view path, std::string_view value) {
    for (auto type : {t::kIp, t::kSha256, t::kSha1, t::kMd5, t::kUrl, t::kDomain}) {
      if (canonical_observable(type, value)) {
        observable(type, path, value);
        return;
      }
    }
    notes_.push_back(fmt::format("'{}' value \"{}\" is no known observable type; dropped", path,
                                 clip(value)));
  }
  void observables_at(std::string_view type, std::string_view path) {
    for (const auto& value : texts(path)) observable(type, path, value);
  }
  // A hash field whose type is known only by its length (ECS related.hash, Sysmon Hashes).
  void hash(std::string_view path, std::string_view value) {
    const std::string_view type = value.size() == 32   ? t::kMd5
                                  : value.size() == 40 ? t::kSha1
                                                       : t::kSha256;
    observable(type, path, value);
  }

  // A value of the wrong type is dropped with a note saying so: one odd field never loses the
  // alert (only a document with nothing usable is refused, by normalize_alert).
  void fail(std::string_view path, std::string_view expected, const json& got) {
    notes_.push_back(fmt::format("'{}' must be {}, got {} {}; dropped", path, expected,
                                 got.type_name(), clip(got.dump())));
  }
  static std::string clip(std::string_view s) {
    return s.size() > 80 ? std::string(s.substr(0, 80)) + "..." : std::string(s);
  }

  std::vector<Observable>& observables() { return observables_; }
  std::vector<std::string>& notes() { return notes_; }

 private:
  const json& doc_;
  std::vector<Observable> observables_;
  std::vector<std::string> notes_;
};

bool has_key_with_prefix(const json& doc, std::string_view prefix) {
  for (const auto& [key, value] : doc.items()) {
    if (std::string_view(key).starts_with(prefix)) return true;
  }
  return false;
}

const json& unwrap_wazuh(const json& doc) {
  if (const auto* alert = find_field(doc, "parameters.alert"); alert && alert->is_object())
    return *alert;
  return doc;
}

// A search hit (Elasticsearch, OpenSearch, the Wazuh indexer) wraps the document in `_source`,
// whoever produced it.
const json& unwrap_source(const json& doc) {
  const auto it = doc.find("_source");
  return it != doc.end() && it->is_object() ? *it : doc;
}

// Wazuh's own markers: a rule with a level, and where the event came from.
bool looks_like_wazuh(const json& doc) {
  return find_field(doc, "rule.level") != nullptr &&
         (doc.contains("agent") || doc.contains("manager") || doc.contains("decoder") ||
          doc.contains("location"));
}

// `doc` is `outer` or its `_source`; `r` reads `doc`.
void read_ecs(const json& outer, const json& doc, FieldReader& r, AlertRecord& a) {
  a.source_id = r.text("kibana.alert.uuid").value_or("");
  if (a.source_id.empty()) {
    if (const auto it = outer.find("_id"); it != outer.end() && it->is_string())
      a.source_id = it->get<std::string>();
  }
  if (a.source_id.empty()) a.source_id = r.text("event.id").value_or("");
  a.rule_id = r.first_text(
      {"kibana.alert.rule.rule_id", "kibana.alert.rule.uuid", "signal.rule.id", "rule.id"}, true);
  a.rule_name = r.first_text({"kibana.alert.rule.name", "signal.rule.name", "rule.name"});
  if (auto s = r.text("kibana.alert.severity")) {
    a.severity = ascii_lower(*s);
  } else if (auto score = r.number("kibana.alert.risk_score")) {
    a.severity = severity_from_risk_score(*score);
  } else if (auto risk = r.number("event.risk_score")) {
    a.severity = severity_from_risk_score(*risk);
  } else if (auto sev = r.number("event.severity")) {
    a.severity = severity_from_risk_score(*sev);
  }
  if (auto ts = r.timestamp("kibana.alert.original_time")) {
    a.timestamp_ms = *ts;
  } else if (auto at = r.timestamp("@timestamp")) {
    a.timestamp_ms = *at;
  }
  a.host_name = r.first_text({"host.name", "host.hostname"});
  a.host_ips = r.texts("host.ip");
  a.user_name = r.first_text({"user.name"});

  for (auto path : {"source.ip", "destination.ip", "client.ip", "server.ip", "threat.indicator.ip",
                    "related.ip"})
    r.observables_at(t::kIp, path);
  for (auto path : {"destination.domain", "source.domain", "dns.question.name", "url.domain",
                    "threat.indicator.url.domain"})
    r.observables_at(t::kDomain, path);
  for (auto path : {"url.full", "url.original", "threat.indicator.url.full"})
    r.observables_at(t::kUrl, path);
  for (auto prefix : {"file.hash", "process.hash", "process.parent.hash", "dll.hash",
                      "threat.indicator.file.hash"}) {
    for (auto [algo, type] :
         {std::pair{"md5", t::kMd5}, {"sha1", t::kSha1}, {"sha256", t::kSha256}})
      r.observables_at(type, fmt::format("{}.{}", prefix, algo));
  }
  for (const auto& value : r.texts("related.hash")) r.hash("related.hash", value);
  for (auto path : {"file.path", "process.executable", "dll.path"})
    r.observables_at(t::kFilePath, path);
  if (auto pid = r.text("process.pid", true)) {
    const auto start = r.timestamp("process.start");
    r.observable(t::kProcess, "process.pid", *pid, start ? format_utc_ms(*start) : "",
                 r.text("process.entity_id").value_or(""));
  }
  r.observables_at(t::kUser, "user.name");
  r.observables_at(t::kUser, "related.user");
  // Indicator-match alerts (ECS >= 1.11): what each enrichment matched is an observable.
  if (const auto* enrichments = find_field(doc, "threat.enrichments");
      enrichments && enrichments->is_array()) {
    for (std::size_t i = 0; i < enrichments->size(); ++i) {
      const auto& e = (*enrichments)[i];
      if (!e.is_object()) continue;
      FieldReader er(e);
      const auto where = fmt::format("threat.enrichments[{}]", i);
      for (const auto& ip : er.texts("indicator.ip")) r.observable(t::kIp, where + ".indicator.ip", ip);
      for (auto path : {"indicator.url.full", "indicator.url.original"})
        for (const auto& url : er.texts(path)) r.observable(t::kUrl, where + "." + path, url);
      for (const auto& d : er.texts("indicator.url.domain"))
        r.observable(t::kDomain, where + ".indicator.url.domain", d);
      for (auto [algo, type] :
           {std::pair{"md5", t::kMd5}, {"sha1", t::kSha1}, {"sha256", t::kSha256}})
        for (const auto& h : er.texts(fmt::format("indicator.file.hash.{}", algo)))
          r.observable(type, where + ".indicator.file.hash." + algo, h);
      // matched.atomic is the value that matched, typed by matched.type ("indicator_match_rule")
      // only loosely: take it as whatever observable it is.
      if (auto atomic = er.text("matched.atomic")) r.any_observable(where + ".matched.atomic", *atomic);
      for (auto& note : er.notes()) r.notes().push_back(where + ": " + note);
    }
  }
}

std::string_view severity_from_wazuh_level(double level) {
  if (level < 7) return "low";
  if (level < 12) return "medium";
  if (level < 15) return "high";
  return "critical";
}

// Sysmon's EventData as Wazuh decodes it. On Windows the eventchannel decoder writes
// `data.win.eventdata.*` and `data.win.system.eventID`; Sysmon for Linux logs the same XML to
// syslog and the decoders that read it (SOCFortress Wazuh-Rules "Sysmon Linux", which Wazuh's
// own Sysmon for Linux posts use) write `data.eventdata.*` and `data.system.eventId`, with key
// case as each decoder happened to write it (`eventdata.DestinationIp` beside
// `eventdata.sourceIp`). So names are matched without regard to case, under either prefix.
class SysmonFields {
 public:
  explicit SysmonFields(const json& body) {
    for (std::string_view prefix : {"data.win", "data"}) {
      const auto* eventdata = find_field(body, fmt::format("{}.eventdata", prefix));
      if (!eventdata || !eventdata->is_object()) continue;
      prefix_ = prefix;
      eventdata_ = eventdata;
      system_ = find_field(body, fmt::format("{}.system", prefix));
      return;
    }
  }
  bool present() const { return eventdata_ != nullptr; }
  // The path of EventData field `name` as this alert spells it; "" when absent.
  std::string path(std::string_view name) const { return key_path(eventdata_, "eventdata", name); }
  // The path of System field `name` ("eventID") as this alert spells it; "" when absent.
  std::string system_path(std::string_view name) const { return key_path(system_, "system", name); }

 private:
  std::string key_path(const json* object, std::string_view part, std::string_view name) const {
    if (!object || !object->is_object()) return "";
    for (const auto& [key, value] : object->items())
      if (ascii_lower(key) == ascii_lower(name)) return fmt::format("{}.{}.{}", prefix_, part, key);
    return "";
  }
  std::string_view prefix_;
  const json* eventdata_ = nullptr;
  const json* system_ = nullptr;
};

void read_wazuh_sysmon(const json& body, FieldReader& inner, AlertRecord& a) {
  const SysmonFields sysmon(body);
  if (!sysmon.present()) return;
  const auto text = [&](std::string_view name, bool allow_number = false) {
    const auto path = sysmon.path(name);
    return path.empty() ? std::nullopt : inner.text(path, allow_number);
  };
  for (auto name : {"targetUserName", "user"}) {
    if (a.user_name.empty()) a.user_name = text(name).value_or("");
    if (const auto path = sysmon.path(name); !path.empty()) inner.observables_at(t::kUser, path);
  }
  for (auto name : {"sourceIp", "destinationIp"})
    if (const auto path = sysmon.path(name); !path.empty()) inner.observables_at(t::kIp, path);
  if (const auto path = sysmon.path("queryName"); !path.empty())
    inner.observables_at(t::kDomain, path);
  for (auto name : {"image", "targetFilename"})
    if (const auto path = sysmon.path(name); !path.empty())
      inner.observables_at(t::kFilePath, path);
  // "SHA1=...,MD5=...,SHA256=...,IMPHASH=...".
  if (const auto path = sysmon.path("hashes"); !path.empty()) {
    std::string_view rest;
    const auto hashes = inner.text(path);
    if (hashes) rest = *hashes;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const auto item = rest.substr(0, comma);
      const auto eq = item.find('=');
      if (eq != std::string_view::npos) {
        const auto algo = ascii_lower(item.substr(0, eq));
        const auto value = item.substr(eq + 1);
        if (algo == "md5") inner.observable(t::kMd5, path, value);
        if (algo == "sha1") inner.observable(t::kSha1, path, value);
        if (algo == "sha256") inner.observable(t::kSha256, path, value);
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  // Process creation (event 1): the pid, its ProcessGuid, and UtcTime, the creation time in UTC
  // written "2024-01-01 10:00:00.123" (no zone; some decoders keep a "T" and a "Z").
  if (auto pid = text("processId", true)) {
    std::string start;
    const auto event_path = sysmon.system_path("eventID");
    if (!event_path.empty() && inner.text(event_path, true).value_or("") == "1") {
      const auto utc = text("utcTime").value_or("");
      auto ms = parse_rfc3339_ms(utc);
      if (!ms && !utc.empty()) ms = parse_rfc3339_ms(utc + "Z");
      if (ms && is_date_ms(*ms)) start = format_utc_ms(*ms);
    }
    inner.observable(t::kProcess, sysmon.path("processId"), *pid, start,
                     text("processGuid").value_or(""));
  }
}

// `inner` reads the alert itself (unwrapped from an active-response message).
void read_wazuh(const json& body, FieldReader& inner, AlertRecord& a) {
  a.source_id = inner.text("id", true).value_or("");
  a.rule_id = inner.text("rule.id", true).value_or("");
  a.rule_name = inner.text("rule.description").value_or("");
  if (auto level = inner.number("rule.level")) a.severity = severity_from_wazuh_level(*level);
  if (auto ts = inner.timestamp("timestamp")) a.timestamp_ms = *ts;
  // Agent 000 is the Wazuh manager itself. For what it collects from other devices (syslog it
  // receives), the host is the sender: its name when the predecoder found one, else its address
  // in `location`, with no name. Never the manager that forwarded it: `target: host` would act
  // on the collector.
  const auto agent_id = inner.text("agent.id", true).value_or("");
  const auto location = inner.text("location").value_or("");
  const auto sender_name = inner.text("predecoder.hostname");
  const auto sender_ip = canonical_observable(t::kIp, location);
  if (agent_id == "000" && (sender_name || sender_ip)) {
    a.host_name = sender_name.value_or("");
    if (sender_ip) a.host_ips.push_back(*sender_ip);
    inner.notes().push_back(fmt::format(
        "collected by the Wazuh manager ({}) from another device: the host is {}",
        inner.text("agent.name").value_or("agent 000"),
        sender_name ? "predecoder.hostname" : "the sender's address in location"));
  } else {
    a.host_name = inner.text("agent.name").value_or("");
    if (auto ip = inner.text("agent.ip")) a.host_ips.push_back(*ip);
  }
  a.user_name = inner.first_text({"data.dstuser", "data.srcuser"});

  for (auto path : {"data.srcip", "data.dstip", "data.src_ip", "data.dest_ip"})
    inner.observables_at(t::kIp, path);
  for (auto path : {"data.hostname_dst", "data.dns.rrname"}) inner.observables_at(t::kDomain, path);
  inner.observables_at(t::kUrl, "data.url");
  inner.observables_at(t::kFilePath, "syscheck.path");
  inner.observables_at(t::kMd5, "syscheck.md5_after");
  inner.observables_at(t::kSha1, "syscheck.sha1_after");
  inner.observables_at(t::kSha256, "syscheck.sha256_after");
  inner.observables_at(t::kFilePath, "data.audit.exe");
  if (auto pid = inner.text("data.audit.pid", true))
    inner.observable(t::kProcess, "data.audit.pid", *pid);
  for (auto path : {"data.srcuser", "data.dstuser"}) inner.observables_at(t::kUser, path);
  read_wazuh_sysmon(body, inner, a);
}

void read_generic(const json& doc, FieldReader& r, AlertRecord& a) {
  a.source_id = r.text("id", true).value_or("");
  a.rule_id = r.text("rule.id", true).value_or("");
  a.rule_name = r.first_text({"rule.name", "title"});
  if (const auto* sev = find_field(doc, "severity"); sev && !sev->is_null()) {
    if (sev->is_string()) {
      const auto s = ascii_lower(sev->get<std::string>());
      if (s == "low" || s == "medium" || s == "high" || s == "critical") {
        a.severity = s;
      } else if (s == "info" || s == "informational") {
        a.severity = "low";
      } else {
        r.fail("severity", "low, medium, high, critical or a 0-100 score", *sev);
      }
    } else if (sev->is_number()) {
      const double score = sev->get<double>();
      if (score < 0 || score > 100) {
        r.fail("severity", "a score between 0 and 100", *sev);
      } else {
        a.severity = severity_from_risk_score(score);
      }
    } else {
      r.fail("severity", "low, medium, high, critical or a 0-100 score", *sev);
    }
  }
  if (auto ts = r.timestamp("timestamp")) a.timestamp_ms = *ts;
  // host and user may be objects or plain names.
  if (const auto* host = find_field(doc, "host"); host && host->is_string()) {
    a.host_name = host->get<std::string>();
  } else {
    a.host_name = r.text("host.name").value_or("");
    a.host_ips = r.texts("host.ip");
  }
  if (const auto* user = find_field(doc, "user"); user && user->is_string()) {
    a.user_name = user->get<std::string>();
  } else {
    a.user_name = r.text("user.name").value_or("");
  }
  if (!a.user_name.empty()) r.observable(t::kUser, "user.name", a.user_name);
  if (const auto* list = find_field(doc, "observables"); list && !list->is_null()) {
    if (!list->is_array()) {
      r.fail("observables", "a list of {type, value} objects", *list);
      return;
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto& item = (*list)[i];
      const auto path = fmt::format("observables[{}]", i);
      if (!item.is_object() || !item.contains("type") || !item["type"].is_string() ||
          !item.contains("value") ||
          !(item["value"].is_string() || item["value"].is_number_integer())) {
        r.fail(path, "an object with string 'type' and 'value'", item);
        continue;
      }
      const auto type = item["type"].get<std::string>();
      static constexpr std::array kTypes = {t::kIp,       t::kDomain,  t::kUrl,
                                            t::kMd5,      t::kSha1,    t::kSha256,
                                            t::kFilePath, t::kProcess, t::kUser};
      if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) {
        r.fail(path + ".type",
               "one of ip, domain, url, md5, sha1, sha256, file_path, process, user", item["type"]);
        continue;
      }
      const auto value = item["value"].is_string()
                             ? item["value"].get<std::string>()
                             : std::to_string(item["value"].get<std::int64_t>());
      std::string start;
      if (item.contains("start") && item["start"].is_string())
        start = item["start"].get<std::string>();
      r.observable(type, path, value, start);
    }
  }
}

// Ids become URL path segments and case keys: a plain token is kept, anything else is hashed.
bool plain_token(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
  });
}

}  // namespace

Result<std::string_view> detect_alert_format(const json& outer) {
  if (!outer.is_object()) return Error{"an alert must be a JSON object"};
  // By the producer's markers, not the shipper's: Filebeat and the Wazuh indexer add
  // `@timestamp` and `_source` to Wazuh alerts, which are still Wazuh alerts.
  const json& doc = unwrap_source(outer);
  if (const auto* alert = find_field(doc, "parameters.alert"); alert && alert->is_object())
    return alert_format::kWazuh;
  if (looks_like_wazuh(doc)) return alert_format::kWazuh;
  if (has_key_with_prefix(doc, "kibana") || doc.contains("@timestamp") ||
      has_key_with_prefix(doc, "ecs") || find_field(doc, "event.kind") != nullptr) {
    return alert_format::kEcs;
  }
  if (find_field(doc, "rule.level") != nullptr ||
      (doc.contains("agent") && doc.contains("manager")) || doc.contains("decoder")) {
    return alert_format::kWazuh;
  }
  if (doc.contains("observables") || doc.contains("severity") || doc.contains("rule") ||
      doc.contains("title")) {
    return alert_format::kGeneric;
  }
  return Error{
      "cannot tell the alert format (not ECS, Wazuh or the generic shape); pass "
      "format=ecs|wazuh|generic"};
}

Result<AlertRecord> normalize_alert(const json& document, std::optional<std::string_view> format,
                                    std::int64_t received_ms) {
  if (!document.is_object()) {
    return Error{fmt::format("an alert must be a JSON object, got {}", document.type_name())};
  }
  std::string_view source;
  if (format) {
    if (*format != alert_format::kEcs && *format != alert_format::kWazuh &&
        *format != alert_format::kGeneric) {
      return Error{fmt::format("unknown format '{}': use ecs, wazuh or generic", *format)};
    }
    source = *format;
  } else {
    auto detected = detect_alert_format(document);
    if (!detected) return detected.error();
    source = *detected;
  }

  AlertRecord a;
  a.source = source;
  const json& unwrapped = unwrap_source(document);
  const json& body = source == alert_format::kWazuh ? unwrap_wazuh(unwrapped) : unwrapped;
  FieldReader reader(body);
  if (source == alert_format::kEcs) read_ecs(document, body, reader, a);
  if (source == alert_format::kWazuh) read_wazuh(body, reader, a);
  if (source == alert_format::kGeneric) read_generic(body, reader, a);
  // The producer's own id; a search hit's `_id` when the document carries none.
  if (a.source_id.empty()) {
    if (const auto it = document.find("_id"); it != document.end() && it->is_string())
      a.source_id = it->get<std::string>();
  }
  if (a.severity != "" && a.severity != "low" && a.severity != "medium" && a.severity != "high" &&
      a.severity != "critical") {
    reader.notes().push_back(
        fmt::format("severity '{}' is not low, medium, high or critical; taken as medium",
                    FieldReader::clip(a.severity)));
    a.severity.clear();
  }
  if (a.severity.empty()) a.severity = "medium";
  if (a.timestamp_ms == 0) a.timestamp_ms = received_ms;
  a.observables = std::move(reader.observables());
  a.notes = std::move(reader.notes());
  for (auto it = a.host_ips.begin(); it != a.host_ips.end();) {
    auto ip = canonical_observable(t::kIp, *it);
    if (ip) {
      *it++ = *ip;
    } else {
      a.notes.push_back(fmt::format("host ip \"{}\" is not an IP address; dropped", *it));
      it = a.host_ips.erase(it);
    }
  }
  std::string dropped;
  for (const auto& note : a.notes) dropped += (dropped.empty() ? "; dropped: " : "; ") + note;
  // A format forced on a document of another shape: say which shape it has.
  std::string looks_like;
  if (format) {
    if (const auto detected = detect_alert_format(document); detected && *detected != source)
      looks_like = fmt::format("; it looks like {}: submit it without a format or with format={}",
                               *detected, *detected);
  }
  if (a.rule_name.empty() && a.rule_id.empty() && a.host_name.empty() && a.host_ips.empty() &&
      a.observables.empty()) {
    return Error{
        fmt::format("no usable fields: read as {}, an alert needs at least a rule, a host or an "
                    "observable{}{}",
                    source, looks_like, dropped)};
  }
  // Forced on another shape, a format reads little more than a rule id (ECS and Wazuh both have
  // `rule.id`): an alert about no host and nothing would be stored and open a case no one can
  // act on. Refused, saying what is missing and what the document looks like.
  if (!looks_like.empty() && a.host_name.empty() && a.host_ips.empty() && a.observables.empty()) {
    return Error{fmt::format(
        "read as {} (format forced), this document names no host and no observable, so there "
        "is nothing to validate or act on{}{}",
        source, looks_like, dropped)};
  }
  a.raw = document.dump();
  a.id = plain_token(a.source_id)
             ? a.source_id
             : crypto::sha256_hex(a.source + "\n" + (a.source_id.empty() ? a.raw : a.source_id))
                   .substr(0, 32);
  a.received_at_ms = received_ms;
  a.updated_at_ms = received_ms;
  return a;
}

}  // namespace riposte::controller
