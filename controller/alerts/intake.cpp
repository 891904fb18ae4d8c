#include "controller/alerts/intake.h"

#include <fmt/format.h>

#include "common/utc_time.h"
#include "controller/alerts/normalizer.h"

namespace riposte::controller {

using nlohmann::json;

AlertIntake::AlertIntake(Store& store, const ThreatIntel& intel, const AssetCatalog& assets,
                         const Clock& clock, AlertIntakeOptions options)
    : store_(store), intel_(intel), assets_(assets), clock_(clock), options_(options) {}

IntakeReport AlertIntake::submit(std::string_view body, std::optional<std::string_view> format,
                                 const AlertSubmitter& submitter) {
  IntakeReport report;
  auto refuse = [&](int status, std::string message) {
    report.error_status = status;
    report.error = std::move(message);
    return report;
  };
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    // nlohmann's message carries the byte offset of the problem. Not only parse_error: a number
    // out of range (2E2222222222) is valid syntax the parser refuses with out_of_range.
    return refuse(400, fmt::format("request body is not valid JSON: {}", e.what()));
  }
  std::vector<const json*> documents;
  if (parsed.is_array()) {
    if (parsed.empty()) return refuse(422, "the list of alerts is empty");
    if (parsed.size() > options_.max_batch) {
      return refuse(413, fmt::format("{} alerts in one request; at most {}", parsed.size(),
                                     options_.max_batch));
    }
    for (const auto& d : parsed) documents.push_back(&d);
  } else if (parsed.is_object()) {
    documents.push_back(&parsed);
  } else {
    return refuse(
        422, fmt::format("expected an alert object or a list of them, got {}", parsed.type_name()));
  }

  const auto now = clock_.now_unix_ms();
  const auto assets = assets_.current();
  std::vector<AlertRecord> alerts;
  alerts.reserve(documents.size());
  for (std::size_t i = 0; i < documents.size(); ++i) {
    auto alert = normalize_alert(*documents[i], format, now);
    if (!alert) {
      return refuse(422, documents.size() == 1 ? alert.error().message
                                               : fmt::format("alert {} (counting from 0): {}", i,
                                                             alert.error().message));
    }
    json linked = json::array();
    for (const auto* entry : assets->match(alert->host_name, "", alert->host_ips))
      linked.push_back(asset_json(*entry));
    alert->assets = linked.dump();
    alert->confidence = intel_.assess(alert->observables, options_.thresholds).dump();
    alert->submitted_by = submitter.name;
    alert->submitter_role = submitter.role;
    alert->source_max_mode = submitter.max_mode;
    alerts.push_back(std::move(*alert));
  }

  json ids = json::array();
  for (const auto& a : alerts) ids.push_back(a.id);
  const AuditEvent audit{submitter.name, "alerts.received", alerts.front().id,
                         json{{"count", alerts.size()}, {"ids", ids}}.dump()};
  auto stored = store_.insert_alerts(alerts, options_.case_window_ms, audit, now);
  if (!stored) return refuse(500, stored.error().message);
  report.alerts = std::move(*stored);
  std::vector<std::string> fresh;
  for (const auto& outcome : report.alerts)
    if (!outcome.duplicate) fresh.push_back(outcome.id);
  if (listener_ && !fresh.empty()) listener_(fresh);
  return report;
}

json parse_json_or(const std::string& text, json fallback) {
  if (text.empty()) return fallback;
  auto parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? fallback : parsed;
}

json alert_json(const AlertRecord& a, bool with_raw) {
  json out{
      {"id", a.id},
      {"source", a.source},
      {"source_id", a.source_id},
      {"rule", {{"id", a.rule_id}, {"name", a.rule_name}}},
      {"severity", a.severity},
      {"timestamp", format_utc_ms(a.timestamp_ms)},
      {"host", {{"name", a.host_name}, {"ip", a.host_ips}}},
      {"observables", observables_json(a.observables)},
      {"notes", a.notes},
      {"case_id", a.case_id},
      {"status", a.status},
      {"assets", parse_json_or(a.assets, json::array())},
      {"validation", parse_json_or(a.validation, json::object())},
      {"enrichment", parse_json_or(a.enrichment, json::object())},
      {"confidence", parse_json_or(a.confidence, json::object())},
      {"received_at", format_utc_ms(a.received_at_ms)},
      {"updated_at", format_utc_ms(a.updated_at_ms)},
  };
  if (!a.user_name.empty()) out["user"] = {{"name", a.user_name}};
  // The authority the alert carries: a run it starts acts for its submitter and never above the
  // source's ceiling (autonomy_policy.h source_ceiling).
  out["submitted_by"] = {{"name", a.submitted_by},
                         {"role", a.submitter_role},
                         {"max_mode", a.source_max_mode.empty() ? json() : json(a.source_max_mode)}};
  if (with_raw) out["raw"] = parse_json_or(a.raw, json(a.raw));
  return out;
}

}  // namespace riposte::controller
