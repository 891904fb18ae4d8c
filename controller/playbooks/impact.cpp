#include "controller/playbooks/impact.h"

#include <algorithm>
#include <optional>
#include <string>

namespace riposte::controller {

using nlohmann::json;

namespace {
std::string text(const json& value) { return value.is_string() ? value.get<std::string>() : ""; }
// Host names, space separated.
void append_name(std::string& names, const json& host) {
  if (!names.empty()) names += ' ';
  names += text(host.value("hostname", json()));
}
}  // namespace

json playbook_impact(const Playbook& playbook, const AutonomyPolicy& policy,
                     const json& asset_view) {
  json rows = json::array();
  const auto entries = asset_view.value("entries", json::array());
  const auto hosts = asset_view.value("hosts", json::array());
  const auto uncovered = asset_view.value("agents_not_covered", json::array());
  for (const auto& step : playbook.steps) {
    if (step.kind != StepKind::action) continue;
    const auto row = [&](const std::string& asset, const std::optional<AssetClass>& cls,
                         const json& people, const std::string& names) {
      const auto effective = effective_mode(step.mode, policy, cls);
      rows.push_back(json{{"step", step.id},
                          {"action", step.action},
                          {"declared_mode", autonomy_mode_name(step.mode)},
                          {"asset", asset},
                          {"hosts", names},
                          {"environment", cls ? json(cls->environment) : json(nullptr)},
                          {"criticality", cls ? json(cls->criticality) : json(nullptr)},
                          {"stakeholders", people},
                          {"effective_mode", autonomy_mode_name(effective.mode)},
                          {"why", effective.why}});
    };
    for (const auto& entry : entries) {
      json people = json::array();
      if (!text(entry.value("owner", json())).empty()) people.push_back(entry["owner"]);
      for (const auto& person : entry.value("stakeholders", json::array())) people.push_back(person);
      std::string names;
      for (const auto& host : hosts) {
        const auto assets = host.value("assets", json::array());
        if (std::find(assets.begin(), assets.end(), entry.value("name", json())) == assets.end())
          continue;
        append_name(names, host);
      }
      row(text(entry.value("name", json())),
          AssetClass{text(entry.value("environment", json())),
                     text(entry.value("criticality", json()))},
          people, names);
    }
    if (!uncovered.empty()) {
      std::string names;
      for (const auto& host : uncovered) append_name(names, host);
      row("(no asset entry)", std::nullopt, json::array(), names);
    }
  }
  return rows;
}

}  // namespace riposte::controller
