#pragma once

// The agent's configuration file (YAML, every key optional); command-line flags override it.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace riposte::agent {

struct AgentConfig {
  std::filesystem::path state_dir = "/var/lib/riposte-agent";
  std::string log_level = "info";
  std::string log_format = "text";
  std::chrono::milliseconds reconnect_initial{1000};
  std::chrono::milliseconds reconnect_max{60'000};
  // Further gateways (HOST:PORT) of controllers sharing one store, tried in turn when the one in
  // use cannot be reached; the one stored at enrollment comes first.
  std::vector<std::string> fallback_gateways;
  // Connection history: how often the socket table is sampled, and how long contacts are kept.
  std::chrono::milliseconds connection_sample_interval{30'000};
  std::chrono::milliseconds connection_retention{30LL * 24 * 3600 * 1000};
  // Actions: how many run at once, how far the controller's clock may be off, which kinds this
  // host accepts at all (empty: all), and processes never to signal.
  int max_concurrent_actions = 4;
  std::chrono::milliseconds clock_skew{30'000};
  std::vector<std::string> allowed_actions;
  std::vector<std::string> protected_process_names;
  std::vector<std::string> protected_process_paths;
  // Evidence waiting for upload may use at most this much disk.
  std::uint64_t evidence_spool_limit = 8ULL << 30;
};

// Unknown keys are an error, so a typo is reported rather than ignored.
Result<AgentConfig> load_agent_config(const std::filesystem::path& path, AgentConfig defaults = {});

// "1048576", "512K", "256M", "8G" (powers of 1024).
Result<std::uint64_t> parse_size(const std::string& text);

// "500ms", "2s", "1m", "1h", "30d".
Result<std::chrono::milliseconds> parse_interval(const std::string& text);

}  // namespace riposte::agent
