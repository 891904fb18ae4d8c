#include "agent/agent_status.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "agent/agent_state.h"
#include "agent/quarantine_keeper.h"
#include "common/service_status.h"
#include "common/utc_time.h"

namespace riposte::agent {

using nlohmann::json;

AgentHealth agent_health(const std::filesystem::path& state_dir, platform::Firewall* firewall) {
  AgentHealth health;
  json& r = health.report;
  r["state_dir"] = state_dir.string();
  r["enrolled"] = false;
  if (is_enrolled(state_dir)) {
    auto state = load_agent_state(state_dir);
    if (state) {
      r["enrolled"] = true;
      r["agent_id"] = state->agent_id;
      r["controller"] = state->controller_api;
      r["gateway"] = state->gateway.to_string();
      r["ca_fingerprint"] = state->ca_fingerprint;
    } else {
      r["state_error"] = state.error().message;
    }
  }
  const auto status = read_service_status(state_dir / ServiceStatus::kFileName);
  add_run_fields(status, r);
  // A dead agent's last word on the connection is stale: it is not connected now.
  r["connected"] = status.running && status.fields.value("connected", false);
  r["connected_since"] =
      r["connected"].get<bool>() ? status.fields.value("connected_since", json()) : json();
  r["connected_to"] =
      r["connected"].get<bool>() ? status.fields.value("connected_to", json()) : json();
  r["last_disconnect"] = status.fields.value("last_disconnect", json());
  const auto quarantine = read_quarantine_state(state_dir / kQuarantineFile);
  r["quarantine_intended"] = quarantine.has_value();
  r["quarantined"] = quarantine.has_value();
  r["quarantine_release_at"] = quarantine ? utc_or_null(quarantine->release_at_ms) : json(nullptr);
  r["last_quarantine_tamper"] = status.fields.value("last_quarantine_tamper", json());
  bool enforced_as_intended = true;
  if (firewall != nullptr) {
    if (auto kernel = firewall->enforced()) {
      r["quarantine_enforced_hooks"] = kernel->hooks;
      r["quarantined"] = kernel->complete();
      enforced_as_intended = r["quarantined"] == r["quarantine_intended"];
    } else {
      r["quarantine_kernel_error"] = kernel.error().message;
    }
  }
  health.healthy = r["enrolled"].get<bool>() && status.running && r["connected"].get<bool>() &&
                   enforced_as_intended;
  return health;
}

std::string render_agent_health(const json& r) {
  const auto text = [&](const char* key) {
    return r.contains(key) && r[key].is_string() ? r[key].get<std::string>() : std::string();
  };
  std::string out;
  if (r.value("enrolled", false)) {
    out += fmt::format("enrolled    : yes, agent {} (controller {}, gateway {})\n",
                       text("agent_id"), text("controller"), text("gateway"));
  } else if (r.contains("state_error")) {
    out += fmt::format("enrolled    : no — state unreadable: {}\n", text("state_error"));
  } else {
    out += fmt::format("enrolled    : no (nothing in {}; run `riposte-agent enroll`)\n",
                       text("state_dir"));
  }
  if (r.value("running", false)) {
    out += fmt::format("running     : yes, pid {} since {}\n", r["pid"].dump(), text("started_at"));
  } else if (!text("stopped_at").empty()) {
    out += fmt::format("running     : no (stopped {})\n", text("stopped_at"));
  } else {
    out += "running     : no\n";
  }
  if (r.value("connected", false)) {
    // An agent written before connected_to existed is taken to be on its enrolled gateway.
    out += fmt::format("connected   : yes, to {} since {}\n",
                       text("connected_to").empty() ? text("gateway") : text("connected_to"),
                       text("connected_since"));
  } else {
    out += fmt::format("connected   : no{}\n", text("last_disconnect").empty()
                                                   ? std::string()
                                                   : " (" + text("last_disconnect") + ")");
  }
  const bool intended = r.value("quarantine_intended", false);
  const bool quarantined = r.value("quarantined", false);
  const std::string until = text("quarantine_release_at").empty()
                                ? std::string("until released")
                                : "until " + text("quarantine_release_at");
  const std::string hooks =
      r.contains("quarantine_enforced_hooks")
          ? fmt::format(
                " (kernel drops {})",
                fmt::join(r["quarantine_enforced_hooks"].get<std::vector<std::string>>(), ", "))
          : std::string(" (kernel not read: ") +
                (text("quarantine_kernel_error").empty() ? "state files only"
                                                         : text("quarantine_kernel_error")) +
                ")";
  if (intended && quarantined) {
    out += fmt::format("quarantined : YES, {}{}\n", until, hooks);
  } else if (intended) {
    out += fmt::format(
        "quarantined : NOT ENFORCED — asked for ({}), but the kernel holds no complete quarantine "
        "table{}; a running agent puts it back within seconds\n",
        until, hooks);
  } else if (quarantined) {
    out += fmt::format("quarantined : YES by the kernel, but no quarantine is intended{}\n", hooks);
  } else {
    out += "quarantined : no\n";
  }
  if (r.contains("last_quarantine_tamper") && r["last_quarantine_tamper"].is_object()) {
    const auto& t = r["last_quarantine_tamper"];
    out += fmt::format("tampering   : quarantine {} at {}: {}\n", t.value("what", "?"),
                       t.value("at", "?"), t.value("detail", ""));
  }
  out += text("last_error").empty()
             ? std::string("last error  : none\n")
             : fmt::format("last error  : {} ({})\n", text("last_error"), text("last_error_at"));
  return out;
}

}  // namespace riposte::agent
