#include "controller/config.h"

#include <fmt/format.h>

#include <set>

#include "controller/duration.h"
#include "protocol/yaml_config.h"

namespace riposte::controller {

Result<ControllerConfig> load_controller_config(const std::filesystem::path& path,
                                                ControllerConfig config) {
  static const std::set<std::string> kKnown = {
      "data_dir",           "agent_listen",   "api_listen", "agent_gateway_host", "server_names",
      "heartbeat_interval", "max_frame_size", "log_level",  "log_format"};
  try {
    auto loaded = load_yaml_mapping(path, kKnown);
    if (!loaded) return loaded.error();
    const YAML::Node root = *loaded;
    if (root.IsNull()) return config;
    if (root["data_dir"]) config.data_dir = root["data_dir"].as<std::string>();
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
    if (root["log_level"]) config.log_level = root["log_level"].as<std::string>();
    if (root["log_format"]) config.log_format = root["log_format"].as<std::string>();
  } catch (const YAML::Exception& e) {
    return Error{fmt::format("{}: {}", path.string(), e.what())};
  }
  return config;
}

}  // namespace riposte::controller
