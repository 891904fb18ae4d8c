#include "agent/agent_config.h"

#include <fmt/format.h>

#include <charconv>
#include <set>

#include "common/yaml_config.h"

namespace riposte::agent {

Result<std::chrono::milliseconds> parse_interval(const std::string& text) {
  const Error bad{fmt::format("'{}' is not an interval like 500ms, 2s, 1m, 1h or 30d", text)};
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9) return bad;
  long long count = 0;
  std::from_chars(text.data(), text.data() + digits, count);
  const std::string unit = text.substr(digits);
  long long factor = 0;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60'000;
  else if (unit == "h")
    factor = 3'600'000;
  else if (unit == "d")
    factor = 86'400'000;
  else
    return bad;
  if (count <= 0) return bad;
  return std::chrono::milliseconds(count * factor);
}

Result<std::uint64_t> parse_size(const std::string& text) {
  const Error bad{fmt::format("'{}' is not a size like 1048576, 512K, 256M or 8G", text)};
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) return bad;
  std::uint64_t count = 0;
  std::from_chars(text.data(), text.data() + digits, count);
  const std::string unit = text.substr(digits);
  int shift = 0;
  if (unit == "K")
    shift = 10;
  else if (unit == "M")
    shift = 20;
  else if (unit == "G")
    shift = 30;
  else if (!unit.empty())
    return bad;
  if (count == 0) return bad;
  return count << shift;
}

Result<AgentConfig> load_agent_config(const std::filesystem::path& path, AgentConfig config) {
  static const std::set<std::string> kKnown = {"state_dir",
                                               "log_level",
                                               "log_format",
                                               "reconnect_initial",
                                               "reconnect_max",
                                               "connection_sample_interval",
                                               "connection_retention",
                                               "max_concurrent_actions",
                                               "clock_skew",
                                               "allowed_actions",
                                               "protected_process_names",
                                               "protected_process_paths",
                                               "fallback_gateways",
                                               "evidence_spool_limit"};
  try {
    auto loaded = load_yaml_mapping(path, kKnown);
    if (!loaded) return loaded.error();
    const YAML::Node root = *loaded;
    if (root.IsNull()) return config;
    if (root["state_dir"]) config.state_dir = root["state_dir"].as<std::string>();
    if (root["log_level"]) config.log_level = root["log_level"].as<std::string>();
    if (root["log_format"]) config.log_format = root["log_format"].as<std::string>();
    for (auto [key, target] : {std::pair{"reconnect_initial", &config.reconnect_initial},
                               {"reconnect_max", &config.reconnect_max},
                               {"connection_sample_interval", &config.connection_sample_interval},
                               {"connection_retention", &config.connection_retention},
                               {"clock_skew", &config.clock_skew}}) {
      if (!root[key]) continue;
      auto value = parse_interval(root[key].as<std::string>());
      if (!value)
        return Error{fmt::format("{}: {}: {}", path.string(), key, value.error().message)};
      *target = *value;
    }
    for (auto [key, target] : {std::pair{"allowed_actions", &config.allowed_actions},
                               {"protected_process_names", &config.protected_process_names},
                               {"protected_process_paths", &config.protected_process_paths},
                               {"fallback_gateways", &config.fallback_gateways}}) {
      if (!root[key]) continue;
      if (!root[key].IsSequence())
        return Error{fmt::format("{}: {} must be a list", path.string(), key)};
      *target = root[key].as<std::vector<std::string>>();
    }
    if (root["max_concurrent_actions"]) {
      config.max_concurrent_actions = root["max_concurrent_actions"].as<int>();
      if (config.max_concurrent_actions < 1 || config.max_concurrent_actions > 64)
        return Error{
            fmt::format("{}: max_concurrent_actions must be between 1 and 64", path.string())};
    }
    if (root["evidence_spool_limit"]) {
      auto value = parse_size(root["evidence_spool_limit"].as<std::string>());
      if (!value)
        return Error{
            fmt::format("{}: evidence_spool_limit: {}", path.string(), value.error().message)};
      config.evidence_spool_limit = *value;
    }
  } catch (const YAML::Exception& e) {
    return Error{fmt::format("{}: {}", path.string(), e.what())};
  }
  return config;
}

}  // namespace riposte::agent
