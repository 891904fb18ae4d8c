#include "agent/agent_config.h"

#include <fmt/format.h>

#include <charconv>
#include <set>

#include "protocol/yaml_config.h"

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

Result<AgentConfig> load_agent_config(const std::filesystem::path& path, AgentConfig config) {
  static const std::set<std::string> kKnown = {"state_dir",           "log_level",
                                               "log_format",          "reconnect_initial",
                                               "reconnect_max",       "connection_sample_interval",
                                               "connection_retention"};
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
                               {"connection_retention", &config.connection_retention}}) {
      if (!root[key]) continue;
      auto value = parse_interval(root[key].as<std::string>());
      if (!value)
        return Error{fmt::format("{}: {}: {}", path.string(), key, value.error().message)};
      *target = *value;
    }
  } catch (const YAML::Exception& e) {
    return Error{fmt::format("{}: {}", path.string(), e.what())};
  }
  return config;
}

}  // namespace riposte::agent
