#include "controller/cases/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "common/duration.h"
#include "common/utc_time.h"
#include "common/utf8.h"
#include "controller/alerts/intake.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/playbooks/engine.h"
#include "protocol/action_outcome.h"

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

// Control characters other than line breaks and tabs shown as \xHH: a report is read in terminals
// (`riposte cases report` prints to stdout), and an escape sequence in a process name ("\x1b[2J")
// must not clear or recolour the reader's screen.
std::string visible_controls(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    const auto b = static_cast<unsigned char>(c);
    if ((b < 0x20 && c != '\n' && c != '\t') || b == 0x7f)
      out += fmt::format("\\x{:02x}", b);
    else
      out += c;
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

// A step's output in a table cell: its JSON, cut at 160 characters.
std::string brief(const json& output) {
  if (output.is_null()) return "";
  auto dumped = output.is_string() ? output.get<std::string>()
                                   : output.dump(-1, ' ', false, json::error_handler_t::replace);
  if (dumped.size() > 160) dumped = utf8_prefix(dumped, 160) + "…";
  return dumped;
}

std::string downloads_text(const json& downloads) {
  std::string out;
  for (const auto& d : downloads)
    out += (out.empty() ? "" : ", ") + text(d["by"]) + " " + text(d["at"]);
  return out.empty() ? "nobody" : out;
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
  json evidence = json::array();
  auto action_records = store.case_actions(case_id);
  if (!action_records) return action_records.error();
  for (const auto& a : *action_records) {
    auto full = store.find_action(a.id);  // with its evidence
    if (!full) return full.error();
    const auto& record = *full ? **full : a;
    auto shown = action_json(record);  // with its outcome in words
    for (const auto& e : record.evidence) {
      json downloads = json::array();
      auto custody = store.audit_entries_about(e.sha256, 1000);
      if (!custody) return custody.error();
      for (const auto& entry : *custody) {
        if (entry.event == "evidence.downloaded")
          downloads.push_back({{"by", entry.actor}, {"at", format_utc_ms(entry.at_ms)}});
      }
      evidence.push_back({{"sha256", e.sha256},
                          {"name", e.name},
                          {"size", e.size},
                          {"stored", e.stored},
                          {"stored_at", utc_or_null(e.stored_at_ms)},
                          {"action_id", record.id},
                          {"kind", record.kind},
                          {"agent_id", record.agent_id},
                          {"downloads", downloads}});
    }
    actions.push_back(std::move(shown));
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
  return json{{"case", case_json(c)},   {"alerts", alerts},    {"runs", runs},
              {"approvals", approvals}, {"actions", actions},  {"evidence", evidence},
              {"notes", notes},         {"timeline", timeline}};
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
  if (c.contains("console_link")) out += fmt::format("Console: <{}>\n\n", text(c["console_link"]));
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
        "why this mode | duration | output |\n|---|---|---|---|---|---|---|\n",
        text(r["playbook"]), text(r["id"]), text(r["started_by"]), text(r["state"]),
        r["error"].is_null() ? "" : " — " + md_cell(text(r["error"])));
    for (const auto& s : r["steps"]) {
      out += fmt::format("| {} | {} | {} | {} | {} | {} ms | {} |\n", md_cell(text(s["step"])),
                         md_cell(text(s["kind"])), md_cell(text(s["outcome"])),
                         md_cell(text(s["mode"])), md_cell(text(s["mode_reason"])),
                         text(s["duration_ms"]), md_cell(brief(s.value("output", json()))));
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
      "\n## Actions (simulated and real)\n\n| action | kind | agent | state | outcome | requester "
      "| "
      "approver | spec SHA-256 | signature |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& a : report["actions"]) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", md_cell(text(a["id"])),
                       md_cell(text(a["kind"])), md_cell(text(a["agent_id"])),
                       md_cell(text(a["state"])), md_cell(text(a.value("outcome", json()))),
                       md_cell(text(a["requester"])), md_cell(text(a["approver"])),
                       md_cell(text(a["spec_sha256"])),
                       md_cell(utf8_prefix(text(a["signature"]), 32)) + "…");
  }
  out +=
      "\n## Evidence\n\n| object | SHA-256 | size | action | agent | stored | downloaded by "
      "|\n|---|---|---|---|---|---|---|\n";
  for (const auto& e : report.value("evidence", json::array())) {
    out += fmt::format("| {} | {} | {} | {} ({}) | {} | {} | {} |\n", md_cell(text(e["name"])),
                       md_cell(text(e["sha256"])), bytes_text(e["size"].get<std::uint64_t>()),
                       md_cell(text(e["action_id"])), md_cell(text(e["kind"])),
                       md_cell(text(e["agent_id"])),
                       e["stored"].get<bool>() ? text(e["stored_at"]) : "not yet",
                       md_cell(downloads_text(e["downloads"])));
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
  return visible_controls(out);
}

std::string render_case_html(const json& report) {
  const auto& c = report["case"];
  const auto esc = [](const json& v) { return html_escape(text(v)); };
  const auto cell = [&](const json& v) { return "<td>" + esc(v) + "</td>"; };
  // Raw documents are kept, folded: the reviewer opens what they need, the page stays readable.
  const auto folded = [](const std::string& summary, const json& value) {
    if (value.is_null() || (value.is_object() && value.empty())) return std::string();
    return "<details><summary>" + html_escape(summary) + "</summary><pre>" +
           html_escape(value.is_string()
                           ? value.get<std::string>()
                           : value.dump(2, ' ', false, json::error_handler_t::replace)) +
           "</pre></details>";
  };
  const auto table = [](std::initializer_list<const char*> headers) {
    std::string out = "<table><thead><tr>";
    for (const char* h : headers) out += fmt::format("<th>{}</th>", h);
    return out + "</tr></thead><tbody>\n";
  };
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Case {}</title>\n"
      "<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:75em;margin:2em auto;"
      "padding:0 1em;color:#111}}h1{{font-size:1.6em}}h2{{margin-top:1.8em;border-bottom:1px "
      "solid #ccc}}table{{border-collapse:collapse;width:100%;margin:.5em 0}}td,th{{border:1px "
      "solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}}th{{background:#f2f2f2}}"
      "td{{word-break:break-word}}.hash{{font-family:monospace;font-size:.9em}}"
      "dl{{display:grid;grid-template-columns:max-content auto;gap:2px 1em}}dt{{font-weight:600}}"
      "pre{{white-space:pre-wrap;font-size:.85em;background:#f8f8f8;padding:.5em}}"
      "@media print{{body{{margin:0;max-width:none}}h2{{break-after:avoid}}tr{{break-inside:avoid}}"
      "details:not([open]) pre{{display:none}}}}</style></head><body>\n"
      "<h1>Case {}: {}</h1>\n",
      esc(c["id"]), esc(c["id"]), esc(c["title"]));
  out += fmt::format(
      "<dl><dt>Status</dt><dd>{}</dd><dt>Severity</dt><dd>{}</dd><dt>Host</dt><dd>{}</dd>"
      "<dt>Assignee</dt><dd>{}</dd><dt>Opened</dt><dd>{}</dd><dt>Validated</dt><dd>{}</dd>"
      "<dt>Contained</dt><dd>{}</dd><dt>Resolved</dt><dd>{}</dd><dt>Time to validate / contain / "
      "resolve</dt><dd>{} / {} / {}</dd></dl>\n",
      esc(c["status"]), esc(c["severity"]), esc(c["host"]),
      c["assignee"].is_null() ? "none" : esc(c["assignee"]), esc(c["created_at"]),
      esc(c["validated_at"]), esc(c["contained_at"]), esc(c["resolved_at"]),
      duration_text(c["time_to_validate_s"]), duration_text(c["time_to_contain_s"]),
      duration_text(c["time_to_resolve_s"]));
  if (c.contains("console_link"))
    out += fmt::format("<p>Console: <a href=\"{0}\">{0}</a></p>\n", esc(c["console_link"]));

  out += "<h2>Alerts</h2>\n" + table({"alert", "source", "rule", "severity", "host", "status",
                                      "confidence", "documents"});
  for (const auto& a : report["alerts"]) {
    const auto& confidence = a.value("confidence", json());
    json documents = {{"validation", a.value("validation", json())},
                      {"enrichment", a.value("enrichment", json())},
                      {"confidence", confidence}};
    out += "<tr>" + cell(a["id"]) + cell(a["source"]) + cell(a["rule"]["name"]) +
           cell(a["severity"]) + cell(a.value("host", json()).value("name", json())) +
           cell(a["status"]) + "<td>" +
           (confidence.is_object() ? esc(confidence.value("score", json())) + " " +
                                         esc(confidence.value("decision", json()))
                                   : "") +
           "</td><td>" + folded("validation, enrichment, confidence", documents) +
           folded("as received", a.value("raw", json())) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";

  out += "<h2>Playbook runs</h2>\n";
  for (const auto& r : report["runs"]) {
    out += fmt::format("<h3>{} — run {}, started by {}: {}{}</h3>\n", esc(r["playbook"]),
                       esc(r["id"]), esc(r["started_by"]), esc(r["state"]),
                       r["error"].is_null() ? "" : " — " + esc(r["error"]));
    out += table({"step", "kind", "outcome", "mode", "why this mode", "duration", "output"});
    for (const auto& st : r["steps"]) {
      out += "<tr>" + cell(st["step"]) + cell(st["kind"]) + cell(st["outcome"]) + cell(st["mode"]) +
             cell(st["mode_reason"]) + "<td>" + esc(st["duration_ms"]) + " ms</td><td>" +
             folded("output", st.value("output", json())) + "</td></tr>\n";
    }
    out += "</tbody></table>\n";
  }

  out += "<h2>Approvals</h2>\n" +
         table({"approval", "asked", "what and why", "state", "decided by", "their reason"});
  for (const auto& a : report["approvals"]) {
    out += "<tr>" + cell(a["id"]) + cell(a["created_at"]) + cell(a["reason"]) + cell(a["state"]) +
           cell(a["decided_by"]) + cell(a["decision_reason"]) + "</tr>\n";
  }
  out += "</tbody></table>\n";

  out += "<h2>Actions (simulated and real)</h2>\n" +
         table({"action", "kind", "agent", "state", "outcome", "requester", "approver",
                "spec SHA-256", "result"});
  for (const auto& a : report["actions"]) {
    out += "<tr>" + cell(a["id"]) + cell(a["kind"]) + cell(a["agent_id"]) + cell(a["state"]) +
           cell(a.value("outcome", json())) + cell(a["requester"]) + cell(a["approver"]) +
           "<td class=\"hash\">" + esc(a["spec_sha256"]) + "</td><td>" +
           folded("result", a.value("result", json())) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";

  out += "<h2>Evidence</h2>\n" +
         table({"object", "SHA-256", "size", "action", "agent", "stored", "downloaded by"});
  for (const auto& e : report.value("evidence", json::array())) {
    out += "<tr>" + cell(e["name"]) + "<td class=\"hash\">" + esc(e["sha256"]) + "</td><td>" +
           bytes_text(e["size"].get<std::uint64_t>()) + "</td><td>" + esc(e["action_id"]) + " (" +
           esc(e["kind"]) + ")</td>" + cell(e["agent_id"]) + "<td>" +
           (e["stored"].get<bool>() ? esc(e["stored_at"]) : "not yet") + "</td><td>" +
           html_escape(downloads_text(e["downloads"])) + "</td></tr>\n";
  }
  out += "</tbody></table>\n";

  out += "<h2>Notes</h2>\n<ul>\n";
  for (const auto& n : report["notes"])
    out +=
        "<li>" + esc(n["at"]) + " <b>" + esc(n["author"]) + "</b>: " + esc(n["text"]) + "</li>\n";
  out += "</ul>\n";

  out += "<h2>Timeline</h2>\n" + table({"at", "what", "by", "detail"});
  for (const auto& e : report["timeline"]) {
    out += "<tr>" + cell(e["at"]) + cell(e["what"]) + cell(e["actor"]) + "<td>" +
           folded("detail", e["detail"]) + "</td></tr>\n";
  }
  out += "</tbody></table>\n<h2>Full record</h2>\n" + folded("the whole report as JSON", report) +
         "\n</body></html>\n";
  return visible_controls(out);
}

Result<json> case_stats(Store& store, std::int64_t since_ms, std::int64_t until_ms) {
  auto cases = store.list_cases(CaseFilter{.since_ms = since_ms}, 1'000'000);
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
