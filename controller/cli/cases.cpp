#include "controller/cli/cases.h"

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "common/duration.h"
#include "common/secure_file.h"

namespace riposte::cli {

using nlohmann::json;

namespace {

std::string seconds_text(const json& v) {
  return v.is_number() ? format_seconds(v.get<double>()) : "-";
}

}  // namespace

void CaseCommands::attach(CLI::App& app) {
  auto* cases =
      app.add_subcommand("cases", "cases: an incident from its first alert to resolution");
  cases->require_subcommand(1);
  case_list_ = cases->add_subcommand("list", "recent cases with time to validate/contain/resolve");
  case_list_->add_option("--status", status_,
                         "only new, in_progress, contained, resolved or false_positive");
  case_list_->add_option("--since", since_,
                         "created within this long (default 30d) or since a time");
  case_list_->add_option("--limit", limit_, "at most this many (default 50)");
  case_list_->add_flag("--json", json_, "print JSON");
  case_show_ = cases->add_subcommand("show", "one case: alerts, runs, notes, milestones");
  case_show_->add_option("ID", id_, "case id")->required();
  case_show_->add_flag("--json", json_, "print JSON");
  case_update_ = cases->add_subcommand("update", "change status, severity, assignee; add a note");
  case_update_->add_option("ID", id_, "case id")->required();
  case_update_->add_option("--status", status_,
                           "new, in_progress, contained, resolved, false_positive");
  case_update_->add_option("--severity", severity_, "low, medium, high, critical");
  case_update_->add_option("--assignee", assignee_, "who works on it");
  case_update_->add_option("--note", note_, "a note for the record");
  case_update_->add_flag("--json", json_, "print JSON");
  case_report_ = cases->add_subcommand(
      "report", "the whole record and timeline, to reconstruct and review the incident");
  case_report_->add_option("ID", id_, "case id")->required();
  case_report_->add_option("--format", format_, "md (default), json or html")
      ->check(CLI::IsMember({"md", "json", "html"}));
  case_report_->add_option("-o,--output", output_, "file to write (default stdout)");
  case_stats_ = cases->add_subcommand(
      "stats", "mean and percentiles of time to validate, contain and resolve (MTTR)");
  case_stats_->add_option("--since", since_, "cases created within this long (default 30d)");
  case_stats_->add_flag("--json", json_, "print JSON");

  auto* approvals = app.add_subcommand("approvals", "what playbooks wait for a person to approve");
  approvals->require_subcommand(1);
  approval_list_ = approvals->add_subcommand("list", "approval requests (default: pending)");
  approval_list_->add_option("--state", state_,
                             "pending (default), approved, denied, expired, any");
  approval_list_->add_option("--case", case_, "only this case's");
  approval_list_->add_flag("--json", json_, "print JSON");
  approval_show_ = approvals->add_subcommand("show", "one request: what, why, impact");
  approval_show_->add_option("ID", id_, "approval id")->required();
  approval_show_->add_flag("--json", json_, "print JSON");
  approve_ = approvals->add_subcommand("approve", "approve (not a run you started yourself)");
  approve_->add_option("ID", id_, "approval id")->required();
  approve_->add_option("--reason", reason_, "why, for the record");
  approve_->add_flag("--wait", wait_,
                     "wait until what the approval let go has ended (the step's actions; exit 2 "
                     "if one did not succeed or the run failed)");
  approve_->add_option("--timeout", wait_timeout_, "give up waiting after this (default 10m)");
  approve_->add_flag("--json", json_, "print JSON (with --wait: the run as it ended)");
  deny_ = approvals->add_subcommand("deny", "deny: the run ends as denied and undoes what it did");
  deny_->add_option("ID", id_, "approval id")->required();
  deny_->add_option("--reason", reason_, "why (required)")->required();
  deny_->add_flag("--json", json_, "print JSON");

  auto* runs = app.add_subcommand("runs", "playbook runs");
  runs->require_subcommand(1);
  run_list_ = runs->add_subcommand("list", "recent runs");
  run_list_->add_option("--case", case_, "only this case's");
  run_list_->add_option("--limit", limit_, "at most this many (default 50)");
  run_list_->add_flag("--json", json_, "print JSON");
  run_show_ = runs->add_subcommand("show", "one run: every step with outcome, mode and why");
  run_show_->add_option("ID", id_, "run id")->required();
  run_show_->add_flag("--json", json_, "print JSON");
  run_cancel_ = runs->add_subcommand(
      "cancel", "stop a run: cancel its approvals, undo what it did (a responder)");
  run_cancel_->add_option("ID", id_, "run id")->required();
  run_cancel_->add_option("--reason", reason_, "why (required, for the record)")->required();
  run_cancel_->add_flag("--json", json_, "print JSON");
}

std::optional<int> CaseCommands::run(const Connection& c) {
  if (case_list_->parsed()) {
    std::string target = fmt::format("/api/v1/cases?limit={}&since={}", limit_, url_encode(since_));
    if (!status_.empty()) target += "&status=" + url_encode(status_);
    const auto result = call(c, "GET", target);
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& k : result["cases"]) {
      rows.push_back({text(k["id"]), text(k["status"]), text(k["severity"]), text(k["host"]),
                      text(k["assignee"]), std::to_string(k.value("alert_count", 0)),
                      seconds_text(k["time_to_validate_s"]), seconds_text(k["time_to_contain_s"]),
                      seconds_text(k["time_to_resolve_s"]), text(k["created_at"]),
                      text(k["title"])});
    }
    print_table({"ID", "STATUS", "SEVERITY", "HOST", "ASSIGNEE", "ALERTS", "VALIDATE", "CONTAIN",
                 "RESOLVE", "OPENED", "TITLE"},
                rows);
    return 0;
  }
  if (case_show_->parsed()) return show_case(c);
  if (case_update_->parsed()) {
    json body = json::object();
    for (auto [key, value] : {std::pair{"status", &status_},
                              {"severity", &severity_},
                              {"assignee", &assignee_},
                              {"note", &note_}}) {
      if (!value->empty()) body[key] = *value;
    }
    if (body.empty()) die("give --status, --severity, --assignee or --note");
    call(c, "POST", "/api/v1/cases/" + url_encode(id_), body);
    return show_case(c);
  }
  if (case_report_->parsed()) {
    const auto body = call_raw(
        c, "GET", fmt::format("/api/v1/cases/{}/report?format={}", url_encode(id_), format_));
    const auto printable = format_ == "json" ? json::parse(body).dump(2) + "\n" : body;
    if (output_.empty()) {
      std::cout << printable;
    } else if (auto s = write_file_atomic(output_, printable, 0600); !s) {
      die(s.error().message);
    }
    return 0;
  }
  if (case_stats_->parsed()) {
    const auto s = call(c, "GET", "/api/v1/cases/stats?since=" + url_encode(since_));
    if (json_) {
      std::cout << s.dump(2) << "\n";
      return 0;
    }
    std::cout << fmt::format("{} case(s) opened {} .. {}; by status: {}\n", s["cases"].dump(),
                             text(s["since"]), text(s["until"]), s["by_status"].dump());
    std::vector<std::vector<std::string>> rows;
    for (const char* measure : {"time_to_validate", "time_to_contain", "time_to_resolve"}) {
      const auto& m = s[measure];
      rows.push_back(
          {measure, m["count"].dump(), seconds_text(m.value("mean_s", json())),
           seconds_text(m.value("p50_s", json())), seconds_text(m.value("p90_s", json())),
           seconds_text(m.value("p95_s", json())), seconds_text(m.value("max_s", json()))});
    }
    print_table({"MEASURE", "CASES", "MEAN", "P50", "P90", "P95", "MAX"}, rows);
    return 0;
  }
  if (approval_list_->parsed()) {
    std::string target = "/api/v1/approvals?state=";
    target += state_ == "any" ? "" : url_encode(state_.empty() ? "pending" : state_);
    if (!case_.empty()) target += "&case=" + url_encode(case_);
    const auto result = call(c, "GET", target);
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : result["approvals"]) {
      rows.push_back({text(a["id"]), text(a["state"]), text(a["requested_by"]),
                      text(a["expires_at"]), text(a["decided_by"]), text(a["reason"])});
    }
    print_table({"ID", "STATE", "REQUESTED BY", "EXPIRES", "DECIDED BY", "WHAT AND WHY"}, rows);
    return 0;
  }
  if (approval_show_->parsed())
    return show_approval(call(c, "GET", "/api/v1/approvals/" + url_encode(id_)));
  if (approve_->parsed() || deny_->parsed()) {
    const auto verb = approve_->parsed() ? "approve" : "deny";
    const auto result =
        call(c, "POST", fmt::format("/api/v1/approvals/{}/{}", url_encode(id_), verb),
             json{{"reason", reason_}});
    if (approve_->parsed() && wait_) return wait_for_approved(c, result);
    return show_approval(result);
  }
  if (run_list_->parsed()) {
    std::string target = fmt::format("/api/v1/runs?limit={}", limit_);
    if (!case_.empty()) target += "&case=" + url_encode(case_);
    const auto result = call(c, "GET", target);
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : result["runs"]) {
      rows.push_back({text(r["id"]), text(r["playbook"]), text(r["state"]), text(r["step"]),
                      text(r["waiting_for"]), text(r["started_by"]), text(r["requested_by"]),
                      text(r["case_id"]), text(r["started_at"]), text(r["error"])});
    }
    print_table({"ID", "PLAYBOOK", "STATE", "STEP", "WAITING FOR", "STARTED BY", "FOR", "CASE",
                 "STARTED", "ERROR"},
                rows);
    return 0;
  }
  if (run_show_->parsed()) return show_run(c);
  if (run_cancel_->parsed()) {
    auto run =
        call(c, "POST", "/api/v1/runs/" + url_encode(id_) + "/cancel", json{{"reason", reason_}});
    // Another controller holds the run: it cancels at its next look (about a second); wait for it
    // rather than show a run that still looks alive.
    for (int i = 0; i < 30 && !run["cancel_requested"].is_null(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      run = call(c, "GET", "/api/v1/runs/" + url_encode(id_));
    }
    if (!run["cancel_requested"].is_null()) {
      std::cerr << "The cancel is recorded; the controller holding this run has not carried it "
                   "out yet (it does at its next look at the run, or, if that controller "
                   "stopped, whichever takes the run over once its lease expires).\n";
      show_run(c);
      return 3;  // not (yet) cancelled: a script must not read this as done
    }
    return show_run(c);
  }
  return std::nullopt;
}

int CaseCommands::show_case(const Connection& c) {
  const auto k = call(c, "GET", "/api/v1/cases/" + url_encode(id_));
  if (json_) {
    std::cout << k.dump(2) << "\n";
    return 0;
  }
  for (const char* key : {"id", "title", "status", "severity", "host", "assignee", "created_at",
                          "validated_at", "contained_at", "resolved_at", "alerts"})
    std::cout << fmt::format("{:<14} {}\n", std::string(key) + ":", text(k[key]));
  std::cout << fmt::format("{:<14} validate {}, contain {}, resolve {}\n",
                           "times:", seconds_text(k["time_to_validate_s"]),
                           seconds_text(k["time_to_contain_s"]),
                           seconds_text(k["time_to_resolve_s"]));
  for (const auto& r : k["runs"]) {
    std::cout << fmt::format("run:           {} {} ({}){}\n", text(r["id"]), text(r["playbook"]),
                             text(r["state"]), r["error"].is_null() ? "" : ": " + text(r["error"]));
  }
  for (const auto& n : k["notes"])
    std::cout << fmt::format("note:          {} {}: {}\n", text(n["at"]), text(n["author"]),
                             text(n["text"]));
  return 0;
}

int CaseCommands::show_run(const Connection& c) {
  const auto r = call(c, "GET", "/api/v1/runs/" + url_encode(id_));
  if (json_) {
    std::cout << r.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format(
      "run {} of {} v{} over alert {} (case {}), started by {} for {}{}: {}{}\n", text(r["id"]),
      text(r["playbook"]), text(r["version"]), text(r["alert_id"]), text(r["case_id"]),
      text(r["started_by"]), text(r["requested_by"]),
      r["simulate_only"].get<bool>() ? " in simulate only" : "", text(r["state"]),
      r["error"].is_null() ? "" : " — " + text(r["error"]));
  if (!r["step"].is_null())
    std::cout << fmt::format("now at step {} (attempt {}), waiting for {}\n", text(r["step"]),
                             r["attempt"].dump(), text(r["waiting_for"]));
  if (r.contains("waiting_on"))
    std::cout << fmt::format("approval {} (expires {}): {}\n", text(r["waiting_on"]["id"]),
                             text(r["waiting_on"]["expires_at"]), text(r["waiting_on"]["reason"]));
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : r["steps"]) {
    rows.push_back({text(s["step"]), text(s["kind"]), s["attempt"].dump(), text(s["outcome"]),
                    text(s["mode"]), text(s["mode_reason"]), s["duration_ms"].dump() + " ms"});
  }
  print_table({"STEP", "KIND", "TRY", "OUTCOME", "MODE", "WHY THIS MODE", "TOOK"}, rows);
  std::vector<std::vector<std::string>> actions;
  for (const auto& a : r["actions"]) {
    actions.push_back({text(a["id"]), text(a["kind"]), text(a["agent_id"]), text(a["state"]),
                       text(a["approver"])});
  }
  if (!actions.empty()) {
    std::cout << "\n";
    print_table({"ACTION", "KIND", "AGENT", "STATE", "APPROVER"}, actions);
  }
  return 0;
}

int CaseCommands::wait_for_approved(const Connection& c, const json& approval) {
  const auto timeout = parse_duration_ms(wait_timeout_);
  if (!timeout) die("--timeout: " + timeout.error().message);
  const auto run_path = "/api/v1/runs/" + url_encode(text(approval["run_id"]));
  const auto decided_at = text(approval["decided_at"]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(*timeout);
  if (!json_)
    std::cout << fmt::format("Approved {}; waiting for run {}...\n", text(approval["id"]),
                             text(approval["run_id"]));
  for (;;) {
    const auto run = call(c, "GET", run_path);
    const auto state = text(run["state"]);
    // The actions this decision let go: issued at or after it (RFC 3339 UTC sorts as text).
    std::vector<json> released;
    bool open = false;
    for (const auto& a : run.value("actions", json::array())) {
      if (text(a["issued_at"]) < decided_at) continue;
      released.push_back(a);
      open = open || !action_ended(a);
    }
    const bool ended = state != "running" && state != "waiting";
    // Still at this approval (the engine has not taken the decision up yet), or at its actions.
    const bool here = state == "waiting" && text(run["waiting_for"]) == "approval" &&
                      text(run["step"]) == text(approval["step"]) &&
                      run.value("attempt", 0) == approval.value("attempt", 0);
    const bool moved_on =
        ended || (state == "waiting" && !here && text(run["waiting_for"]) != "actions");
    if (moved_on && !open) {
      int code = state == "failed" || state == "escalated" || state == "denied" ? 2 : 0;
      for (const auto& a : released)
        if (text(a["state"]) != "succeeded") code = 2;
      if (json_) {
        std::cout << run.dump(2) << "\n";
      } else {
        for (const auto& a : released)
          std::cout << fmt::format("{} {} on {}: {}\n", text(a["kind"]), text(a["state"]),
                                   text(a["agent_id"]),
                                   printable(text(a.value("outcome", json()))));
        const auto waiting_for = run.value("waiting_for", json());
        const bool waits = waiting_for.is_string() && !waiting_for.get<std::string>().empty();
        std::cout << fmt::format("Run {} is {}{}\n", text(run["id"]), state,
                                 waits ? " for " + waiting_for.get<std::string>() : "");
      }
      return code;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << fmt::format("riposte: timed out waiting; run {} is {} ({})\n", text(run["id"]),
                               state, text(run["waiting_for"]));
      return 3;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int CaseCommands::show_approval(const json& a) {
  if (json_) {
    std::cout << a.dump(2) << "\n";
    return 0;
  }
  for (const char* key :
       {"id", "state", "reason", "what", "requested_by", "not_deciders", "case_id", "run_id",
        "step", "created_at", "expires_at", "decided_by", "decision_reason", "decided_at"})
    std::cout << fmt::format("{:<16} {}\n", std::string(key) + ":", text(a[key]));
  for (const auto& i : a["impact"]) {
    std::cout << fmt::format("{:<16} {} ({}): asset {}, {} {}, owner {}, stakeholders {}\n",
                             "impact:", text(i["hostname"]), text(i["agent_id"]), text(i["asset"]),
                             text(i.value("environment", json())),
                             text(i.value("criticality", json())), text(i.value("owner", json())),
                             text(i.value("stakeholders", json())));
  }
  return 0;
}

}  // namespace riposte::cli
