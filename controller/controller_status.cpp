#include "controller/controller_status.h"

#include <fmt/format.h>

#include <memory>

#include "common/address.h"
#include "common/clock.h"
#include "common/secure_file.h"
#include "common/service_status.h"
#include "controller/controller_service.h"
#include "controller/gateway/pki.h"
#include "controller/store/open_store.h"
#include "protocol/crypto.h"
#include "protocol/https_client.h"
#include "protocol/tls.h"

namespace riposte::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Agent counts straight from the store, read-only: the status command must not migrate, lock or
// otherwise write the live controller's store. SQLite is opened read-only; on PostgreSQL only
// SELECTs are sent. With PostgreSQL, also the controllers sharing it and the agents each holds.
json store_summary(const StoreLocation& location, std::int64_t now_ms) {
  if (location.kind == StoreKind::sqlite && !fs::exists(location.target))
    return json(nullptr);  // not initialized yet
  auto opened = open_database_for_reading(location);
  if (!opened) return json{{"error", opened.error().message}};
  auto& db = *opened;
  try {
    sql::Query count(*db,
                     "SELECT COUNT(*), COALESCE(SUM(CASE WHEN connected = 1 AND revoked_at_ms IS "
                     "NULL THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN revoked_at_ms IS NOT "
                     "NULL THEN 1 ELSE 0 END), 0) FROM agents");
    if (count.step() != sql::kRow) return json{{"error", db->error("count agents").message}};
    json out{{"enrolled", count.integer(0)},
             {"connected", count.integer(1)},
             {"revoked", count.integer(2)}};
    if (location.kind == StoreKind::postgresql) {
      sql::Query held(*db,
                      "SELECT c.id, c.agent_gateway, c.last_seen_ms, (SELECT COUNT(*) FROM agents "
                      "a WHERE a.controller_id = c.id AND a.connected = 1 AND a.revoked_at_ms IS "
                      "NULL) FROM controllers c ORDER BY c.id");
      auto controllers = sql::collect_rows(
          *db, held,
          [&](const sql::Query& row) {
            return json{{"id", row.text(0)},
                        {"agent_gateway", row.text(1)},
                        {"seen_s_ago", (now_ms - row.integer(2)) / 1000},
                        {"agents_connected", row.integer(3)}};
          },
          "list controllers");
      if (!controllers) return json{{"error", controllers.error().message}};
      out["controllers"] = std::move(*controllers);
    }
    return out;
  } catch (const std::exception& e) {  // a statement that does not prepare: not our schema
    return json{{"error", e.what()}};
  }
}

// "ok" when GET /healthz answers 200 over TLS 1.3 with a certificate from our own CA.
std::string probe_api(const std::string& api_url, const std::string& ca_pem) {
  constexpr std::string_view kScheme = "https://";
  if (api_url.rfind(kScheme, 0) != 0) return "unknown API address " + api_url;
  auto address = parse_host_port(api_url.substr(kScheme.size()));
  if (!address) return address.error().message;
  auto tls = tls::make_tls13_context();
  if (auto s = tls::trust_only(tls, ca_pem); !s) return s.error().message;
  HttpsRequest request;
  request.host = address->host;
  request.port = address->port;
  request.target = "/healthz";
  request.timeout = std::chrono::seconds(5);
  auto response = https_request(request, tls);
  if (!response) return response.error().message;
  if (response->status != 200) return fmt::format("/healthz answered {}", response->status);
  return "ok";
}

}  // namespace

ControllerHealth controller_health(const ControllerConfig& config) {
  ControllerHealth health;
  json& r = health.report;
  const auto& dir = config.data_dir;
  r["data_dir"] = dir.string();
  r["initialized"] = fs::exists(dir / Pki::kCaCert) && fs::exists(dir / Pki::kCaKey) &&
                     fs::exists(dir / Pki::kActionKey);
  r["ca_fingerprint"] = nullptr;
  std::string ca_pem;
  if (auto text = read_file(dir / Pki::kCaCert)) {
    ca_pem = *text;
    if (auto cert = crypto::load_certificate_pem(ca_pem))
      r["ca_fingerprint"] = crypto::certificate_fingerprint(cert->get());
  }
  const auto status = read_service_status(dir / ServiceStatus::kFileName);
  add_run_fields(status, r);
  r["api"] = nullptr;
  r["agent_gateway"] = nullptr;
  r["api_health"] = nullptr;
  if (status.running) {
    auto runtime =
        json::parse(read_file(dir / ControllerService::kRuntimeFile).value_or(""), nullptr, false);
    if (runtime.is_object()) {
      r["api"] = runtime.value("api", json(nullptr));
      r["agent_gateway"] = runtime.value("agent_gateway", json(nullptr));
      if (r["api"].is_string() && !ca_pem.empty())
        r["api_health"] = probe_api(r["api"].get<std::string>(), ca_pem);
    }
  }
  if (auto location = parse_store_location(config.database, dir)) {
    r["database"] = location->kind == StoreKind::sqlite ? location->target
                                                        : redacted_database_url(location->target);
    r["agents"] = store_summary(*location, SystemClock().now_unix_ms());
  } else {
    r["database"] = nullptr;
    r["agents"] = json{{"error", location.error().message}};
  }
  r["admin_token_file"] =
      fs::exists(dir / kAdminTokenFile) ? json((dir / kAdminTokenFile).string()) : json(nullptr);
  health.healthy = r["initialized"].get<bool>() && status.running && r["api_health"] == "ok";
  return health;
}

std::string render_controller_health(const json& r) {
  const auto text = [&](const json& value) {
    return value.is_string() ? value.get<std::string>() : std::string();
  };
  std::string out;
  out += r.value("initialized", false)
             ? fmt::format("initialized  : yes, CA {}\n", text(r["ca_fingerprint"]))
             : fmt::format("initialized  : no (no CA in {}; `riposte-controller init`)\n",
                           text(r["data_dir"]));
  if (r.value("running", false)) {
    out += fmt::format("running      : yes, pid {} since {}\n", r["pid"].dump(),
                       text(r["started_at"]));
    out += fmt::format(
        "API          : {} ({})\n", text(r["api"]),
        r["api_health"] == "ok" ? "answering" : "NOT answering: " + text(r["api_health"]));
    out += fmt::format("agent gateway: {}\n", text(r["agent_gateway"]));
  } else {
    out += text(r["stopped_at"]).empty()
               ? std::string("running      : no\n")
               : fmt::format("running      : no (stopped {})\n", text(r["stopped_at"]));
  }
  if (!text(r["database"]).empty()) out += fmt::format("database     : {}\n", text(r["database"]));
  const auto& agents = r["agents"];
  if (agents.is_object() && agents.contains("error")) {
    out += fmt::format("agents       : database unreadable: {}\n", text(agents["error"]));
  } else if (agents.is_object()) {
    out += fmt::format("agents       : {} enrolled, {} connected, {} revoked\n",
                       agents["enrolled"].dump(), agents["connected"].dump(),
                       agents["revoked"].dump());
    // Several controllers on one PostgreSQL database: which are alive and what each holds.
    for (const auto& c : agents.value("controllers", json::array())) {
      const auto ago = c.value("seen_s_ago", std::int64_t{0});
      out += fmt::format("controller   : {} at {}, {} agents, seen {}s ago{}\n", text(c["id"]),
                         text(c["agent_gateway"]), c["agents_connected"].dump(), ago,
                         ago > 30 ? " (silent: its agents are shown offline)" : "");
    }
  }
  if (!text(r["admin_token_file"]).empty()) {
    out += fmt::format("admin token  : in {} (copy it, then delete the file)\n",
                       text(r["admin_token_file"]));
  }
  out += text(r["last_error"]).empty()
             ? std::string("last error   : none\n")
             : fmt::format("last error   : {} ({})\n", text(r["last_error"]),
                           text(r["last_error_at"]));
  return out;
}

}  // namespace riposte::controller
