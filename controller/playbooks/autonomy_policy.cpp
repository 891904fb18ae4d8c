#include "controller/playbooks/autonomy_policy.h"

#include <fmt/format.h>

namespace riposte::controller {

using nlohmann::json;

namespace {

std::string describe(const CeilingRule& rule) {
  std::string scope;
  if (!rule.environment.empty()) scope += "environment " + rule.environment;
  if (!rule.criticality.empty())
    scope += (scope.empty() ? "" : ", ") + std::string("criticality ") + rule.criticality;
  return scope.empty() ? std::string("every asset") : scope;
}

}  // namespace

EffectiveMode effective_mode(AutonomyMode declared, const AutonomyPolicy& policy,
                             const std::optional<AssetClass>& asset) {
  AutonomyMode ceiling = policy.unmapped;
  std::string source = "the host has no asset entry (autonomy.unmapped)";
  if (asset) {
    ceiling = policy.default_ceiling;
    source = "autonomy.default";
    for (const auto& rule : policy.ceilings) {
      const bool matches = (rule.environment.empty() || rule.environment == asset->environment) &&
                           (rule.criticality.empty() || rule.criticality == asset->criticality);
      if (matches && rule.max < ceiling) {
        ceiling = rule.max;
        source = "the ceiling for " + describe(rule);
      }
    }
  }
  if (declared <= ceiling) {
    return {declared,
            fmt::format("{} as the playbook declares (ceiling {}: {})",
                        autonomy_mode_name(declared), autonomy_mode_name(ceiling), source)};
  }
  return {ceiling, fmt::format("lowered from {} to {} by {}", autonomy_mode_name(declared),
                               autonomy_mode_name(ceiling), source)};
}

json autonomy_policy_json(const AutonomyPolicy& policy) {
  json ceilings = json::array();
  for (const auto& rule : policy.ceilings) {
    json r{{"max", autonomy_mode_name(rule.max)}};
    if (!rule.environment.empty()) r["environment"] = rule.environment;
    if (!rule.criticality.empty()) r["criticality"] = rule.criticality;
    ceilings.push_back(std::move(r));
  }
  return json{{"default", autonomy_mode_name(policy.default_ceiling)},
              {"unmapped", autonomy_mode_name(policy.unmapped)},
              {"ceilings", std::move(ceilings)}};
}

Result<AutonomyPolicy> autonomy_policy_from_json(const json& j) {
  if (!j.is_object()) return Error{"autonomy must be an object"};
  const auto mode = [](const json& value, const std::string& where) -> Result<AutonomyMode> {
    const auto parsed =
        value.is_string() ? parse_autonomy_mode(value.get<std::string>()) : std::nullopt;
    if (!parsed) return Error{fmt::format("{} must be simulate, approve or auto", where)};
    return *parsed;
  };
  AutonomyPolicy policy;
  for (auto [key, target] :
       {std::pair{"default", &policy.default_ceiling}, {"unmapped", &policy.unmapped}}) {
    if (!j.contains(key)) continue;
    auto parsed = mode(j[key], fmt::format("autonomy.{}", key));
    if (!parsed) return parsed.error();
    *target = *parsed;
  }
  if (j.contains("ceilings")) {
    if (!j["ceilings"].is_array()) return Error{"autonomy.ceilings must be a list"};
    policy.ceilings.clear();
    for (std::size_t i = 0; i < j["ceilings"].size(); ++i) {
      const auto& r = j["ceilings"][i];
      const auto where = fmt::format("autonomy.ceilings[{}]", i);
      if (!r.is_object()) return Error{where + " must be an object"};
      for (const auto& [key, value] : r.items()) {
        if (key != "environment" && key != "criticality" && key != "max")
          return Error{fmt::format("{}: unknown key '{}'", where, key)};
        if (key != "max" && !value.is_string())
          return Error{fmt::format("{}.{} must be a string", where, key)};
      }
      if (!r.contains("max")) return Error{where + " needs 'max'"};
      auto max = mode(r["max"], where + ".max");
      if (!max) return max.error();
      policy.ceilings.push_back({r.value("environment", ""), r.value("criticality", ""), *max});
    }
  }
  return policy;
}

}  // namespace riposte::controller
