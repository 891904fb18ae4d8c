#include "protocol/action_outcome.h"

#include <fmt/format.h>

#include <cstdlib>

#include "common/json_fields.h"
#include "common/utf8.h"
#include "protocol/action_catalog.h"

namespace riposte {

namespace {

using nlohmann::json;

std::string str(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) return "";
  const auto& v = object[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

// proto3 JSON writes 64-bit integers as strings.
std::uint64_t u64(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) return 0;
  const auto& v = object[key];
  if (v.is_number_unsigned() || v.is_number_integer()) return v.get<std::uint64_t>();
  if (v.is_string()) return std::strtoull(v.get<std::string>().c_str(), nullptr, 10);
  return 0;
}

// The array at `key`, or an empty one when absent or of another type (a result is agent data).
json list(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_array()) return json::array();
  return object[key];
}

std::size_t count(const json& object, const char* key) {
  return object.is_object() && object.contains(key) && object[key].is_array() ? object[key].size()
                                                                              : 0;
}

std::string short_hash(const std::string& sha) {
  // A hash from an agent is data: cut on a character boundary (found by fuzz_result).
  return sha.size() > 12 ? utf8_prefix(sha, 12) + "…" : sha;
}

std::string joined(const json& list, std::size_t at_most) {
  std::string out;
  std::size_t n = 0;
  for (const auto& v : list) {
    if (n == at_most) {
      out += fmt::format(", and {} more", list.size() - at_most);
      break;
    }
    out += (n++ ? ", " : "") + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

}  // namespace

std::string bytes_text(std::uint64_t n) {
  if (n >= (1ULL << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(n) / (1ULL << 30));
  if (n >= (1ULL << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(n) / (1ULL << 20));
  if (n >= (1ULL << 10)) return fmt::format("{:.1f} KiB", static_cast<double>(n) / (1ULL << 10));
  return fmt::format("{} bytes", n);
}

std::string action_outcome_text(const json& action) {
  const auto kind = str(action, "kind");
  const auto state = str(action, "state");
  if (state == "simulated") return "simulated: recorded as it would be sent, not sent";
  if (state == "queued" || state == "delivered" || state == "running")
    return fmt::format("not finished ({})", state);
  if (state != "succeeded") {
    const auto reason = str(action, "reason");
    return reason.empty() ? state : fmt::format("{}: {}", state, reason);
  }
  const json r = action.is_object() && action.contains("result") && action["result"].is_object()
                     ? action["result"]
                     : json::object();
  if (auto why = action_catalog::result_unreadable(r))
    return fmt::format("succeeded, but {}", *why);
  if (kind == "yara.scan") {
    std::string out;
    const auto matches = count(r, "matches");
    if (matches == 0) {
      out = fmt::format("no YARA match ({} scanned)", bytes_text(u64(r, "bytes_scanned")));
    } else {
      json names = json::array();
      for (const auto& m : r["matches"])
        names.push_back(str(m, "target").empty()
                            ? str(m, "rule")
                            : fmt::format("{} on {}", str(m, "rule"), str(m, "target")));
      out =
          fmt::format("{} YARA match{}: {}", matches, matches == 1 ? "" : "es", joined(names, 10));
    }
    if (json_fields::bool_or(r, "timed_out", false)) out += "; timed out before the end";
    if (const auto errors = count(r, "errors")) out += fmt::format("; {} errors", errors);
    return out;
  }
  if (kind == "process.kill") {
    json lines = json::array();
    for (const auto& p : list(r, "processes")) {
      auto line = fmt::format("pid {} ({}): {}", str(p, "pid"), str(p, "name"), str(p, "outcome"));
      if (!str(p, "detail").empty()) line += " — " + str(p, "detail");
      lines.push_back(line);
    }
    return lines.empty() ? "no process" : joined(lines, 10);
  }
  if (kind == "process.suspend") return "suspended";
  if (kind == "process.resume") return "resumed";
  if (kind == "memory.capture") {
    auto out = fmt::format("captured {} of memory ({} core, {} mappings, {} threads, sha256 {})",
                           bytes_text(u64(r, "memory_bytes")), bytes_text(u64(r, "bytes")),
                           str(r, "mappings"), str(r, "threads"), short_hash(str(r, "sha256")));
    if (const auto skipped = count(r, "skipped"))
      out += fmt::format("; {} ranges skipped", skipped);
    return out;
  }
  if (kind == "file.collect")
    return fmt::format("collected {} ({}, sha256 {})", str(r, "path"), bytes_text(u64(r, "size")),
                       short_hash(str(r, "sha256")));
  if (kind == "file.hash")
    return fmt::format("{}: sha256 {} ({})", str(r, "path"), str(r, "sha256"),
                       bytes_text(u64(r, "size")));
  if (kind == "file.quarantine")
    return fmt::format("moved {} into the vault ({})", str(r, "path"), str(r, "vault_id"));
  if (kind == "file.restore") return fmt::format("restored {}", str(r, "path"));
  if (kind == "network.quarantine")
    return fmt::format("quarantined; enforced: {}", joined(list(r, "enforced_hooks"), 5));
  if (kind == "network.release") return "released from quarantine";
  if (kind == "network.status")
    return json_fields::bool_or(r, "quarantined", false)
               ? fmt::format("quarantined ({})", joined(list(r, "enforced_hooks"), 5))
               : "not quarantined";
  if (kind == "network.connections")
    return fmt::format("{} current connections, {} earlier contacts", count(r, "current"),
                       count(r, "history"));
  if (kind == "process.list" || kind == "process.tree")
    return fmt::format("{} processes", count(r, "processes"));
  if (kind == "host.logins")
    return fmt::format("{} logged in, {} recent logins", count(r, "current"), count(r, "recent"));
  if (kind == "host.facts")
    return fmt::format("{}: {}, kernel {}", str(r, "hostname"), str(r, "os_name"),
                       str(r, "kernel"));
  return "succeeded";
}

}  // namespace riposte
