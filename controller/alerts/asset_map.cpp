#include "controller/alerts/asset_map.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "common/yaml_config.h"
#include "controller/observables/asset_vocabulary.h"
#include "controller/observables/observable.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

std::vector<std::string> string_list(const YAML::Node& node) {
  if (node.IsScalar()) return {node.as<std::string>()};
  return node.as<std::vector<std::string>>();
}

Result<AssetEntry> parse_entry(const YAML::Node& node, const std::string& where) {
  static const std::set<std::string> kKnown = {
      "name", "hostname", "hostnames",   "agent_id",    "agent_ids",   "ip",    "ips",
      "cidr", "cidrs",    "application", "environment", "criticality", "owner", "stakeholders"};
  if (!node.IsMap()) return Error{fmt::format("{}: an asset must be a mapping", where)};
  AssetEntry e;
  e.line = node.Mark().line + 1;
  for (const auto& item : node) {
    const auto key = item.first.as<std::string>();
    if (!kKnown.contains(key)) {
      return Error{
          fmt::format("{}: unknown key '{}' (known: name, hostnames, agent_ids, ips, "
                      "cidrs, application, environment, criticality, owner, stakeholders)",
                      where, key)};
    }
  }
  auto list = [&](const char* one, const char* many) {
    std::vector<std::string> out;
    if (node[one]) out = string_list(node[one]);
    if (node[many]) {
      auto more = string_list(node[many]);
      out.insert(out.end(), more.begin(), more.end());
    }
    return out;
  };
  e.name = node["name"] ? node["name"].as<std::string>() : "";
  if (e.name.empty()) return Error{fmt::format("{}: every asset needs a name", where)};
  e.hostnames = list("hostname", "hostnames");
  for (auto& h : e.hostnames) h = ascii_lower(h);
  e.agent_ids = list("agent_id", "agent_ids");
  for (const auto& ip : list("ip", "ips")) {
    auto canonical = canonical_observable(observable_type::kIp, ip);
    if (!canonical) return Error{fmt::format("{}: '{}' is not an IP address", where, ip)};
    e.ips.push_back(*canonical);
  }
  for (const auto& text : list("cidr", "cidrs")) {
    auto network = IpNetwork::parse(text);
    if (!network) return Error{fmt::format("{}: '{}' is not a CIDR range", where, text)};
    e.cidrs.push_back(*network);
  }
  if (e.hostnames.empty() && e.agent_ids.empty() && e.ips.empty() && e.cidrs.empty()) {
    return Error{fmt::format(
        "{}: asset '{}' matches nothing: give hostnames, agent_ids, ips or cidrs", where, e.name)};
  }
  e.application = node["application"] ? node["application"].as<std::string>() : "";
  e.environment = node["environment"] ? node["environment"].as<std::string>() : "";
  e.criticality = node["criticality"] ? node["criticality"].as<std::string>() : "";
  e.owner = node["owner"] ? node["owner"].as<std::string>() : "";
  if (node["stakeholders"]) e.stakeholders = string_list(node["stakeholders"]);
  if (!e.environment.empty() && !is_one_of(kAssetEnvironments, e.environment)) {
    return Error{fmt::format("{}: environment '{}' is not one of {}", where, e.environment,
                             one_of_text(kAssetEnvironments))};
  }
  if (!e.criticality.empty() && !is_one_of(kAssetCriticalities, e.criticality)) {
    return Error{fmt::format("{}: criticality '{}' is not one of {}", where, e.criticality,
                             one_of_text(kAssetCriticalities))};
  }
  return e;
}

}  // namespace

Result<AssetMap> AssetMap::load(const std::filesystem::path& path) {
  AssetMap map;
  try {
    const YAML::Node root = YAML::LoadFile(path.string());
    if (root.IsNull()) return map;
    if (auto s = refuse_duplicate_keys(root, path); !s) return s.error();
    if (!root.IsMap() || !root["assets"] || root.size() != 1) {
      return Error{
          fmt::format("{}: the top level must be a mapping with one key, 'assets'", path.string())};
    }
    const auto& assets = root["assets"];
    if (!assets.IsSequence())
      return Error{fmt::format("{}: 'assets' must be a list", path.string())};
    for (const auto& node : assets) {
      const auto where = fmt::format("{}:{}", path.string(), node.Mark().line + 1);
      auto entry = parse_entry(node, where);
      if (!entry) return entry.error();
      for (const auto& other : map.entries_) {
        if (other.name == entry->name) {
          return Error{fmt::format("{}: asset name '{}' is already used at line {}", where,
                                   entry->name, other.line)};
        }
      }
      map.entries_.push_back(std::move(*entry));
    }
  } catch (const YAML::Exception& e) {
    return Error{fmt::format("{}: {}", path.string(), e.what())};
  }
  return map;
}

std::vector<const AssetEntry*> AssetMap::match(std::string_view hostname, std::string_view agent_id,
                                               const std::vector<std::string>& ips) const {
  const auto host = ascii_lower(hostname);
  // "web-1.example.com" is also covered by an entry for "web-1".
  const auto short_host = host.substr(0, host.find('.'));
  std::vector<const AssetEntry*> out;
  for (const auto& e : entries_) {
    auto has = [](const std::vector<std::string>& list, std::string_view v) {
      return !v.empty() && std::find(list.begin(), list.end(), v) != list.end();
    };
    bool hit = has(e.hostnames, host) || has(e.hostnames, short_host) || has(e.agent_ids, agent_id);
    for (const auto& ip : ips) {
      if (hit) break;
      hit = has(e.ips, ip) || std::any_of(e.cidrs.begin(), e.cidrs.end(),
                                          [&](const IpNetwork& n) { return n.contains(ip); });
    }
    if (hit) out.push_back(&e);
  }
  return out;
}

Status AssetCatalog::load(const std::filesystem::path& path) {
  auto map = path.empty() ? Result<AssetMap>(AssetMap{}) : AssetMap::load(path);
  if (!map) return map.error();
  std::lock_guard lock(mutex_);
  map_ = std::make_shared<AssetMap>(std::move(*map));
  path_ = path;
  return ok_status();
}

std::shared_ptr<const AssetMap> AssetCatalog::current() const {
  std::lock_guard lock(mutex_);
  return map_;
}

json asset_json(const AssetEntry& e) {
  json cidrs = json::array();
  for (const auto& c : e.cidrs) cidrs.push_back(c.to_string());
  return json{{"name", e.name},
              {"application", e.application},
              {"environment", e.environment},
              {"criticality", e.criticality},
              {"owner", e.owner},
              {"stakeholders", e.stakeholders},
              {"hostnames", e.hostnames},
              {"agent_ids", e.agent_ids},
              {"ips", e.ips},
              {"cidrs", cidrs}};
}

json merged_asset_view(const AssetMap& assets, const std::vector<AgentRecord>& agents) {
  json hosts = json::array();
  json uncovered = json::array();
  std::set<std::string> used;
  for (const auto& agent : agents) {
    if (agent.revoked_at_ms) continue;
    const auto matches = assets.match(agent.facts.hostname, agent.id, agent.facts.ip_addresses);
    json names = json::array();
    json entry{{"agent_id", agent.id},
               {"hostname", agent.facts.hostname},
               {"ip_addresses", agent.facts.ip_addresses},
               {"status", agent.connected ? "online" : "offline"}};
    for (const auto* m : matches) {
      names.push_back(m->name);
      used.insert(m->name);
    }
    entry["assets"] = names;
    if (!matches.empty()) {
      entry["application"] = matches.front()->application;
      entry["environment"] = matches.front()->environment;
      entry["criticality"] = matches.front()->criticality;
      entry["owner"] = matches.front()->owner;
    }
    (matches.empty() ? uncovered : hosts).push_back(std::move(entry));
  }
  json entries = json::array();
  json without_agent = json::array();
  for (const auto& e : assets.entries()) {
    entries.push_back(asset_json(e));
    if (!used.contains(e.name)) without_agent.push_back(e.name);
  }
  return json{{"hosts", hosts},
              {"agents_not_covered", uncovered},
              {"entries_without_agent", without_agent},
              {"entries", entries}};
}

}  // namespace riposte::controller
