#pragma once

// The part every Riposte YAML config file shares: load it, require a mapping, and refuse unknown
// keys so a typo is reported rather than silently ignored. Header-only: it needs yaml-cpp, which
// the daemons that read config files link and the protocol library does not.

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "common/result.h"

namespace riposte {

// yaml-cpp keeps both of two equal keys in a mapping, and readers disagree on which one counts
// (`node[key]` takes the first; a walk over the entries, the last): `max: approve` then
// `max: auto` would loosen a ceiling depending on who reads it. Refused, naming the key and line.
inline Status refuse_duplicate_keys(const YAML::Node& node, const std::filesystem::path& path) {
  if (node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& entry : node) {
      const auto key = entry.first.Scalar();
      if (!seen.insert(key).second)
        return Error{fmt::format("{}:{}: key '{}' is given twice in one mapping", path.string(),
                                 entry.first.Mark().line + 1, key)};
      if (auto s = refuse_duplicate_keys(entry.second, path); !s) return s;
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node)
      if (auto s = refuse_duplicate_keys(item, path); !s) return s;
  }
  return ok_status();
}

// The document's root (Null for an empty file). YAML::Exception propagates to the caller, which
// also catches it for value conversions.
inline Result<YAML::Node> load_yaml_mapping(const std::filesystem::path& path,
                                            const std::set<std::string>& known_keys) {
  YAML::Node root = YAML::LoadFile(path.string());
  if (root.IsNull()) return root;
  if (auto s = refuse_duplicate_keys(root, path); !s) return s.error();
  if (!root.IsMap()) return Error{fmt::format("{}: top level must be a mapping", path.string())};
  for (const auto& entry : root) {
    const auto key = entry.first.as<std::string>();
    if (!known_keys.contains(key)) {
      std::string names;
      for (const auto& k : known_keys) names += (names.empty() ? "" : ", ") + k;
      return Error{fmt::format("{}: unknown key '{}' (line {}; known: {})", path.string(), key,
                               entry.first.Mark().line + 1, names)};
    }
  }
  return root;
}

// A YAML section as JSON, scalars as strings (YAML does not say whether `5` is a number or a
// string; the JSON readers, e.g. autonomy_policy_from_json, accept both).
inline nlohmann::json yaml_to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& entry : node) out[entry.first.as<std::string>()] = yaml_to_json(entry.second);
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : node) out.push_back(yaml_to_json(item));
    return out;
  }
  return node.IsNull() ? nlohmann::json() : nlohmann::json(node.as<std::string>());
}

}  // namespace riposte
