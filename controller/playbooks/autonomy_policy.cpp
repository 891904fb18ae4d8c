#include "controller/playbooks/autonomy_policy.h"

#include <fmt/format.h>

#include "common/duration.h"
#include "controller/observables/asset_vocabulary.h"

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
  return {ceiling, fmt::format("lowered from {} to {}: {}", autonomy_mode_name(declared),
                               autonomy_mode_name(ceiling), source)};
}

EffectiveMode source_ceiling(const AutonomyPolicy& policy, const std::string& submitted_by,
                             const std::string& submitter_role, const std::string& max_mode) {
  if (submitter_role == "ingest") {
    const auto mode = parse_autonomy_mode(max_mode).value_or(AutonomyMode::simulate);
    return {mode, fmt::format("the alert came from integration {} (max mode {})", submitted_by,
                              autonomy_mode_name(mode))};
  }
  return {policy.operator_alerts,
          fmt::format("the alert was submitted by a person ({}; autonomy.sources.operators: {})",
                      submitted_by.empty() ? "not recorded" : submitted_by,
                      autonomy_mode_name(policy.operator_alerts))};
}

EffectiveMode lower_to(const EffectiveMode& mode, const EffectiveMode& ceiling) {
  if (mode.mode <= ceiling.mode) return mode;
  return {ceiling.mode, fmt::format("lowered from {} to {}: {}", autonomy_mode_name(mode.mode),
                                    autonomy_mode_name(ceiling.mode), ceiling.why)};
}

namespace {

json rate_limit_json(const RateLimit& limit, const char* unit) {
  return json{{unit, limit.count}, {"window", format_seconds(limit.window_ms / 1000.0)},
              {"window_ms", limit.window_ms}};
}

Result<RateLimit> rate_limit_from_json(const json& j, const std::string& where, const char* unit,
                                       RateLimit limit) {
  if (!j.is_object()) return Error{where + " must be a mapping like {" + unit + ": 5, window: 10m}"};
  for (const auto& [key, value] : j.items()) {
    if (key != unit && key != "window" && key != "window_ms")
      return Error{fmt::format("{}: unknown key '{}'", where, key)};
  }
  if (j.contains(unit)) {
    const auto& v = j[unit];
    std::int64_t n = -1;
    if (v.is_number_integer()) n = v.get<std::int64_t>();
    if (v.is_string() && !v.get<std::string>().empty() &&
        v.get<std::string>().find_first_not_of("0123456789") == std::string::npos &&
        v.get<std::string>().size() < 7)
      n = std::stoll(v.get<std::string>());
    if (n < 0 || n > 1'000'000)
      return Error{fmt::format("{}.{} must be a whole number from 0 to 1000000", where, unit)};
    limit.count = static_cast<int>(n);
  }
  if (j.contains("window_ms") && j["window_ms"].is_number_integer()) {
    limit.window_ms = j["window_ms"].get<std::int64_t>();
  } else if (j.contains("window")) {
    if (!j["window"].is_string()) return Error{where + ".window must be a duration like 10m"};
    auto ms = parse_duration_ms(j["window"].get<std::string>());
    if (!ms) return Error{fmt::format("{}.window: {}", where, ms.error().message)};
    limit.window_ms = *ms;
  }
  if (limit.window_ms <= 0) return Error{where + ".window must be positive"};
  return limit;
}

}  // namespace

json autonomy_policy_json(const AutonomyPolicy& policy) {
  json ceilings = json::array();
  for (const auto& rule : policy.ceilings) {
    json r{{"max", autonomy_mode_name(rule.max)}};
    if (!rule.environment.empty()) r["environment"] = rule.environment;
    if (!rule.criticality.empty()) r["criticality"] = rule.criticality;
    ceilings.push_back(std::move(r));
  }
  const auto& limits = policy.rate_limits;
  return json{{"default", autonomy_mode_name(policy.default_ceiling)},
              {"unmapped", autonomy_mode_name(policy.unmapped)},
              {"ceilings", std::move(ceilings)},
              {"sources", {{"operators", autonomy_mode_name(policy.operator_alerts)}}},
              {"rate_limits",
               {{"per_host", rate_limit_json(limits.per_host, "actions")},
                {"per_playbook", rate_limit_json(limits.per_playbook, "actions")},
                {"global", rate_limit_json(limits.global, "actions")},
                {"webhook", rate_limit_json(limits.webhook, "posts")}}}};
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
  for (const auto& [key, value] : j.items()) {
    if (key != "default" && key != "unmapped" && key != "ceilings" && key != "sources" &&
        key != "rate_limits")
      return Error{fmt::format(
          "autonomy: unknown key '{}' (known: default, unmapped, ceilings, sources, rate_limits)",
          key)};
  }
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
          return Error{fmt::format("{}: unknown key '{}' (known: environment, criticality, max)",
                                   where, key)};
        if (key != "max" && !value.is_string())
          return Error{fmt::format("{}.{} must be a string", where, key)};
      }
      // A value no asset can have never matches: production hosts would quietly fall back to
      // the default ceiling.
      if (r.contains("environment") &&
          !is_one_of(kAssetEnvironments, r["environment"].get<std::string>()))
        return Error{fmt::format("{}.environment '{}' is not one of {} (the asset map's values)",
                                 where, r["environment"].get<std::string>(),
                                 one_of_text(kAssetEnvironments))};
      if (r.contains("criticality") &&
          !is_one_of(kAssetCriticalities, r["criticality"].get<std::string>()))
        return Error{fmt::format("{}.criticality '{}' is not one of {} (the asset map's values)",
                                 where, r["criticality"].get<std::string>(),
                                 one_of_text(kAssetCriticalities))};
      if (!r.contains("max")) return Error{where + " needs 'max'"};
      auto max = mode(r["max"], where + ".max");
      if (!max) return max.error();
      policy.ceilings.push_back({r.value("environment", ""), r.value("criticality", ""), *max});
    }
  }
  if (j.contains("sources")) {
    const auto& sources = j["sources"];
    if (!sources.is_object()) return Error{"autonomy.sources must be a mapping"};
    for (const auto& [key, value] : sources.items()) {
      if (key != "operators")
        return Error{fmt::format(
            "autonomy.sources: unknown key '{}' (integrations carry their own max mode)", key)};
      auto parsed = mode(value, "autonomy.sources.operators");
      if (!parsed || *parsed == AutonomyMode::automatic)
        return Error{
            "autonomy.sources.operators must be approve or simulate: an alert a person submits "
            "never acts without a second person"};
      policy.operator_alerts = *parsed;
    }
  }
  if (j.contains("rate_limits")) {
    const auto& limits = j["rate_limits"];
    if (!limits.is_object()) return Error{"autonomy.rate_limits must be a mapping"};
    auto& out = policy.rate_limits;
    for (const auto& [key, value] : limits.items()) {
      RateLimit* target = key == "per_host"       ? &out.per_host
                          : key == "per_playbook" ? &out.per_playbook
                          : key == "global"       ? &out.global
                          : key == "webhook"      ? &out.webhook
                                                  : nullptr;
      if (target == nullptr)
        return Error{fmt::format(
            "autonomy.rate_limits: unknown key '{}' (per_host, per_playbook, global, webhook)",
            key)};
      auto parsed = rate_limit_from_json(value, "autonomy.rate_limits." + key,
                                         key == "webhook" ? "posts" : "actions", *target);
      if (!parsed) return parsed.error();
      if (key == "webhook" && parsed->count < 1)
        return Error{"autonomy.rate_limits.webhook.posts must be at least 1 (held notifications "
                     "go out as a digest when the window has room)"};
      *target = *parsed;
    }
  }
  return policy;
}

}  // namespace riposte::controller
