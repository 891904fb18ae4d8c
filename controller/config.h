#pragma once

// The controller's configuration: a YAML file (every key optional), then command-line flags on top.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/dispatch/evidence_policy.h"
#include "controller/gateway/connection_limiter.h"
#include "controller/intel/feeds.h"
#include "controller/intel/threat_intel.h"
#include "controller/observables/ip_network.h"
#include "controller/playbooks/autonomy_policy.h"
#include "controller/store/open_store.h"

namespace riposte::controller {

struct ControllerConfig {
  std::filesystem::path data_dir = "/var/lib/riposte";
  // Where the store is (controller/store/open_store.h): "" for SQLite in data_dir, sqlite:PATH,
  // or a postgresql:// URI for controllers sharing one PostgreSQL database.
  std::string database;
  // Connections a PostgreSQL store may open (1-64; opened as concurrent calls need them). SQLite
  // always uses one.
  std::size_t database_connections = kDefaultDatabaseConnections;
  std::string agent_listen = "0.0.0.0:7443";
  std::string api_listen = "0.0.0.0:8443";
  // Host agents should use for the gateway; empty means the host they enrolled against.
  std::string agent_gateway_host;
  // Extra DNS names / IP addresses for the server certificate (used only when it is first created).
  std::vector<std::string> server_names;
  std::uint32_t heartbeat_interval_seconds = 30;
  std::uint32_t max_frame_size = 4u * 1024 * 1024;
  // The largest YARA rule set POST /api/v1/rule-sets accepts (docs/api.md "Rule sets").
  std::uint64_t max_rule_set_bytes = 64u * 1024 * 1024;
  // Per source address limits on the two listeners (connection_limits.agent / .api).
  ConnectionLimits agent_connection_limits = kAgentListenerLimits;
  ConnectionLimits api_connection_limits = kApiListenerLimits;
  // GET /metrics without a token from these networks (metrics.unauthenticated_from).
  std::vector<IpNetwork> metrics_unauthenticated_from;
  // The web console (console.*): where its built files are (empty: ../share/riposte/web next to
  // the binary, which is /usr/share/riposte/web once installed), how long a sign-in lasts, and
  // the https://host:port people open it at, for links in notifications (empty: the API's own
  // address).
  std::filesystem::path console_web_root;
  std::int64_t console_session_ms = 8LL * 3600 * 1000;
  std::string console_public_url;
  // Each agent's evidence quota (evidence.agent_quota_bytes, per 24 h).
  EvidenceLimits evidence;
  // Where evidence objects are kept (evidence.dir): DATA_DIR/evidence when empty. Controllers
  // sharing a database point it at one shared directory (a network filesystem).
  std::filesystem::path evidence_dir;
  std::string log_level = "info";
  std::string log_format = "text";

  // Alerts (README "Alerts"). Relative paths in the file are relative to the file's directory.
  std::filesystem::path assets_file;  // empty: no asset map
  std::vector<FeedConfig> intel_feeds;
  ConfidenceThresholds confidence_thresholds;
  std::int64_t case_window_ms = 24LL * 3600 * 1000;  // related alerts within this join one case
  std::uint64_t max_alert_body_bytes = 16u * 1024 * 1024;
  std::uint32_t validation_lookback_days = 30;  // "did any host talk to this IP in N days?"
  std::int64_t validation_timeout_ms = 60'000;  // how long agents have to answer

  // Ceilings on playbook autonomy per asset environment and criticality (autonomy_policy.h).
  AutonomyPolicy autonomy;

  // Playbooks (README "Playbooks"): the directories they are loaded from at start, in order
  // (`playbooks.dir`, one path or a list, then each `--playbooks`; empty: none, so nothing runs
  // until a team opts in), where run summaries go, and the CA that webhook servers' certificates
  // must chain to (empty: the system trust store).
  std::vector<std::filesystem::path> playbooks_dirs;
  bool playbooks_auto_start = true;  // false: runs start only when an operator starts them
  std::string responder_webhook;
  std::map<std::string, std::string> webhooks;  // NAME -> https URL, for `url: webhook:NAME`
  std::filesystem::path webhook_ca_file;
};

// Reads `path` over the defaults. Unknown keys are an error (a typo must not be silently ignored).
Result<ControllerConfig> load_controller_config(const std::filesystem::path& path,
                                                ControllerConfig defaults = {});

}  // namespace riposte::controller
