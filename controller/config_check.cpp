#include "controller/config_check.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "controller/alerts/asset_map.h"
#include "controller/intel/threat_intel.h"
#include "controller/playbooks/playbook.h"

namespace riposte::controller {

using nlohmann::json;

json check_configuration(const ControllerConfig& config, std::int64_t now_ms) {
  json checks = json::array();
  bool ok = true;
  const auto add = [&](std::string what, bool passed, std::string detail, bool warning = false) {
    ok = ok && passed;
    json check = json::object();
    check["what"] = std::move(what);
    check["ok"] = passed;
    check["detail"] = std::move(detail);
    if (warning) check["warning"] = true;
    checks.push_back(std::move(check));
  };

  AssetCatalog assets;
  if (config.assets_file.empty()) {
    add("assets", true, "no asset map: every host is unmapped (autonomy.unmapped applies)");
  } else if (auto s = assets.load(config.assets_file); !s) {
    add("assets", false, s.error().message);
  } else {
    add("assets", true,
        fmt::format("{}: {} entries", config.assets_file.string(),
                    assets.current()->entries().size()));
  }

  if (config.playbooks_dirs.empty()) {
    add("playbooks", true, "no playbook directory: nothing runs on alerts");
  } else {
    const auto loaded = load_playbook_directories(config.playbooks_dirs);
    for (const auto& error : loaded.errors) add("playbooks", false, error);
    for (const auto& playbook : loaded.playbooks) {
      add("playbooks", true,
          fmt::format("{}: {} v{}, {} steps", playbook.file.string(), playbook.name,
                      playbook.version, playbook.steps.size()));
      // A notify step naming a webhook that is not configured is recorded "not sent" at run time
      // and the run goes on (the shipped playbooks name `soc`): said here, not an error.
      for (const auto& step : playbook.steps) {
        if (step.kind != StepKind::notify || !step.url.starts_with("webhook:")) continue;
        const auto name = step.url.substr(8);
        if (!config.webhooks.contains(name))
          add("playbooks", true,
              fmt::format("{}:{}: step '{}': webhook '{}' is not defined in playbooks.webhooks{}: "
                          "its notifications will be recorded as not sent",
                          playbook.file.string(), step.line, step.id, name,
                          config.webhooks.empty() ? " (none is)" : ""),
              /*warning=*/true);
      }
    }
  }

  ThreatIntel intel;
  if (auto s = intel.load(config.intel_feeds, now_ms); !s) {
    add("intel", false, s.error().message);
  } else {
    for (const auto& feed : intel.feeds()) {
      if (!feed.error.empty()) {
        add("intel", false, feed.error);
        continue;
      }
      add("intel", true,
          fmt::format("feed '{}': {} indicators, {} ranges, {} timed, {} expired, {} revoked, {} "
                      "not for detection, {} skipped{}",
                      feed.config.name, feed.indicators, feed.networks, feed.timed, feed.expired,
                      feed.revoked, feed.not_for_detection, feed.skipped,
                      feed.skip_reasons.empty()
                          ? ""
                          : fmt::format(" (first: {})", feed.skip_reasons.front())));
    }
    if (config.intel_feeds.empty()) add("intel", true, "no feeds: every alert goes to an analyst");
  }
  return json{{"ok", ok}, {"checks", checks}};
}

}  // namespace riposte::controller
