#include "controller/cases/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/duration.h"
#include "common/utc_time.h"
#include "controller/alerts/intake.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/playbooks/engine.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

json seconds_between(std::int64_t from_ms, const std::optional<std::int64_t>& to_ms) {
  if (!to_ms) return nullptr;
  return static_cast<double>(*to_ms - from_ms) / 1000.0;
}

std::string text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string html_escape(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Recorded text in Markdown: alert fields come from whoever triggered the alert, so nothing in
// them may become a link, an image (a tracking pixel when the report is viewed), HTML or a
// broken table row.
std::string md_cell(const std::string& in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '|':
      case '[':
      case ']':
      case '!':
      case '`':
      case '*':
      case '_':
      case '\\':
        out += '\\';
        out += c;
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string duration_text(const json& seconds) {
  return seconds.is_number() ? format_seconds(seconds.get<double>()) : "not reached";
}

}  // namespace

json case_json(const CaseRecord& c) {
  return json{{"id", c.id},
              {"title", c.title},
              {"status", c.status},
              {"severity", c.severity},
              {"host", c.host_name},
              {"assignee", c.assignee.empty() ? json(nullptr) : json(c.assignee)},
              {"created_at", format_utc_ms(c.created_at_ms)},
              {"updated_at", format_utc_ms(c.updated_at_ms)},
              {"validated_at", utc_or_null(c.validated_at_ms)},
              {"contained_at", utc_or_null(c.contained_at_ms)},
              {"resolved_at", utc_or_null(c.resolved_at_ms)},
              {"time_to_validate_s", seconds_between(c.created_at_ms, c.validated_at_ms)},
              {"time_to_contain_s", seconds_between(c.created_at_ms, c.contained_at_ms)},
              {"time_to_resolve_s", seconds_between(c.created_at_ms, c.resolved_at_ms)},
              {"alert_count", c.alert_count},
              {"alerts", c.alert_ids}};
}

Result<json> build_case_report(Store& store, const std::string& case_id) {
  auto found = store.find_case(case_id);
  if (!found) return found.error();
  if (!*found) return Error{fmt::format("no case {}", case_id)};
  const auto& c = **found;
  json timeline = json::array();
  const auto event = [&](std::int64_t at_ms, std::string what, std::string actor, json detail) {
    timeline.push_back({{"at_ms", at_ms},
                        {"at", format_utc_ms(at_ms)},
                        {"what", std::move(what)},
                        {"actor", std::move(actor)},
                        {"detail", std::move(detail)}});
  };
  event(c.created_at_ms, "case opened", "controller", json{{"title", c.title}});

  json alerts = json::array();
  for (const auto& id : c.alert_ids) {
    auto alert = store.find_alert(id);
    if (!alert) return alert.error();
    if (!*alert) continue;
    const auto& a = **alert;
    alerts.push_back(alert_json(a, /*with_raw=*/true));
    event(a.timestamp_ms, "alert's event happened (as the source reports it)", a.source,
          json{{"alert_id", a.id}, {"rule", a.rule_name}, {"severity", a.severity}});
    event(a.received_at_ms, "alert received", a.source,
          json{{"alert_id", a.id}, {"rule", a.rule_name}, {"host", a.host_name}});
    auto entries = store.audit_entries_about(a.id, 1000);
    if (!entries) return entries.error();
    for (const auto& e : *entries) {
      if (e.event == "alert.received") continue;  // already above, from the alert itself
      event(e.at_ms, e.event, e.actor, parse_json_or(e.details, json(e.details)));
    }
  }
  auto case_events = store.audit_entries_about(case_id, 10'000);
  if (!case_events) return case_events.error();
  for (const auto& e : *case_events)
    event(e.at_ms, e.event, e.actor, parse_json_or(e.details, json(e.details)));

  json runs = json::array();
  auto run_records = store.list_runs(case_id, 1000);
  if (!run_records) return run_records.error();
  for (const auto& r : *run_records) {
    auto steps = store.run_steps(r.id);
    if (!steps) return steps.error();
    runs.push_back(run_json(r, &*steps));
    for (const auto& s : *steps) {
      event(s.finished_at_ms,
            fmt::format("playbook {} step {} ({}): {}", r.playbook, s.step_id, s.kind, s.outcome),
            "playbook:" + r.playbook,
            json{{"run_id", r.id},
                 {"mode", s.mode},
                 {"mode_reason", s.mode_reason},
                 {"duration_ms", s.finished_at_ms - s.started_at_ms}});
    }
  }
  json approvals = json::array();
  auto approval_records = store.list_approvals("", case_id, 1000);
  if (!approval_records) return approval_records.error();
  for (const auto& a : *approval_records) approvals.push_back(approval_json(a));

  json actions = json::array();
  auto action_records = store.case_actions(case_id);
  if (!action_records) return action_records.error();
  for (const auto& a : *action_records) {
    auto full = store.find_action(a.id);  // with its evidence
    if (!full) return full.error();
    const auto& record = *full ? **full : a;
    actions.push_back(action_json(record));
    const bool simulated = record.state == ActionState::simulated;
    event(record.issued_at_ms,
          fmt::format("action {} {} for agent {}", record.kind,
                      simulated ? "simulated (not sent)" : "issued", record.agent_id),
          record.requester, json{{"action_id", record.id}, {"approver", record.approver}});
    if (record.finished_at_ms) {
      event(*record.finished_at_ms,
            fmt::format("action {} {}", record.kind, to_string(record.state)),
            "agent:" + record.agent_id, json{{"action_id", record.id}, {"reason", record.reason}});
    }
  }
  json notes = json::array();
  auto note_records = store.case_notes(case_id);
  if (!note_records) return note_records.error();
  for (const auto& n : *note_records)
    notes.push_back({{"at", format_utc_ms(n.at_ms)}, {"author", n.author}, {"text", n.text}});

  std::stable_sort(timeline.begin(), timeline.end(), [](const json& a, const json& b) {
    return a["at_ms"].get<std::int64_t>() < b["at_ms"].get<std::int64_t>();
  });
  return json{{"case", case_json(c)},   {"alerts", alerts},   {"runs", runs},
              {"approvals", approvals}, {"actions", actions}, {"notes", notes},
              {"timeline", timeline}};
}

std::string render_case_markdown(const json& report) {
  const auto& c = report["case"];
  std::string out = fmt::format("# Case {}: {}\n\n", text(c["id"]), md_cell(text(c["title"])));
  out += fmt::format(
      "- Status: **{}**, severity {}, host {}, assignee {}\n- Opened {}; validated {}; "
      "contained {}; resolved {}\n- Time to validate: {}; to contain: {}; to resolve: {}\n\n",
      text(c["status"]), text(c["severity"]), md_cell(text(c["host"])),
      c["assignee"].is_null() ? "none" : md_cell(text(c["assignee"])), text(c["created_at"]),
      text(c["validated_at"]), text(c["contained_at"]), text(c["resolved_at"]),
      duration_text(c["time_to_validate_s"]), duration_text(c["time_to_contain_s"]),
      duration_text(c["time_to_resolve_s"]));
  out +=
      "## Alerts\n\n| id | source | rule | severity | status | confidence "
      "|\n|---|---|---|---|---|---|\n";
  for (const auto& a : report["alerts"]) {
    const auto& confidence = a.value("confidence", json());
    out += fmt::format(
        "| {} | {} | {} | {} | {} | {} |\n", md_cell(text(a["id"])), md_cell(text(a["source"])),
        md_cell(text(a["rule"]["name"])), md_cell(text(a["severity"])), md_cell(text(a["status"])),
        confidence.is_object() ? md_cell(text(confidence.value("score", json()))) : "");
  }
  out += "\n## Playbook runs\n\n";
  for (const auto& r : report["runs"]) {
    out += fmt::format(
        "### {} (run {}), started by {}: {}{}\n\n| step | kind | outcome | mode | "
        "why this mode | duration |\n|---|---|---|---|---|---|\n",
        text(r["playbook"]), text(r["id"]), text(r["started_by"]), text(r["state"]),
        r["error"].is_null() ? "" : " — " + md_cell(text(r["error"])));
    for (const auto& s : r["steps"]) {
      out += fmt::format("| {} | {} | {} | {} | {} | {} ms |\n", md_cell(text(s["step"])),
                         md_cell(text(s["kind"])), md_cell(text(s["outcome"])),
                         md_cell(text(s["mode"])), md_cell(text(s["mode_reason"])),
                         text(s["duration_ms"]));
    }
    out += "\n";
  }
  out +=
      "## Approvals\n\n| id | asked | reason | state | decided by | why "
      "|\n|---|---|---|---|---|---|\n";
  for (const auto& a : report["approvals"]) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", md_cell(text(a["id"])),
                       md_cell(text(a["created_at"])), md_cell(text(a["reason"])),
                       md_cell(text(a["state"])), md_cell(text(a["decided_by"])),
                       md_cell(text(a["decision_reason"])));
  }
  out +=
      "\n## Actions (simulated and real)\n\n| action | kind | agent | state | requester | "
      "approver | spec SHA-256 | signature |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& a : report["actions"]) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", md_cell(text(a["id"])),
                       md_cell(text(a["kind"])), md_cell(text(a["agent_id"])),
                       md_cell(text(a["state"])), md_cell(text(a["requester"])),
                       md_cell(text(a["approver"])), md_cell(text(a["spec_sha256"])),
                       md_cell(text(a["signature"]).substr(0, 32)) + "…");
  }
  out += "\n## Notes\n\n";
  for (const auto& n : report["notes"])
    out += fmt::format("- {} {}: {}\n", text(n["at"]), md_cell(text(n["author"])),
                       md_cell(text(n["text"])));
  out += "\n## Timeline\n\n| at | what | by |\n|---|---|---|\n";
  for (const auto& e : report["timeline"]) {
    out += fmt::format("| {} | {} | {} |\n", md_cell(text(e["at"])), md_cell(text(e["what"])),
                       md_cell(text(e["actor"])));
  }
  return out;
}

std::string render_case_html(const json& report) {
  const auto& c = report["case"];
  const auto cell = [](const json& v) { return "<td>" + html_escape(text(v)) + "</td>"; };
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Case {}</title>"
      "<style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px "
      "solid #999;padding:2px 6px;text-align:left}}</style></head><body>\n<h1>Case {}: {}</h1>\n",
      html_escape(text(c["id"])), html_escape(text(c["id"])), html_escape(text(c["title"])));
  out += fmt::format(
      "<p>Status <b>{}</b>, severity {}, host {}. Time to validate {}, to contain "
      "{}, to resolve {}.</p>\n",
      html_escape(text(c["status"])), html_escape(text(c["severity"])),
      html_escape(text(c["host"])), duration_text(c["time_to_validate_s"]),
      duration_text(c["time_to_contain_s"]), duration_text(c["time_to_resolve_s"]));
  out +=
      "<h2>Actions (simulated and real)</h2>\n<table><tr><th>action</th><th>kind</th><th>agent"
      "</th><th>state</th><th>requester</th><th>approver</th><th>spec SHA-256</th></tr>\n";
  for (const auto& a : report["actions"]) {
    out += "<tr>" + cell(a["id"]) + cell(a["kind"]) + cell(a["agent_id"]) + cell(a["state"]) +
           cell(a["requester"]) + cell(a["approver"]) + cell(a["spec_sha256"]) + "</tr>\n";
  }
  out +=
      "</table>\n<h2>Approvals</h2>\n<table><tr><th>id</th><th>reason</th><th>state</th><th>"
      "decided by</th><th>why</th></tr>\n";
  for (const auto& a : report["approvals"]) {
    out += "<tr>" + cell(a["id"]) + cell(a["reason"]) + cell(a["state"]) + cell(a["decided_by"]) +
           cell(a["decision_reason"]) + "</tr>\n";
  }
  out +=
      "</table>\n<h2>Timeline</h2>\n<table><tr><th>at</th><th>what</th><th>by</th><th>detail"
      "</th></tr>\n";
  for (const auto& e : report["timeline"]) {
    out +=
        "<tr>" + cell(e["at"]) + cell(e["what"]) + cell(e["actor"]) + cell(e["detail"]) + "</tr>\n";
  }
  out += "</table>\n<h2>Record</h2>\n<pre>" +
         html_escape(report.dump(2, ' ', false, json::error_handler_t::replace)) +
         "</pre>\n</body></html>\n";
  return out;
}

Result<json> case_stats(Store& store, std::int64_t since_ms, std::int64_t until_ms) {
  auto cases = store.list_cases("", since_ms, 1'000'000);
  if (!cases) return cases.error();
  std::map<std::string, int> by_status;
  std::vector<double> validate, contain, resolve;
  int counted = 0;
  for (const auto& c : *cases) {
    if (c.created_at_ms > until_ms) continue;
    ++counted;
    ++by_status[c.status];
    const auto add = [&](std::vector<double>& to, const std::optional<std::int64_t>& at) {
      if (at) to.push_back(static_cast<double>(*at - c.created_at_ms) / 1000.0);
    };
    add(validate, c.validated_at_ms);
    add(contain, c.contained_at_ms);
    add(resolve, c.resolved_at_ms);
  }
  const auto summary = [](std::vector<double> v) {
    if (v.empty()) return json{{"count", 0}};
    std::sort(v.begin(), v.end());
    // Nearest rank: the smallest value with at least p% of the values at or below it.
    const auto pct = [&](double p) {
      const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * v.size()));
      return v[std::max<std::size_t>(rank, 1) - 1];
    };
    double sum = 0;
    for (double x : v) sum += x;
    return json{{"count", v.size()}, {"mean_s", sum / v.size()}, {"p50_s", pct(50)},
                {"p90_s", pct(90)},  {"p95_s", pct(95)},         {"max_s", v.back()}};
  };
  return json{{"since", format_utc_ms(since_ms)},
              {"until", format_utc_ms(until_ms)},
              {"cases", counted},
              {"by_status", by_status},
              {"time_to_validate", summary(validate)},
              {"time_to_contain", summary(contain)},
              {"time_to_resolve", summary(resolve)}};
}

}  // namespace riposte::controller
