#include "controller/api/playbook_routes.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>

#include "common/duration.h"
#include "common/utc_time.h"
#include "controller/alerts/asset_map.h"
#include "controller/alerts/intake.h"
#include "controller/cases/report.h"
#include "controller/playbooks/impact.h"
#include "controller/playbooks/simulation.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

ApiResponse reply(int status, const json& body) { return json_response(status, body); }
ApiResponse error(int status, std::string_view message) { return error_response(status, message); }

// A string field, "" when absent; an error when present and not a string or too long.
Result<std::string> string_field(const json& body, const char* name, std::size_t max = 4096) {
  if (!body.contains(name)) return std::string();
  if (!body[name].is_string() || body[name].get<std::string>().size() > max)
    return Error{fmt::format("'{}' must be a string of at most {} bytes", name, max)};
  return body[name].get<std::string>();
}

// ?since=30d (a duration back from now) or an RFC 3339 time; default 30 days.
Result<std::int64_t> since_param(const ApiRequest& request, std::int64_t now_ms) {
  const auto since = query_param(request.target, "since");
  if (since.empty()) return now_ms - 30LL * 86'400'000;
  if (auto at = parse_rfc3339_ms(since)) return *at;
  auto back = parse_duration_ms(since);
  if (!back) return Error{fmt::format("since: '{}' is neither a duration (30d) nor a time", since)};
  return now_ms - *back;
}


}  // namespace

bool PlaybookApi::handles(std::string_view path) {
  for (std::string_view prefix :
       {"/api/v1/playbooks", "/api/v1/runs", "/api/v1/approvals", "/api/v1/cases"}) {
    if (path == prefix || (path.starts_with(prefix) && path[prefix.size()] == '/')) return true;
  }
  return false;
}

ApiResponse PlaybookApi::handle(const ApiRequest& request, std::string_view path,
                                const ApiTokenRecord& caller, const Deny& deny) {
  const auto& method = request.method;
  // Splits "/api/v1/<collection>/<id>/<verb>".
  std::vector<std::string> parts;
  for (std::string_view rest = path.substr(std::string_view("/api/v1/").size()); !rest.empty();) {
    const auto slash = rest.find('/');
    parts.emplace_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  const auto& collection = parts[0];
  if (parts.size() > 3) return error(404, "no such endpoint");
  if (collection == "playbooks" && parts.size() == 3) return playbook_view(parts, request);
  if (parts.size() >= 2 && !plausible_id(parts[1]) && parts[1] != "stats")
    return error(400, fmt::format("{} id must be a UUID", collection));

  if (collection == "playbooks") {
    if (method != "GET" || parts.size() != 1) return error(405, "use GET /api/v1/playbooks");
    json list = json::array();
    if (engine_ != nullptr) {
      for (const auto& p : engine_->playbooks()) {
        list.push_back({{"name", p.name},
                        {"version", p.version},
                        {"description", p.description},
                        {"owner", p.owner},
                        {"file", p.file.string()},
                        {"steps", p.steps.size()}});
      }
    }
    return reply(200, json{{"playbooks", list}});
  }
  if (collection == "runs") {
    if (parts.size() == 1) {
      if (method == "POST") return start_run(request, caller, deny);
      if (method != "GET") return error(405, "use GET or POST");
      auto page = page_param(request, 100, 10'000);
      if (!page) return error(400, page.error().message);
      auto runs = store_.list_runs(query_param(request.target, "case"),
                                   Page{page->fetch_limit(), page->offset});
      if (!runs) return error(500, runs.error().message);
      json body;
      page->finish(*runs, body);
      json list = json::array();
      for (const auto& r : *runs) list.push_back(run_json(r, nullptr));
      body["runs"] = std::move(list);
      return reply(200, body);
    }
    if (parts.size() == 3) {
      if (parts[2] != "cancel") return error(404, "no such endpoint");
      if (method != "POST") return error(405, "use POST");
      if (!has_role(caller, Role::responder)) return deny("cancelling runs", Role::responder);
      return cancel_run(parts[1], request, caller);
    }
    if (method != "GET") return error(405, "use GET");
    return show_run(parts[1]);
  }
  if (collection == "approvals") {
    if (parts.size() == 1) {
      if (method != "GET") return error(405, "use GET");
      auto page = page_param(request, 100, 10'000);
      if (!page) return error(400, page.error().message);
      auto list = store_.list_approvals(query_param(request.target, "state"),
                                        query_param(request.target, "case"),
                                        Page{page->fetch_limit(), page->offset});
      if (!list) return error(500, list.error().message);
      json body;
      page->finish(*list, body);
      json out = json::array();
      for (const auto& a : *list) out.push_back(approval_json(a));
      body["approvals"] = std::move(out);
      return reply(200, body);
    }
    if (parts.size() == 2) {
      if (method != "GET") return error(405, "use GET");
      auto found = store_.find_approval(parts[1]);
      if (!found) return error(500, found.error().message);
      if (!*found) return error(404, fmt::format("no approval {}", parts[1]));
      return reply(200, approval_json(**found));
    }
    if (parts[2] != "approve" && parts[2] != "deny") return error(404, "no such endpoint");
    if (method != "POST") return error(405, "use POST");
    if (!has_role(caller, Role::responder)) return deny("deciding approvals", Role::responder);
    return decide(parts[1], parts[2] == "approve", request, caller);
  }
  // cases
  if (parts.size() == 1) {
    if (method != "GET") return error(405, "use GET");
    return list_cases(request);
  }
  if (parts[1] == "stats") {
    if (method != "GET" || parts.size() != 2) return error(405, "use GET");
    return stats(request);
  }
  if (parts.size() == 3) {
    if (parts[2] != "report") return error(404, "no such endpoint");
    if (method != "GET") return error(405, "use GET");
    return report(parts[1], request);
  }
  if (method == "GET") return show_case(parts[1]);
  if (method != "POST") return error(405, "use GET or POST");
  if (!has_role(caller, Role::analyst)) return deny("editing cases", Role::analyst);
  return update_case(parts[1], request, caller);
}

ApiResponse PlaybookApi::start_run(const ApiRequest& request, const ApiTokenRecord& caller,
                                   const Deny& deny) {
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  auto playbook = string_field(*body, "playbook", 200);
  auto alert_id = string_field(*body, "alert_id", 200);
  if (!playbook || !alert_id) return error(400, (!playbook ? playbook : alert_id).error().message);
  if (playbook->empty() || alert_id->empty()) return error(400, "give 'playbook' and 'alert_id'");
  for (const char* flag : {"simulate", "force"}) {
    if (body->contains(flag) && !(*body)[flag].is_boolean())
      return error(400, fmt::format("'{}' must be true or false", flag));
  }
  const bool simulate = body->value("simulate", false);
  // Analysts may try a playbook out; acting on hosts is for responders.
  if (!has_role(caller, simulate ? Role::analyst : Role::responder)) {
    return simulate
               ? deny("starting playbooks", Role::analyst)
               : deny("starting playbooks that act (without \"simulate\": true)", Role::responder);
  }
  if (engine_ == nullptr) return error(503, "playbooks are not enabled on this controller");
  auto run =
      engine_->start(*playbook, *alert_id, caller.name, simulate, body->value("force", false));
  if (!run) {
    const auto& message = run.error().message;
    return error(message.starts_with("no ")                  ? 404
                 : message.starts_with("an unfinished run ") ? 409
                                                             : 422,
                 message);
  }
  return reply(201, run_json(*run, nullptr));
}

ApiResponse PlaybookApi::show_run(const std::string& id) {
  auto run = store_.find_run(id);
  if (!run) return error(500, run.error().message);
  if (!*run) return error(404, fmt::format("no playbook run {}", id));
  auto steps = store_.run_steps(id);
  if (!steps) return error(500, steps.error().message);
  auto actions = store_.run_actions(id);
  if (!actions) return error(500, actions.error().message);
  auto out = run_json(**run, &*steps);
  if ((**run).waiting_for == "approval") {
    // Why it waits (a ceiling, the alert's source, a rate limit): the pending request says.
    auto pending = store_.list_approvals("pending", (**run).case_id, 1000);
    if (pending) {
      for (const auto& a : *pending)
        if (a.run_id == id) out["waiting_on"] = approval_json(a);
    }
  }
  out["actions"] = json::array();
  for (const auto& a : *actions) out["actions"].push_back(action_json(a));
  return reply(200, out);
}

ApiResponse PlaybookApi::decide(const std::string& id, bool approve, const ApiRequest& request,
                                const ApiTokenRecord& caller) {
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  auto reason = string_field(*body, "reason");
  if (!reason) return error(400, reason.error().message);
  if (!approve && reason->find_first_not_of(" \t\r\n") == std::string::npos)
    return error(400, "a denial needs a 'reason'");
  const auto now = clock_.now_unix_ms();
  auto decided = store_.decide_approval(id, approve, caller.name, *reason, now);
  if (!decided) {
    const auto& message = decided.error().message;
    if (message.starts_with("no approval")) return error(404, message);
    // A refused decision (self-approval, already decided, expired) is on the record like a 403:
    // someone tried to decide what they may not.
    auto approval = store_.find_approval(id);
    const auto subject = approval && *approval ? (**approval).case_id : id;
    (void)store_.append_audit(
        {caller.name, approve ? "approval.approve_refused" : "approval.deny_refused", subject,
         json{{"approval_id", id}, {"reason", message}}.dump()},
        now);
    spdlog::warn("api: {} may not {} approval {}: {}", caller.name, approve ? "approve" : "deny",
                 id, message);
    return error(409, message);
  }
  spdlog::info("api: approval {} {} by {}", id, decided->state, caller.name);
  if (engine_ != nullptr) engine_->approval_decided(decided->run_id);
  return reply(200, approval_json(*decided));
}

ApiResponse PlaybookApi::cancel_run(const std::string& id, const ApiRequest& request,
                                    const ApiTokenRecord& caller) {
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  auto reason = string_field(*body, "reason");
  if (!reason) return error(400, reason.error().message);
  if (reason->find_first_not_of(" \t\r\n") == std::string::npos)
    return error(400, "cancelling a run needs a 'reason'");
  if (engine_ == nullptr) return error(503, "playbooks are not enabled on this controller");
  auto run = engine_->cancel(id, caller.name, *reason);
  if (!run) {
    const auto& message = run.error().message;
    if (is_database_failure(run.error())) return error(503, message);
    return error(message.starts_with("no playbook run") ? 404 : 409, message);
  }
  // Held by another controller sharing the store: asked of it, carried out at its next look.
  if (cancel_pending(*run)) return reply(202, run_json(*run, nullptr));
  return show_run(id);
}

ApiResponse PlaybookApi::playbook_view(const std::vector<std::string>& parts,
                                       const ApiRequest& request) {
  const auto& verb = parts[2];
  if (verb != "impact" && verb != "backtest") return error(404, "no such endpoint");
  if (verb == "impact" && request.method != "GET") return error(405, "use GET");
  if (verb == "backtest" && request.method != "POST") return error(405, "use POST");
  if (engine_ == nullptr) return error(404, "no playbooks are loaded on this controller");
  const auto* playbook = engine_->find(parts[1]);
  if (playbook == nullptr) return error(404, fmt::format("no playbook {}", parts[1]));
  if (verb == "impact") {
    auto agents = store_.list_agents();
    if (!agents) return error(500, agents.error().message);
    const auto view = merged_asset_view(*engine_->assets().current(), *agents);
    return reply(200, json{{"playbook", playbook->name},
                           {"impact", playbook_impact(*playbook, engine_->autonomy(), view)}});
  }
  // The backtest: what the playbook would do with these stored alerts, in the order given, under
  // this controller's policy (rate limits counted over them). Nothing is dispatched or stored.
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  const auto ids = body->value("alerts", json());
  if (!ids.is_array() || ids.empty() || ids.size() > 1000)
    return error(400, "give {\"alerts\": [alert ids]}, 1 to 1000 of them");
  ModeReplay modes(engine_->autonomy());
  json results = json::array();
  for (const auto& id : ids) {
    if (!id.is_string()) return error(400, "alert ids are strings");
    auto alert = store_.find_alert(id.get<std::string>());
    if (!alert) return error(500, alert.error().message);
    if (!*alert) return error(404, fmt::format("no alert {}", id.get<std::string>()));
    const auto shown = alert_json(**alert, /*with_raw=*/false);
    auto sim = simulate_playbook(*playbook, shown);
    modes.apply(*playbook, shown, sim);
    auto result = simulation_json(sim, id);
    result["rule"] = (*alert)->rule_name;
    result["host"] = (*alert)->host_name;
    results.push_back(std::move(result));
  }
  return reply(200, json{{"playbook", playbook->name}, {"results", results}});
}

ApiResponse PlaybookApi::list_cases(const ApiRequest& request) {
  auto since = since_param(request, clock_.now_unix_ms());
  if (!since) return error(400, since.error().message);
  auto page = page_param(request, 100, 10'000);
  if (!page) return error(400, page.error().message);
  CaseFilter filter{query_param(request.target, "status"), query_param(request.target, "severity"),
                    query_param(request.target, "host"), *since};
  auto cases = store_.list_cases(filter, Page{page->fetch_limit(), page->offset});
  if (!cases) return error(500, cases.error().message);
  json body;
  page->finish(*cases, body);
  json list = json::array();
  for (const auto& c : *cases) {
    auto summary = case_json(c);
    summary.erase("alerts");  // ids are on the case itself; a list carries alert_count
    list.push_back(std::move(summary));
  }
  body["cases"] = std::move(list);
  return reply(200, body);
}

ApiResponse PlaybookApi::show_case(const std::string& id) {
  auto found = store_.find_case(id);
  if (!found) return error(500, found.error().message);
  if (!*found) return error(404, fmt::format("no case with id {}", id));
  auto out = case_json(**found);
  auto runs = store_.list_runs(id, 100);
  auto notes = store_.case_notes(id);
  if (!runs || !notes) return error(500, (!runs ? runs.error() : notes.error()).message);
  out["runs"] = json::array();
  for (const auto& r : *runs) out["runs"].push_back(run_json(r, nullptr));
  out["notes"] = json::array();
  for (const auto& n : *notes)
    out["notes"].push_back(
        {{"at", format_utc_ms(n.at_ms)}, {"author", n.author}, {"text", n.text}});
  return reply(200, out);
}

ApiResponse PlaybookApi::update_case(const std::string& id, const ApiRequest& request,
                                     const ApiTokenRecord& caller) {
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  CaseChange change;
  for (auto [field, target] : {std::pair{"status", &change.status},
                               {"severity", &change.severity},
                               {"assignee", &change.assignee},
                               {"note", &change.note}}) {
    auto value = string_field(*body, field, 64 * 1024);
    if (!value) return error(400, value.error().message);
    *target = std::move(*value);
  }
  if (change.status.empty() && change.severity.empty() && change.assignee.empty() &&
      change.note.empty())
    return error(400, "give at least one of 'status', 'severity', 'assignee', 'note'");
  const json details{{"status", change.status},
                     {"severity", change.severity},
                     {"assignee", change.assignee},
                     {"note", change.note}};
  if (auto s = store_.update_case(id, change, caller.name,
                                  {caller.name, "case.updated", id,
                                   details.dump(-1, ' ', false, json::error_handler_t::replace)},
                                  clock_.now_unix_ms());
      !s) {
    const auto& message = s.error().message;
    return error(message.starts_with("no case") ? 404 : 400, message);
  }
  return show_case(id);
}

ApiResponse PlaybookApi::report(const std::string& id, const ApiRequest& request) {
  auto format = query_param(request.target, "format");
  if (format.empty()) format = "json";
  if (format != "json" && format != "md" && format != "html")
    return error(400, "format must be json, md or html");
  auto built = build_case_report(store_, id);
  if (!built) {
    const auto& message = built.error().message;
    return error(message.starts_with("no case") ? 404 : 500, message);
  }
  // The case's page in the console, for whoever reads the report later: at console.public_url,
  // else at the address the request named, if it named an IP address (a name in Host could be
  // anyone's, passed on by a proxy or rebound in DNS, and the report may be shared).
  const auto ip_host = [](const std::string& host) {
    const auto port = host.rfind(':');
    const bool bracketed = host.starts_with('[');
    const auto end = bracketed ? host.find(']') : (port == std::string::npos ? host.size() : port);
    if (end == std::string::npos) return false;
    const auto address = bracketed ? host.substr(1, end - 1) : host.substr(0, end);
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address(address, ec);
    const auto rest = host.substr(bracketed ? end + 1 : end);
    return !ec && (rest.empty() || (rest.size() > 1 && rest[0] == ':' &&
                                    rest.find_first_not_of("0123456789", 1) == std::string::npos));
  };
  const auto base = !console_url_.empty()   ? console_url_
                    : ip_host(request.host) ? "https://" + request.host
                                            : std::string();
  if (!base.empty()) (*built)["case"]["console_link"] = base + "/ui/cases/" + id;
  if (format == "json") return reply(200, *built);
  ApiResponse response;
  response.content_type =
      format == "md" ? "text/markdown; charset=utf-8" : "text/html; charset=utf-8";
  response.body = format == "md" ? render_case_markdown(*built) : render_case_html(*built);
  // The HTML report styles itself inline (it is one file to keep or mail) and runs nothing.
  if (format == "html") {
    response.headers.emplace_back("Content-Security-Policy",
                                  "default-src 'none'; style-src 'unsafe-inline'; "
                                  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  }
  return response;
}

ApiResponse PlaybookApi::stats(const ApiRequest& request) {
  const auto now = clock_.now_unix_ms();
  auto since = since_param(request, now);
  if (!since) return error(400, since.error().message);
  auto out = case_stats(store_, *since, now);
  if (!out) return error(500, out.error().message);
  return reply(200, *out);
}

}  // namespace riposte::controller
