#include "controller/api/alert_routes.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/utc_time.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

ApiResponse reply(int status, const json& body) { return json_response(status, body); }
ApiResponse error(int status, std::string_view message) { return error_response(status, message); }

json alert_summary(const AlertRecord& a) {
  auto confidence = json::parse(a.confidence.empty() ? "{}" : a.confidence, nullptr, false);
  return json{{"id", a.id},
              {"source", a.source},
              {"rule", {{"id", a.rule_id}, {"name", a.rule_name}}},
              {"severity", a.severity},
              {"timestamp", format_utc_ms(a.timestamp_ms)},
              {"host", {{"name", a.host_name}}},
              {"status", a.status},
              {"case_id", a.case_id},
              {"observables", a.observables.size()},
              {"confidence", confidence.is_object() ? confidence.value("score", 0.0) : 0.0},
              {"decision", confidence.is_object() ? confidence.value("decision", "") : ""},
              {"received_at", format_utc_ms(a.received_at_ms)}};
}

}  // namespace

ApiResponse AlertApi::submit(const ApiRequest& request, const ApiTokenRecord& caller) {
  std::optional<std::string> format;
  if (const auto f = query_param(request.target, "format"); !f.empty()) {
    if (f != "ecs" && f != "wazuh" && f != "generic")
      return error(400, fmt::format("unknown format '{}': use ecs, wazuh or generic", f));
    format = f;
  }
  auto report = deps_.intake.submit(request.body, format,
                                    AlertSubmitter{caller.name, caller.role, caller.max_mode});
  if (report.error_status != 0) {
    spdlog::info("api: alerts from {} refused: {}", request.remote_address, report.error);
    return error(report.error_status, report.error);
  }
  json alerts = json::array();
  json ids = json::array();
  std::size_t duplicates = 0;
  for (const auto& a : report.alerts) {
    alerts.push_back({{"id", a.id}, {"case_id", a.case_id}, {"duplicate", a.duplicate}});
    ids.push_back(a.id);
    if (a.duplicate) ++duplicates;
  }
  return reply(201, json{{"ids", ids},
                         {"stored", report.alerts.size() - duplicates},
                         {"duplicates", duplicates},
                         {"alerts", alerts}});
}

ApiResponse AlertApi::list(const ApiRequest& request) {
  const auto status = query_param(request.target, "status");
  static const std::set<std::string> kStatuses = {
      "", "new", "validating", "qualified", "not_relevant", "undetermined", "unvalidated"};
  if (!kStatuses.contains(status)) {
    return error(400,
                 "status must be new, validating, qualified, not_relevant, undetermined or "
                 "unvalidated");
  }
  auto page = page_param(request, 100, 10'000);
  if (!page) return error(400, page.error().message);
  auto alerts = deps_.store.list_alerts(status, Page{page->fetch_limit(), page->offset});
  if (!alerts) return error(500, alerts.error().message);
  json body;
  page->finish(*alerts, body);
  json list = json::array();
  for (const auto& a : *alerts) list.push_back(alert_summary(a));
  body["alerts"] = std::move(list);
  return reply(200, body);
}

ApiResponse AlertApi::show(const std::string& id) {
  auto alert = deps_.store.find_alert(id);
  if (!alert) return error(500, alert.error().message);
  if (!*alert) return error(404, fmt::format("no alert with id {}", id));
  return reply(200, alert_json(**alert));
}

ApiResponse AlertApi::lookup(const ApiRequest& request) {
  const auto value = query_param(request.target, "value");
  if (value.empty()) return error(400, "give the indicator as ?value=");
  auto result = deps_.intel.lookup(value, deps_.thresholds);
  if (!result) return error(400, result.error().message);
  return reply(200, *result);
}

ApiResponse AlertApi::feeds() {
  json list = json::array();
  for (const auto& f : deps_.intel.feeds()) {
    list.push_back({{"name", f.config.name},
                    {"format", f.config.format},
                    {"path", f.config.path.string()},
                    {"weight", f.config.weight},
                    {"indicators", f.indicators},
                    {"networks", f.networks},
                    {"timed", f.timed},
                    {"expired", f.expired},
                    {"revoked", f.revoked},
                    {"not_for_detection", f.not_for_detection},
                    {"skipped", f.skipped},
                    {"skip_reasons", f.skip_reasons},
                    {"read_as", f.detail},
                    {"loaded_at", f.loaded_at_ms ? json(format_utc_ms(f.loaded_at_ms)) : json()},
                    {"error", f.error.empty() ? json() : json(f.error)},
                    {"failed_at", f.failed_at_ms ? json(format_utc_ms(f.failed_at_ms)) : json()}});
  }
  return reply(
      200, json{{"feeds", list},
                {"thresholds",
                 {{"analyst", deps_.thresholds.analyst}, {"respond", deps_.thresholds.respond}}}});
}

ApiResponse AlertApi::reload(const std::string& actor) {
  if (!deps_.reload) return error(501, "reload is not available");
  if (auto s = deps_.reload(); !s) {
    spdlog::error("api: reload by {} failed: {}", actor, s.error().message);
    return error(422, fmt::format("reload failed, previous feeds and assets stay in use: {}",
                                  s.error().message));
  }
  spdlog::info("api: intel feeds and asset map reloaded by {}", actor);
  return feeds();
}

ApiResponse AlertApi::assets() {
  auto agents = deps_.store.list_agents();
  if (!agents) return error(500, agents.error().message);
  auto view = merged_asset_view(*deps_.assets.current(), *agents);
  view["file"] = deps_.assets.path().string();
  return reply(200, view);
}

}  // namespace riposte::controller
