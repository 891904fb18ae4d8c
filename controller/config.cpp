#include "controller/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "common/duration.h"
#include "common/yaml_config.h"
#include "controller/observables/asset_vocabulary.h"
#include "controller/playbooks/webhook.h"

namespace riposte::controller {

namespace {

// What spdlog::level::from_str takes (logging.cpp configure_logging).
constexpr std::array<std::string_view, 8> kLogLevels = {"trace",   "debug", "info",     "warn",
                                                        "warning", "error", "critical", "off"};
constexpr std::array<std::string_view, 2> kLogFormats = {"text", "json"};

// Nested sections refuse unknown keys too.
Status check_keys(const YAML::Node& node, std::initializer_list<const char*> known,
                  const std::filesystem::path& path, std::string_view where) {
  if (!node.IsMap()) return Error{fmt::format("{}: {} must be a mapping", path.string(), where)};
  for (const auto& entry : node) {
    const auto key = entry.first.as<std::string>();
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; })) {
      std::string names;
      for (const char* k : known) names += (names.empty() ? "" : ", ") + std::string(k);
      return Error{fmt::format("{}: {}: unknown key '{}' (line {}; known: {})", path.string(),
                               where, key, entry.first.Mark().line + 1, names)};
    }
  }
  return ok_status();
}

}  // namespace

Result<ControllerConfig> load_controller_config(const std::filesystem::path& path,
                                                ControllerConfig config) {
  static const std::set<std::string> kKnown = {"data_dir",
                                               "database",
                                               "database_connections",
                                               "agent_listen",
                                               "api_listen",
                                               "agent_gateway_host",
                                               "server_names",
                                               "heartbeat_interval",
                                               "max_frame_size",
                                               "log_level",
                                               "log_format",
                                               "assets",
                                               "intel",
                                               "alerts",
                                               "autonomy",
                                               "playbooks",
                                               "max_rule_set_bytes",
                                               "evidence",
                                               "connection_limits",
                                               "metrics",
                                               "console"};
  try {
    auto loaded = load_yaml_mapping(path, kKnown);
    if (!loaded) return loaded.error();
    const YAML::Node root = *loaded;
    if (root.IsNull()) return config;
    if (root["data_dir"]) config.data_dir = root["data_dir"].as<std::string>();
    if (root["database"]) config.database = root["database"].as<std::string>();
    if (root["database_connections"]) {
      const auto connections = root["database_connections"].as<std::int64_t>();
      if (connections < 1 || connections > static_cast<std::int64_t>(kMaxDatabaseConnections))
        return Error{fmt::format("{}: database_connections must be between 1 and {}",
                                 path.string(), kMaxDatabaseConnections)};
      config.database_connections = static_cast<std::size_t>(connections);
    }
    if (root["agent_listen"]) config.agent_listen = root["agent_listen"].as<std::string>();
    if (root["api_listen"]) config.api_listen = root["api_listen"].as<std::string>();
    if (root["agent_gateway_host"])
      config.agent_gateway_host = root["agent_gateway_host"].as<std::string>();
    if (root["server_names"])
      config.server_names = root["server_names"].as<std::vector<std::string>>();
    if (root["heartbeat_interval"]) {
      auto ms = parse_duration_ms(root["heartbeat_interval"].as<std::string>());
      if (!ms)
        return Error{fmt::format("{}: heartbeat_interval: {}", path.string(), ms.error().message)};
      if (*ms < 1000 || *ms > 3'600'000) {
        return Error{
            fmt::format("{}: heartbeat_interval must be between 1s and 1h", path.string())};
      }
      config.heartbeat_interval_seconds = static_cast<std::uint32_t>(*ms / 1000);
    }
    if (root["max_frame_size"]) {
      const auto size = root["max_frame_size"].as<std::uint64_t>();
      if (size < 1024 || size > 256u * 1024 * 1024) {
        return Error{
            fmt::format("{}: max_frame_size must be between 1 KiB and 256 MiB", path.string())};
      }
      config.max_frame_size = static_cast<std::uint32_t>(size);
    }
    if (root["max_rule_set_bytes"]) {
      const auto size = root["max_rule_set_bytes"].as<std::uint64_t>();
      if (size < 1024 || size > (1u << 30)) {
        return Error{
            fmt::format("{}: max_rule_set_bytes must be between 1 KiB and 1 GiB", path.string())};
      }
      config.max_rule_set_bytes = size;
    }
    if (const auto metrics = root["metrics"]) {
      if (auto s = check_keys(metrics, {"unauthenticated_from"}, path, "metrics"); !s)
        return s.error();
      const auto networks = metrics["unauthenticated_from"];
      for (const auto& text :
           networks ? networks.as<std::vector<std::string>>() : std::vector<std::string>{}) {
        auto network = IpNetwork::parse(text);
        if (!network) {
          return Error{
              fmt::format("{}: metrics.unauthenticated_from: '{}' is not an address or "
                          "network (\"10.0.0.0/8\")",
                          path.string(), text)};
        }
        config.metrics_unauthenticated_from.push_back(*network);
      }
    }
    if (const auto console = root["console"]) {
      if (auto s = check_keys(console, {"web_root", "session_lifetime", "public_url"}, path,
                              "console");
          !s)
        return s.error();
      if (console["web_root"]) {
        config.console_web_root = console["web_root"].as<std::string>();
        if (config.console_web_root.is_relative())
          config.console_web_root = path.parent_path() / config.console_web_root;
      }
      if (console["session_lifetime"]) {
        auto ms = parse_duration_ms(console["session_lifetime"].as<std::string>());
        if (!ms || *ms < 60'000 || *ms > 7LL * 86'400'000) {
          return Error{fmt::format("{}: console.session_lifetime must be between 1m and 7d",
                                   path.string())};
        }
        config.console_session_ms = *ms;
      }
      if (console["public_url"]) {
        config.console_public_url = console["public_url"].as<std::string>();
        while (config.console_public_url.ends_with('/')) config.console_public_url.pop_back();
        if (!config.console_public_url.starts_with("https://")) {
          return Error{fmt::format("{}: console.public_url must start with https://",
                                   path.string())};
        }
      }
    }
    if (const auto limits = root["connection_limits"]) {
      if (auto s = check_keys(limits, {"agent", "api"}, path, "connection_limits"); !s)
        return s.error();
      for (const auto& [key, target] : {std::pair{"agent", &config.agent_connection_limits},
                                        std::pair{"api", &config.api_connection_limits}}) {
        const auto node = limits[key];
        if (!node) continue;
        const auto where = fmt::format("connection_limits.{}", key);
        if (auto s = check_keys(node, {"concurrent", "per_second", "burst"}, path, where); !s)
          return s.error();
        if (node["concurrent"]) target->concurrent = node["concurrent"].as<std::uint32_t>();
        if (node["per_second"]) target->per_second = node["per_second"].as<double>();
        if (node["burst"]) target->burst = node["burst"].as<std::uint32_t>();
        if (!std::isfinite(target->per_second) || target->per_second < 0 ||
            (target->per_second > 0 && target->burst < 1)) {
          return Error{
              fmt::format("{}: {}: per_second must be >= 0 and burst >= 1", path.string(), where)};
        }
      }
    }
    if (const auto evidence = root["evidence"]) {
      if (auto s = check_keys(evidence, {"agent_quota_bytes", "dir"}, path, "evidence"); !s)
        return s.error();
      if (evidence["dir"]) {
        config.evidence_dir = evidence["dir"].as<std::string>();
        if (config.evidence_dir.is_relative())
          config.evidence_dir = path.parent_path() / config.evidence_dir;
      }
      if (evidence["agent_quota_bytes"]) {
        const auto quota = evidence["agent_quota_bytes"].as<std::uint64_t>();
        if (quota < (1u << 20)) {
          return Error{
              fmt::format("{}: evidence.agent_quota_bytes must be at least 1 MiB", path.string())};
        }
        config.evidence.agent_quota_bytes = quota;
      }
    }
    if (root["log_level"]) config.log_level = root["log_level"].as<std::string>();
    if (root["log_format"]) config.log_format = root["log_format"].as<std::string>();
    // Checked here, at start and by `check`, not first when logging is set up.
    if (!is_one_of(kLogLevels, config.log_level))
      return Error{fmt::format("{}: log_level '{}' is not one of {}", path.string(),
                               config.log_level, one_of_text(kLogLevels))};
    if (!is_one_of(kLogFormats, config.log_format))
      return Error{fmt::format("{}: log_format '{}' is not one of {}", path.string(),
                               config.log_format, one_of_text(kLogFormats))};
    const auto base = path.parent_path();
    auto resolve = [&](const std::string& p) {
      const std::filesystem::path candidate(p);
      return candidate.is_absolute() ? candidate : base / candidate;
    };
    if (root["assets"]) config.assets_file = resolve(root["assets"].as<std::string>());
    if (const auto intel = root["intel"]) {
      if (auto s = check_keys(intel, {"feeds", "thresholds"}, path, "intel"); !s) return s.error();
      if (const auto feeds = intel["feeds"]) {
        if (!feeds.IsSequence())
          return Error{fmt::format("{}: intel.feeds must be a list", path.string())};
        for (const auto& f : feeds) {
          const auto where = fmt::format("intel feed at line {}", f.Mark().line + 1);
          if (auto s = check_keys(f, {"name", "path", "format", "weight", "column"}, path, where);
              !s)
            return s.error();
          FeedConfig feed;
          if (!f["name"] || !f["path"] || !f["format"]) {
            return Error{fmt::format("{}: {} needs name, path and format", path.string(), where)};
          }
          feed.name = f["name"].as<std::string>();
          feed.path = resolve(f["path"].as<std::string>());
          feed.format = f["format"].as<std::string>();
          if (f["weight"]) feed.weight = f["weight"].as<double>();
          if (f["column"]) {
            if (feed.format != "csv")
              return Error{fmt::format("{}: {}: 'column' is for csv feeds", path.string(), where)};
            feed.column = f["column"].as<std::string>();
          }
          config.intel_feeds.push_back(std::move(feed));
        }
      }
      if (const auto t = intel["thresholds"]) {
        if (auto s = check_keys(t, {"analyst", "respond"}, path, "intel.thresholds"); !s)
          return s.error();
        if (t["analyst"]) config.confidence_thresholds.analyst = t["analyst"].as<double>();
        if (t["respond"]) config.confidence_thresholds.respond = t["respond"].as<double>();
        const auto& c = config.confidence_thresholds;
        if (!(c.analyst >= 0 && c.analyst <= c.respond && c.respond <= 1)) {
          return Error{
              fmt::format("{}: intel.thresholds need 0 <= analyst <= respond <= 1", path.string())};
        }
      }
    }
    if (const auto autonomy = root["autonomy"]) {
      auto policy = autonomy_policy_from_json(yaml_to_json(autonomy));
      if (!policy) {
        return Error{fmt::format("{}: {} (line {})", path.string(), policy.error().message,
                                 autonomy.Mark().line + 1)};
      }
      config.autonomy = std::move(*policy);
    }
    if (const auto playbooks = root["playbooks"]) {
      if (auto s = check_keys(
              playbooks, {"dir", "auto_start", "responder_webhook", "webhooks", "webhook_ca_file"},
              path, "playbooks");
          !s)
        return s.error();
      if (const auto hooks = playbooks["webhooks"]) {
        if (!hooks.IsMap())
          return Error{
              fmt::format("{}: playbooks.webhooks must map names to https URLs", path.string())};
        for (const auto& hook : hooks) {
          const auto name = hook.first.as<std::string>();
          const auto url = hook.second.as<std::string>();
          // The message never repeats the URL: it may carry the webhook's secret.
          if (auto parsed = parse_webhook_url(url); !parsed)
            return Error{fmt::format("{}: playbooks.webhooks.{}: not an https:// URL (line {})",
                                     path.string(), name, hook.second.Mark().line + 1)};
          config.webhooks[name] = url;
        }
      }
      if (const auto dir = playbooks["dir"]) {
        // One directory, or a list: the shipped playbooks and a team's own beside them.
        if (dir.IsSequence()) {
          for (const auto& item : dir)
            config.playbooks_dirs.push_back(resolve(item.as<std::string>()));
        } else {
          config.playbooks_dirs.push_back(resolve(dir.as<std::string>()));
        }
      }
      if (playbooks["auto_start"]) config.playbooks_auto_start = playbooks["auto_start"].as<bool>();
      if (playbooks["responder_webhook"]) {
        config.responder_webhook = playbooks["responder_webhook"].as<std::string>();
        if (auto url = parse_webhook_url(config.responder_webhook); !url)
          return Error{fmt::format("{}: playbooks.responder_webhook: {}", path.string(),
                                   url.error().message)};
      }
      if (playbooks["webhook_ca_file"])
        config.webhook_ca_file = resolve(playbooks["webhook_ca_file"].as<std::string>());
    }
    if (const auto alerts = root["alerts"]) {
      if (auto s = check_keys(
              alerts,
              {"case_window", "max_body_bytes", "validation_lookback_days", "validation_timeout"},
              path, "alerts");
          !s)
        return s.error();
      for (auto [key, target] : {std::pair{"case_window", &config.case_window_ms},
                                 {"validation_timeout", &config.validation_timeout_ms}}) {
        if (!alerts[key]) continue;
        auto ms = parse_duration_ms(alerts[key].as<std::string>());
        if (!ms)
          return Error{fmt::format("{}: alerts.{}: {}", path.string(), key, ms.error().message)};
        *target = *ms;
      }
      if (alerts["max_body_bytes"]) {
        config.max_alert_body_bytes = alerts["max_body_bytes"].as<std::uint64_t>();
        if (config.max_alert_body_bytes < 1024 || config.max_alert_body_bytes > (1u << 30))
          return Error{fmt::format("{}: alerts.max_body_bytes must be between 1 KiB and 1 GiB",
                                   path.string())};
      }
      if (alerts["validation_lookback_days"]) {
        config.validation_lookback_days = alerts["validation_lookback_days"].as<std::uint32_t>();
        if (config.validation_lookback_days < 1 || config.validation_lookback_days > 365)
          return Error{
              fmt::format("{}: alerts.validation_lookback_days must be 1-365", path.string())};
      }
    }
  } catch (const YAML::Exception& e) {
    return Error{fmt::format("{}: {}", path.string(), e.what())};
  }
  return config;
}

}  // namespace riposte::controller
