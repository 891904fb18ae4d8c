#include "controller/api/router.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/duration.h"
#include "common/utf8.h"
#include "common/utc_time.h"
#include "controller/api/alert_routes.h"
#include "controller/store/audit_chain.h"
#include "protocol/action_catalog.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

ApiResponse reply(int status, const json& body) { return json_response(status, body); }
ApiResponse error(int status, std::string_view message) { return error_response(status, message); }
// The store's database failed (is_database_failure): the caller did nothing wrong, and is not
// counted as guessing or signed out.
ApiResponse database_unavailable() {
  return error(503, "the controller cannot reach its database; try again shortly");
}

json agent_json(const AgentRecord& a) {
  const char* status = a.revoked_at_ms ? "revoked" : (a.connected ? "online" : "offline");
  return json{
      {"id", a.id},
      {"hostname", a.facts.hostname},
      {"status", status},
      {"os", a.facts.os_name},
      {"os_version", a.facts.os_version},
      {"kernel", a.facts.kernel},
      {"arch", a.facts.arch},
      {"ip_addresses", a.facts.ip_addresses},
      {"mac_addresses", a.facts.mac_addresses},
      {"agent_version", a.facts.agent_version},
      {"protocol_version", a.facts.protocol_version},
      {"capabilities", a.facts.capabilities},
      {"connected", a.connected},
      {"connected_since", utc_or_null(a.connected_since_ms)},
      {"last_heartbeat", utc_or_null(a.last_heartbeat_ms)},
      {"last_seen", utc_or_null(a.last_seen_ms)},
      {"remote_address", a.remote_address},
      {"last_disconnect_reason", a.last_disconnect_reason},
      {"enrolled_at", format_utc_ms(a.enrolled_at_ms)},
      {"revoked_at", utc_or_null(a.revoked_at_ms)},
      {"cert_serial", a.cert_serial},
      {"cert_fingerprint", a.cert_fingerprint},
      {"labels", a.labels},
  };
}

// Labels: short names an operator gives agents ("web", "pci", "dc-paris").
Result<std::vector<std::string>> label_list(const json& value) {
  if (!value.is_array() || value.size() > 64) return Error{"'labels' must be a list of labels"};
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) return Error{"'labels' must hold strings"};
    const auto label = item.get<std::string>();
    const bool ok = !label.empty() && label.size() <= 64 &&
                    std::all_of(label.begin(), label.end(), [](unsigned char c) {
                      return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
                    });
    if (!ok) {
      return Error{fmt::format(
          "label '{}' must be 1-64 characters of letters, digits, '-', '_', '.' or ':'", label)};
    }
    if (std::find(out.begin(), out.end(), label) == out.end()) out.push_back(label);
  }
  return out;
}

}  // namespace

std::string json_error_body(std::string_view message) { return json{{"error", message}}.dump(); }

// Text that is not UTF-8 is written with U+FFFD in its place rather than failing the answer: a
// stored string cut mid-character (or any other slip) must not turn a list into a 500 for as
// long as the row is on it.
ApiResponse json_response(int status, const json& body) {
  return ApiResponse{status, body.dump(-1, ' ', false, json::error_handler_t::replace)};
}
ApiResponse error_response(int status, std::string_view message) {
  // A message may quote the request (a JSON parser's "last read: ..."), which need not be UTF-8.
  return json_response(status, json{{"error", as_utf8(message)}});
}
ApiResponse redirect_response(int status, std::string location) {
  ApiResponse moved{status, ""};
  moved.content_type = "text/plain";
  moved.headers.emplace_back("Location", std::move(location));
  return moved;
}

std::string percent_decode(std::string_view raw, bool plus_is_space) {
  std::string value;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '+' && plus_is_space) {
      value += ' ';
    } else if (raw[i] == '%' && i + 2 < raw.size() &&
               std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
      value += static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      value += raw[i];
    }
  }
  return value;
}

std::string query_param(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      if (eq == std::string_view::npos) return "";
      // Percent-decoding: lookups take URLs as values.
      return percent_decode(pair.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return "";
}

bool plausible_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

Result<json> parse_object(const std::string& body) {
  if (body.empty()) return json::object();
  auto parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Error{"request body is not valid JSON"};
  if (!parsed.is_object()) return Error{"request body must be a JSON object"};
  return parsed;
}

std::optional<std::int64_t> integer_param(std::string_view target, std::string_view name) {
  const auto text = query_param(target, name);
  if (text.empty() || text.size() > 18) return std::nullopt;
  for (char c : text)
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  return std::stoll(text);
}

Result<ListPage> page_param(const ApiRequest& request, int fallback, int max_limit) {
  ListPage page{fallback, 0};
  for (const char* name : {"limit", "offset"}) {
    if (query_param(request.target, name).empty()) continue;
    const auto value = integer_param(request.target, name);
    if (!value) return Error{fmt::format("{} must be a non-negative integer", name)};
    if (std::string_view(name) == "limit" && *value == 0) return Error{"limit must be at least 1"};
    if (std::string_view(name) == "limit")
      page.limit = static_cast<int>(std::clamp<std::int64_t>(*value, 1, max_limit));
    else
      page.offset = static_cast<int>(std::min<std::int64_t>(*value, 10'000'000));
  }
  return page;
}

ApiRouter::ApiRouter(ApiRouterDeps deps)
    : deps_(std::move(deps)),
      playbooks_(deps_.store, deps_.engine, deps_.clock, deps_.console_public_url),
      rule_sets_(deps_.store, deps_.dispatcher) {}

std::size_t ApiRouter::body_limit(const ApiRequest& head, std::size_t default_limit) {
  std::string_view path = head.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  const bool rule_set = is_rule_set_upload(head.method, path);
  const bool alerts = head.method == "POST" && path == "/api/v1/alerts";
  if (!rule_set && !alerts) return default_limit;
  auto identified = identify(head);
  if (!identified) {
    // Refused (413) before handle() sees it: a failed guess all the same (if it was one).
    if (!head.authorization.empty())
      failures_.failed(source_address(head.remote_address), deps_.clock.now_unix_ms());
    return default_limit;
  }
  const auto& caller = identified->record;
  if (alerts) {
    if (!has_role(caller, Role::analyst) && !is_integration(caller)) return default_limit;
    return std::max(default_limit, deps_.max_alert_body_bytes);
  }
  if (!has_role(caller, Role::responder)) return default_limit;
  return std::max(default_limit, deps_.max_rule_set_bytes);
}

bool ApiRouter::may_run_heavy(const ApiRequest& request, std::string_view path) {
  auto identified = identify(request);
  if (!identified) return false;
  if (path == "/api/v1/alerts") return may_submit_alerts(identified->record);
  if (is_integration(identified->record)) return false;
  if (path.starts_with("/api/v1/evidence/")) return has_role(identified->record, Role::responder);
  if (path == "/api/v1/audit") return has_role(identified->record, Role::admin);
  return true;
}

Result<ApiRouter::Caller> ApiRouter::identify(const ApiRequest& request) {
  if (!request.authorization.empty() || !deps_.sessions || request.cookie.empty()) {
    auto record = deps_.auth.authenticate(request.authorization);
    if (!record) return record.error();
    return Caller{std::move(*record), std::nullopt};
  }
  auto session = deps_.sessions->find(request.cookie);
  if (!session) return session.error();  // the store's: answered 503, the session kept
  if (!*session) return Error{"the console session has expired or was signed out; sign in again"};
  // The operator is read again on every request: disabled since, the session ends with it.
  auto record = deps_.auth.authenticate_hash((*session)->token_hash);
  if (!record) {
    if (!is_database_failure(record.error())) (void)deps_.sessions->close(request.cookie);
    return record.error();
  }
  return Caller{std::move(*record), std::move(*session)};
}

std::variant<ApiRouter::Caller, ApiResponse> ApiRouter::authenticate(const ApiRequest& request,
                                                                     const std::string& address,
                                                                     std::int64_t now) {
  // An address that guessed wrong too often waits before its next token is even looked at.
  if (const int wait = failures_.retry_after_s(address, now)) return too_many(address, wait);
  auto identified = identify(request);
  if (!identified && is_database_failure(identified.error())) {
    spdlog::error("api: cannot authenticate a request: {}", identified.error().message);
    return database_unavailable();
  }
  if (!identified) {
    // Only a bearer token that fails is a guess: a request that presents none, or a stale or
    // made-up session cookie (256 random bits, not worth guessing), is what any web page can
    // make a browser send (an <img> of an API URL), and must not spend its address's budget.
    if (!request.authorization.empty()) failures_.failed(address, now);
    return error(401, identified.error().message);
  }
  // A console request that changes state carries the session's CSRF token, which only the
  // console's own pages can read (GET /api/v1/session): a form or script on another site that
  // gets the browser to send the cookie cannot send it. (Not counted as a failure: the cookie
  // was valid, and a page elsewhere could otherwise lock the address out.)
  if (identified->session && request.method != "GET" &&
      !secrets_equal(request.csrf_token, identified->session->csrf_token)) {
    return error(403, "a console request that changes something needs the session's "
                      "X-CSRF-Token header");
  }
  return std::move(*identified);
}

namespace {
// Why a sign-in request is not from the console's own page, if it is not.
std::optional<std::string> cross_origin_sign_in(const ApiRequest& request) {
  std::string type = request.content_type.substr(0, request.content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (type != "application/json") return "sign in with a JSON body (Content-Type: application/json)";
  if (!request.fetch_site.empty() && request.fetch_site != "same-origin" &&
      request.fetch_site != "none")
    return "signing in is only possible from the console's own pages";
  if (!request.origin.empty() && request.origin != "https://" + request.host)
    return "signing in is only possible from the console's own pages";
  return std::nullopt;
}

// Whether a browser sent the request: browsers add Origin to cross-origin posts and
// Sec-Fetch-Site to everything; agents and the CLI send neither.
bool from_a_browser(const ApiRequest& request) {
  return !request.origin.empty() || !request.fetch_site.empty();
}
}  // namespace

ApiResponse ApiRouter::route_session(const ApiRequest& request) {
  const auto& method = request.method;
  const auto address = source_address(request.remote_address);
  const auto now = deps_.clock.now_unix_ms();
  if (!deps_.sessions) return error(404, "console sessions are not enabled on this controller");
  const auto session_json = [&](const ApiTokenRecord& who, const ConsoleSession& s) {
    return json{{"name", who.name},
                {"role", who.role},
                {"csrf_token", s.csrf_token},
                {"expires_at", format_utc_ms(s.expires_at_ms)}};
  };
  if (method == "POST") {
    // Only the console's own page signs in. A page elsewhere could otherwise sign a browser in
    // as someone else (its console then acts, and is audited, as that operator) or spend the
    // address's failed-attempt budget. A JSON body cannot be sent cross-origin without a CORS
    // preflight, which this API refuses; a browser's Origin and Sec-Fetch-Site say the rest.
    if (auto refused = cross_origin_sign_in(request)) return error(403, *refused);
    if (const int wait = failures_.retry_after_s(address, now)) return too_many(address, wait);
    auto body = parse_object(request.body);
    if (!body) return error(400, body.error().message);
    if (!body->contains("token") || !(*body)["token"].is_string() ||
        (*body)["token"].get<std::string>().empty())
      return error(400, "sign in with {\"token\": \"<your operator token>\"}");
    const auto secret = (*body)["token"].get<std::string>();
    auto record = deps_.auth.authenticate("Bearer " + secret);
    if (!record && is_database_failure(record.error())) return database_unavailable();
    if (!record) {
      failures_.failed(address, now);
      return error(401, record.error().message);
    }
    // Integrations submit alerts; they have nothing to see in a console.
    if (is_integration(*record))
      return deny(request, *record, "signing in to the console", Role::viewer);
    const auto session = deps_.sessions->open(record->token_hash, record->name);
    if (!session && is_database_failure(session.error())) return database_unavailable();
    if (!session) return error(500, session.error().message);
    if (auto s = deps_.store.append_audit(
            AuditEvent{record->name, "console.signed_in", record->name,
                       json{{"remote_address", address}, {"token_id", record->id}}.dump()},
            now);
        !s) {
      (void)deps_.sessions->close(fmt::format("{}={}", kSessionCookie, session->secret));
      return error(500, s.error().message);
    }
    auto response = reply(201, session_json(*record, *session));
    response.headers.emplace_back("Set-Cookie", deps_.sessions->set_cookie(*session));
    return response;
  }
  if (method != "GET" && method != "DELETE") return error(405, "use GET, POST or DELETE");
  // The session in the cookie (a bearer token is no session), as every other route reads it.
  auto caller = identify(request);
  // An outage is not a sign-out: the cookie stays, the console retries.
  if (!caller && is_database_failure(caller.error())) return database_unavailable();
  if (!caller || !caller->session) {
    auto response = error(401, caller ? "not signed in" : caller.error().message);
    response.headers.emplace_back("Set-Cookie", ConsoleSessions::clear_cookie());
    return response;
  }
  const auto& record = caller->record;
  const auto& session = caller->session;
  if (method == "GET") return reply(200, session_json(record, *session));
  // Signing out changes state: a page elsewhere must not be able to sign a responder out.
  if (!secrets_equal(request.csrf_token, session->csrf_token))
    return error(403, "signing out needs the session's X-CSRF-Token header");
  if (auto closed = deps_.sessions->close(request.cookie); !closed)
    return is_database_failure(closed.error()) ? database_unavailable()
                                               : error(500, closed.error().message);
  (void)deps_.store.append_audit(
      AuditEvent{record.name, "console.signed_out", record.name,
                 json{{"remote_address", address}}.dump()},
      now);
  auto response = reply(200, json{{"signed_out", true}});
  response.headers.emplace_back("Set-Cookie", ConsoleSessions::clear_cookie());
  return response;
}

ApiResponse ApiRouter::handle(const ApiRequest& request) {
  // Bodies are JSON (its parser refuses what is not UTF-8); the target is the other text a
  // request brings. Checked once decoded: every path segment and query value is a piece of it
  // cut at ASCII delimiters, so each is UTF-8 too. (Found by fuzz_http: a rule-set name or an
  // evidence path with a stray byte made the handlers that write them into JSON throw.)
  const auto decoded_target = percent_decode(request.target, true);
  if (!is_utf8(request.target) || !is_utf8(decoded_target))
    return error(400, "the request target is not UTF-8 (after percent-decoding)");
  // Nor does any path or query value hold a NUL (%00): PostgreSQL text cannot, and no name,
  // id or filter has one (found by a reviewer: a 500 quoting the store's error).
  if (decoded_target.find('\0') != std::string::npos)
    return error(400, "the request target holds a NUL byte (%00)");
  std::string_view path = request.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  const auto& method = request.method;

  if (path == "/healthz") {
    if (method != "GET") return error(405, "use GET");
    return reply(200, json{{"status", "ok"}});
  }
  const auto address = source_address(request.remote_address);
  const auto now = deps_.clock.now_unix_ms();
  if (path == "/metrics") {
    if (method != "GET") return error(405, "use GET");
    const bool open = std::any_of(deps_.metrics_open_to.begin(), deps_.metrics_open_to.end(),
                                  [&](const IpNetwork& n) { return n.contains(address); });
    if (!open) {
      auto caller = authenticate(request, address, now);
      if (auto* refused = std::get_if<ApiResponse>(&caller)) return std::move(*refused);
      const auto& record = std::get<Caller>(caller).record;
      if (is_integration(record))
        return deny(request, record, "anything but submitting alerts", Role::viewer);
    }
    auto counts = deps_.store.metrics();
    if (!counts) return error(500, counts.error().message);
    ApiResponse response;
    response.body = render_metrics(*counts, deps_.live_metrics);
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return response;
  }
  // Enrollment authenticates with the enrollment token in the body, not an operator token.
  if (path == "/api/v1/enroll") {
    if (method != "POST") return error(405, "use POST");
    // Agents enroll, browsers do not: a web page's posts here would only spend the address's
    // failed-attempt budget.
    if (from_a_browser(request)) return error(403, "enrollment is for agents, not browsers");
    if (const int wait = failures_.retry_after_s(address, now)) return too_many(address, wait);
    auto response = enroll(request);
    // A wrong token or a bad request; not the controller's own database outage (503).
    if (response.status >= 400 && response.status != 503) failures_.failed(address, now);
    return response;
  }
  // The web console: public files (the data they show comes from the API below, signed in).
  if (path == "/" || path == "/ui" || path.starts_with("/ui/")) {
    if (method != "GET") return error(405, "use GET");
    if (path == "/") return redirect_response(302, "/ui/");
    if (!deps_.console) return error(404, "the web console is not enabled on this controller");
    return deps_.console->serve(path);
  }
  if (path == "/api/v1/session") return route_session(request);
  if (!path.starts_with("/api/v1/")) return error(404, "no such endpoint");

  auto identified = authenticate(request, address, now);
  if (auto* refused = std::get_if<ApiResponse>(&identified)) return std::move(*refused);
  const ApiTokenRecord* caller = &std::get<Caller>(identified).record;
  // Every route below reads (any role) unless it checks `needs` first.
  const auto needs = [&](Role role) { return has_role(*caller, role); };
  // An integration's token submits alerts and nothing else: a stolen forwarder token reads
  // nothing and starts nothing beyond what its max mode allows.
  if (is_integration(*caller) && !(path == "/api/v1/alerts" && method == "POST"))
    return deny(request, *caller, "anything but submitting alerts", Role::viewer);

  if (path == "/api/v1/agents") {
    if (method != "GET") return error(405, "use GET");
    return list_agents(request);
  }
  if (path == "/api/v1/action-kinds") {
    if (method != "GET") return error(405, "use GET");
    return reply(200, json{{"kinds", action_catalog::kinds_json()}});
  }
  if (path == "/api/v1/enrollment-tokens") {
    if (method != "POST") return error(405, "use POST");
    if (!needs(Role::admin))
      return deny(request, *caller, "creating enrollment tokens", Role::admin);
    return create_enrollment_token(request, *caller);
  }
  if (path == "/api/v1/actions") {
    if (method == "GET") return list_actions(request);
    if (method != "POST") return error(405, "use GET or POST");
    if (!needs(Role::responder)) return deny(request, *caller, "running actions", Role::responder);
    return create_actions(request, *caller);
  }
  constexpr std::string_view kActions = "/api/v1/actions/";
  if (path.starts_with(kActions)) {
    const std::string id(path.substr(kActions.size()));
    if (!plausible_id(id)) return error(400, "action id must be a UUID");
    if (method != "GET") return error(405, "use GET");
    return show_action(id);
  }
  constexpr std::string_view kRuleSets = "/api/v1/rule-sets";
  if (path == kRuleSets) {
    if (method == "GET") return rule_sets_.list(request);
    if (method != "POST") return error(405, "use GET or POST");
    if (!needs(Role::responder))
      return deny(request, *caller, "uploading rule sets", Role::responder);
    return rule_sets_.upload(request, caller->name);
  }
  if (path.starts_with(std::string(kRuleSets) + "/")) {
    if (method != "GET") return error(405, "use GET");
    return rule_sets_.show(path.substr(kRuleSets.size() + 1));
  }
  constexpr std::string_view kEvidence = "/api/v1/evidence/";
  if (path.starts_with(kEvidence)) {
    if (method != "GET") return error(405, "use GET");
    std::string_view rest = path.substr(kEvidence.size());
    if (rest.ends_with("/custody")) {
      const auto limit = integer_param(request.target, "limit").value_or(500);
      const auto after = integer_param(request.target, "after").value_or(0);
      if (limit < 1) return error(400, "limit must be at least 1");
      return evidence_custody(std::string(rest.substr(0, rest.size() - 8)),
                              static_cast<int>(std::min<std::int64_t>(limit, 1000)), after);
    }
    // Memory images and collected files hold secrets (passwords, keys, personal data): their
    // bytes are for responders; everyone else sees hashes, sizes and custody.
    if (!needs(Role::responder))
      return deny(request, *caller, "downloading evidence", Role::responder);
    return download_evidence(std::string(rest), *caller);
  }
  if (path == "/api/v1/audit/verify") {
    if (method != "GET") return error(405, "use GET");
    return verify_audit();
  }
  if (path == "/api/v1/audit") {
    if (method != "GET") return error(405, "use GET");
    if (!needs(Role::admin)) return deny(request, *caller, "exporting the audit log", Role::admin);
    return export_audit(request);
  }
  if (path == "/api/v1/autonomy") {
    if (method != "GET") return error(405, "use GET");
    return reply(200, deps_.autonomy ? autonomy_policy_json(*deps_.autonomy)
                                     : autonomy_policy_json(AutonomyPolicy{}));
  }
  if (path == "/api/v1/operators" || path.starts_with("/api/v1/operators/") ||
      path == "/api/v1/integrations" || path.starts_with("/api/v1/integrations/")) {
    if (!needs(Role::admin))
      return deny(request, *caller, "managing operators and integrations", Role::admin);
    return route_operators(request, path, *caller);
  }
  if (PlaybookApi::handles(path)) {
    return playbooks_.handle(request, path, *caller, [&](std::string_view what, Role role) {
      return deny(request, *caller, what, role);
    });
  }
  if (path.starts_with("/api/v1/alerts") || path.starts_with("/api/v1/intel") ||
      path == "/api/v1/assets") {
    return route_alerts(request, path, *caller);
  }
  constexpr std::string_view kAgents = "/api/v1/agents/";
  if (path.starts_with(kAgents)) {
    std::string_view rest = path.substr(kAgents.size());
    const auto slash = rest.find('/');
    const std::string id(rest.substr(0, slash));
    const std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (!plausible_id(id)) return error(400, "agent id must be a UUID");
    if (action.empty()) {
      if (method != "GET") return error(405, "use GET");
      return show_agent(id);
    }
    if (action == "labels") {
      if (method != "POST") return error(405, "use POST");
      if (!needs(Role::admin)) return deny(request, *caller, "labelling agents", Role::admin);
      auto body = parse_object(request.body);
      if (!body) return error(400, body.error().message);
      auto labels = label_list(body->value("labels", json()));
      if (!labels) return error(400, labels.error().message);
      if (auto s = deps_.store.set_agent_labels(
              id, *labels, {caller->name, "agent.labeled", id, json{{"labels", *labels}}.dump()},
              deps_.clock.now_unix_ms());
          !s) {
        return error(s.error().message.starts_with("no agent") ? 404 : 500, s.error().message);
      }
      return show_agent(id);
    }
    if (action == "revoke") {
      if (method != "POST") return error(405, "use POST");
      if (!needs(Role::admin)) return deny(request, *caller, "revoking agents", Role::admin);
      return revoke_agent(id, *caller);
    }
  }
  return error(404, "no such endpoint");
}

ApiResponse ApiRouter::route_alerts(const ApiRequest& request, std::string_view path,
                                    const ApiTokenRecord& caller) {
  if (deps_.alerts == nullptr) return error(404, "alerts are not enabled on this controller");
  auto& api = *deps_.alerts;
  const auto& method = request.method;
  if (path == "/api/v1/alerts") {
    if (method == "GET") return api.list(request);
    if (method != "POST") return error(405, "use GET or POST");
    if (!may_submit_alerts(caller))
      return deny(request, caller, "submitting alerts", Role::analyst);
    return api.submit(request, caller);
  }
  constexpr std::string_view kAlert = "/api/v1/alerts/";
  if (path.starts_with(kAlert)) {
    if (method != "GET") return error(405, "use GET");
    const std::string id(path.substr(kAlert.size()));
    if (id.empty() || id.size() > 128 || id.find('/') != std::string::npos)
      return error(400, "alert id must be a plain token");
    return api.show(id);
  }
  if (path == "/api/v1/intel/lookup") {
    if (method != "GET") return error(405, "use GET");
    return api.lookup(request);
  }
  if (path == "/api/v1/intel/feeds") {
    if (method != "GET") return error(405, "use GET");
    return api.feeds();
  }
  if (path == "/api/v1/intel/reload") {
    if (method != "POST") return error(405, "use POST");
    if (!has_role(caller, Role::admin))
      return deny(request, caller, "reloading intel feeds", Role::admin);
    return api.reload(caller.name);
  }
  if (path == "/api/v1/assets") {
    if (method != "GET") return error(405, "use GET");
    return api.assets();
  }
  return error(404, "no such endpoint");
}

ApiResponse ApiRouter::enroll(const ApiRequest& request) {
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  EnrollmentRequest er;
  for (auto [field, target] :
       {std::pair{"token", &er.token}, {"csr_pem", &er.csr_pem}, {"hostname", &er.hostname}}) {
    if (!body->contains(field)) continue;
    if (!(*body)[field].is_string()) return error(400, fmt::format("'{}' must be a string", field));
    *target = (*body)[field].get<std::string>();
  }
  auto grant = deps_.enrollment.enroll(er);
  if (!grant) {
    spdlog::warn("api: enrollment from {} refused: {}", request.remote_address,
                 grant.error().message);
    if (is_database_failure(grant.error())) return database_unavailable();
    const bool token_problem = grant.error().message.find("token") != std::string::npos;
    return error(token_problem ? 403 : 400, grant.error().message);
  }
  spdlog::info("api: enrolled agent {} ({}) from {}", grant->agent_id, er.hostname,
               request.remote_address);
  return reply(201, json{{"agent_id", grant->agent_id},
                         {"certificate_pem", grant->certificate_pem},
                         {"ca_certificate_pem", grant->ca_certificate_pem},
                         {"action_public_key_pem", grant->action_public_key_pem},
                         {"agent_gateway_host", deps_.agent_gateway_host},
                         {"agent_gateway_port", deps_.agent_gateway_port}});
}

ApiResponse ApiRouter::list_agents(const ApiRequest& request) {
  // Without ?limit= every agent (what the CLI lists); the console asks for pages.
  auto page = page_param(request, 1'000'000, 1'000'000);
  if (!page) return error(400, page.error().message);
  const auto status = query_param(request.target, "status");
  const auto label = query_param(request.target, "label");
  const auto host = query_param(request.target, "q");  // part of the hostname
  if (!status.empty() && status != "online" && status != "offline" && status != "revoked")
    return error(400, "status must be online, offline or revoked");
  // One page from the store, filtered and counted there: a page of a 50,000-agent fleet must not
  // read the whole fleet.
  auto found = deps_.store.find_agents({status, label, host}, Page{page->fetch_limit(), page->offset});
  if (!found) return error(500, found.error().message);
  json body;
  body["total"] = found->total;
  auto& rows = found->agents;
  page->finish(rows, body);
  json list = json::array();
  for (const auto& a : rows) list.push_back(agent_json(a));
  body["agents"] = std::move(list);
  return reply(200, body);
}

ApiResponse ApiRouter::show_agent(const std::string& id) {
  auto agent = deps_.store.find_agent(id);
  if (!agent) return error(500, agent.error().message);
  if (!agent->has_value()) return error(404, fmt::format("no agent with id {}", id));
  auto out = agent_json(**agent);
  auto network = deps_.store.last_network_action(id);
  if (!network) return error(500, network.error().message);
  out["network"] = *network ? json{{"last_action", (*network)->kind},
                                   {"action_id", (*network)->id},
                                   {"at", utc_or_null((*network)->finished_at_ms)},
                                   {"quarantined", (*network)->kind == "network.quarantine"}}
                            : json{{"last_action", nullptr}, {"quarantined", false}};
  return reply(200, out);
}

ApiResponse ApiRouter::revoke_agent(const std::string& id, const ApiTokenRecord& caller) {
  if (auto s = deps_.store.revoke_agent(id, deps_.clock.now_unix_ms()); !s) {
    const bool unknown = s.error().message.starts_with("no agent");
    return error(unknown ? 404 : 500, s.error().message);
  }
  if (deps_.revoke_session) deps_.revoke_session(id);
  spdlog::info("api: agent {} revoked by {}", id, caller.name);
  return show_agent(id);
}

ApiResponse ApiRouter::create_enrollment_token(const ApiRequest& request,
                                               const ApiTokenRecord& caller) {
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  int uses = 1;
  std::string ttl = "24h";
  if (body->contains("uses")) {
    if (!(*body)["uses"].is_number_integer()) return error(400, "'uses' must be an integer");
    const auto value = (*body)["uses"].get<std::int64_t>();
    if (value < 1 || value > Enrollment::kMaxUses) {
      return error(400, fmt::format("'uses' must be between 1 and {}", Enrollment::kMaxUses));
    }
    uses = static_cast<int>(value);
  }
  if (body->contains("ttl")) {
    if (!(*body)["ttl"].is_string()) return error(400, "'ttl' must be a string like \"24h\"");
    ttl = (*body)["ttl"].get<std::string>();
  }
  auto ttl_ms = parse_duration_ms(ttl);
  if (!ttl_ms) return error(400, ttl_ms.error().message);
  std::vector<std::string> labels;
  if (body->contains("labels")) {
    auto checked = label_list((*body)["labels"]);
    if (!checked) return error(400, checked.error().message);
    labels = std::move(*checked);
  }
  auto token = deps_.enrollment.create_token(uses, *ttl_ms, caller.name, labels);
  if (!token) return error(400, token.error().message);
  // Who may enroll how many agents, and which labels (fan-out targets) they get: audited.
  if (auto s = deps_.store.append_audit(
          {caller.name, "enrollment_token.created", token->record.id,
           json{{"uses", uses},
                {"expires_at", format_utc_ms(token->record.expires_at_ms)},
                {"labels", labels}}
               .dump()},
          deps_.clock.now_unix_ms());
      !s)
    spdlog::error("api: cannot audit enrollment token {}: {}", token->record.id,
                  s.error().message);
  spdlog::info("api: enrollment token {} created by {} ({} uses, expires {}, labels [{}])",
               token->record.id, caller.name, uses, format_utc_ms(token->record.expires_at_ms),
               fmt::join(labels, ", "));
  return reply(201, json{{"id", token->record.id},
                         {"token", token->secret},
                         {"uses", token->record.max_uses},
                         {"labels", labels},
                         {"expires_at", format_utc_ms(token->record.expires_at_ms)}});
}

ApiResponse ApiRouter::deny(const ApiRequest& request, const ApiTokenRecord& caller,
                            std::string_view what, Role needed) {
  std::string_view path = request.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  const auto why = fmt::format("{} needs the {} role; {} is {}", what, role_name(needed),
                               caller.name, caller.role);
  const auto now = deps_.clock.now_unix_ms();
  // The first denial of (caller, method, path) in a minute is written; the rest of that minute
  // are counted and go into the next written one as "repeated_before".
  std::uint64_t repeated_before = 0;
  bool write = false;
  {
    std::lock_guard lock(denials_mutex_);
    // Grouped by route, not exact path: /api/v1/operators/x1, /x2, ... are one route.
    std::string_view route = path;
    for (std::size_t at = 0, slashes = 0; at < path.size(); ++at) {
      if (path[at] == '/' && ++slashes == 4) {
        route = path.substr(0, at);
        break;
      }
    }
    if (denials_.size() > 10'000) {  // forget callers not denied this minute
      std::erase_if(denials_,
                    [&](const auto& entry) { return entry.second.minute != now / 60'000; });
    }
    auto& d = denials_[caller.name + " " + request.method + " " + std::string(route)];
    if (d.minute != now / 60'000) {
      repeated_before = d.repeated;
      d = {now / 60'000, 0};
      write = true;
    } else {
      ++d.repeated;
    }
  }
  if (write) {
    json details{{"method", request.method}, {"role", caller.role}, {"reason", why}};
    if (repeated_before > 0) details["repeated_before"] = repeated_before;
    (void)deps_.store.append_audit({caller.name, "api.denied", std::string(path), details.dump()},
                                   now);
    spdlog::warn("api: {} ({}) denied {} {}: {}", caller.name, caller.role, request.method, path,
                 why);
  }
  return error(403, why);
}

ApiResponse ApiRouter::too_many(const std::string& address, int retry_after_s) {
  auto response = error(
      429, fmt::format("too many failed attempts from {}; retry in {} s", address, retry_after_s));
  response.retry_after_s = retry_after_s;
  return response;
}

namespace {

json operator_json(const OperatorRecord& op) {
  return json{{"name", op.name},
              {"role", op.role},
              {"created_at", format_utc_ms(op.created_at_ms)},
              {"created_by", op.created_by},
              {"disabled_at", utc_or_null(op.disabled_at_ms)},
              {"disabled_by", op.disabled_at_ms ? json(op.disabled_by) : json(nullptr)},
              {"tokens", op.tokens},
              {"max_mode", op.max_mode.empty() ? json(nullptr) : json(op.max_mode)}};
}

}  // namespace

ApiResponse ApiRouter::route_operators(const ApiRequest& request, std::string_view path,
                                       const ApiTokenRecord& caller) {
  const auto& method = request.method;
  // /api/v1/integrations is the same collection seen through role `ingest`.
  const bool integrations = path.starts_with("/api/v1/integrations");
  const std::string_view collection = integrations ? "/api/v1/integrations" : "/api/v1/operators";
  const auto shown = [&](const OperatorRecord& op) { return !integrations || op.role == "ingest"; };
  if (path == collection) {
    if (method == "GET") {
      auto operators = deps_.auth.list_operators();
      if (!operators) return error(500, operators.error().message);
      json list = json::array();
      for (const auto& op : *operators)
        if (shown(op)) list.push_back(operator_json(op));
      return reply(200, json{{integrations ? "integrations" : "operators", list}});
    }
    if (method != "POST") return error(405, "use GET or POST");
    auto body = parse_object(request.body);
    if (!body) return error(400, body.error().message);
    for (const char* field : {"name", integrations ? "max_mode" : "role"}) {
      if (integrations && std::string_view(field) == "max_mode" && !body->contains(field))
        continue;  // default below
      if (!body->contains(field) || !(*body)[field].is_string())
        return error(400, fmt::format("'{}' must be a string", field));
    }
    const auto name = (*body)["name"].get<std::string>();
    auto created =
        integrations
            ? deps_.auth.create_integration(name, body->value("max_mode", "approve"), caller.name)
            : deps_.auth.create_operator(name, (*body)["role"].get<std::string>(), caller.name);
    if (!created) {
      const auto& message = created.error().message;
      return error(message.ends_with(" exists") ? 409 : 400, message);
    }
    spdlog::info("api: {} created {} {} ({}{})", caller.name,
                 integrations ? "integration" : "operator", created->record.name,
                 created->record.role,
                 created->record.max_mode.empty() ? "" : ", max mode " + created->record.max_mode);
    json out{{"name", created->record.name},
             {"role", created->record.role},
             {"token", created->secret},
             {"created_at", format_utc_ms(created->record.created_at_ms)}};
    if (integrations) out["max_mode"] = created->record.max_mode;
    return reply(201, out);
  }
  std::string_view rest = path.substr(collection.size());
  if (!rest.starts_with("/") || !rest.ends_with("/disable")) return error(404, "no such endpoint");
  if (method != "POST") return error(405, "use POST");
  const auto name =
      percent_decode(rest.substr(1, rest.size() - 1 - std::string_view("/disable").size()), false);
  auto operators = deps_.auth.list_operators();
  if (!operators) return error(500, operators.error().message);
  const auto named = [&](const OperatorRecord& op) { return op.name == name && shown(op); };
  if (std::none_of(operators->begin(), operators->end(), named))
    return error(404, fmt::format("no {} {}", integrations ? "integration" : "operator", name));
  if (auto s = deps_.auth.disable_operator(name, caller.name); !s) {
    auto message = s.error().message;
    if (integrations && message.starts_with("operator "))
      message = "integration " + message.substr(std::string_view("operator ").size());
    return error(message.starts_with("no operator") ? 404 : 409, message);
  }
  spdlog::info("api: {} disabled {} {}", caller.name, integrations ? "integration" : "operator",
               name);
  operators = deps_.auth.list_operators();
  if (!operators) return error(500, operators.error().message);
  for (const auto& op : *operators) {
    if (op.name == name) return reply(200, operator_json(op));
  }
  return error(404, fmt::format("no operator {}", name));
}

ApiResponse ApiRouter::create_actions(const ApiRequest& request, const ApiTokenRecord& caller) {
  if (deps_.dispatcher == nullptr) return error(503, "action dispatch is not available");
  auto body = parse_object(request.body);
  if (!body) return error(400, body.error().message);
  ActionSubmission submission;
  submission.requester = caller.name;
  const auto& b = *body;
  if (!b.contains("kind") || !b["kind"].is_string()) return error(400, "'kind' must be a string");
  submission.kind = b["kind"].get<std::string>();
  const bool has_agents = b.contains("agents");
  const bool has_labels = b.contains("labels");
  if (!has_agents && !has_labels) return error(400, "give 'agents' (ids) or 'labels' or both");
  if (has_agents) {
    if (!b["agents"].is_array()) return error(400, "'agents' must be a list of agent ids");
    if (b["agents"].size() > 10'000) return error(400, "at most 10000 agents per request");
    for (const auto& id : b["agents"]) {
      if (!id.is_string() || !plausible_id(id.get<std::string>()))
        return error(400, "'agents' must hold agent ids (UUIDs)");
      submission.agent_ids.push_back(id.get<std::string>());
    }
  }
  if (has_labels) {
    auto labels = label_list(b["labels"]);
    if (!labels) return error(400, labels.error().message);
    submission.labels = std::move(*labels);
  }
  if (b.contains("parameters")) {
    if (!b["parameters"].is_object()) return error(400, "'parameters' must be an object");
    submission.parameters = b["parameters"];
  }
  if (b.contains("ttl")) {
    if (!b["ttl"].is_string()) return error(400, "'ttl' must be a string like \"5m\"");
    auto ttl = parse_duration_ms(b["ttl"].get<std::string>());
    if (!ttl) return error(400, ttl.error().message);
    submission.ttl_ms = *ttl;
  }
  for (auto [field, target] : {std::pair{"case_id", &submission.case_id},
                               {"playbook_run_id", &submission.playbook_run_id}}) {
    if (!b.contains(field)) continue;
    if (!b[field].is_string() || b[field].get<std::string>().size() > 128)
      return error(400, fmt::format("'{}' must be a string of at most 128 characters", field));
    *target = b[field].get<std::string>();
  }
  auto actions = deps_.dispatcher->submit(submission);
  if (!actions) {
    const bool unknown_agent = actions.error().message.starts_with("no agent");
    return error(unknown_agent ? 404 : 400, actions.error().message);
  }
  json list = json::array();
  for (const auto& a : *actions) list.push_back(action_json(a));
  return reply(201, json{{"batch_id", actions->front().batch_id}, {"actions", list}});
}

ApiResponse ApiRouter::list_actions(const ApiRequest& request) {
  auto page = page_param(request, 100, 1000);
  if (!page) return error(400, page.error().message);
  auto actions = deps_.store.list_actions(Page{page->fetch_limit(), page->offset});
  if (!actions) return error(500, actions.error().message);
  json body;
  page->finish(*actions, body);
  json list = json::array();
  for (const auto& a : *actions) list.push_back(action_json(a));
  body["actions"] = std::move(list);
  return reply(200, body);
}

ApiResponse ApiRouter::show_action(const std::string& id) {
  auto action = deps_.store.find_action(id);
  if (!action) return error(500, action.error().message);
  if (!action->has_value()) return error(404, fmt::format("no action with id {}", id));
  return reply(200, action_json(**action));
}

ApiResponse ApiRouter::download_evidence(const std::string& sha256, const ApiTokenRecord& caller) {
  if (deps_.evidence == nullptr) return error(503, "evidence store is not available");
  if (!is_sha256_hex(sha256)) return error(400, "evidence id must be a lowercase SHA-256 hash");
  auto records = deps_.store.find_evidence(sha256);
  if (!records) return error(500, records.error().message);
  if (records->empty()) return error(404, fmt::format("no evidence {}", sha256));
  auto path = deps_.evidence->verified_path(sha256);
  if (!path) {
    const bool missing = path.error().message.starts_with("no stored");
    return error(missing ? 404 : 500,
                 missing ? "evidence is not (yet) stored: its upload has not completed"
                         : path.error().message);
  }
  (void)deps_.store.append_audit(
      {caller.name, "evidence.downloaded", sha256,
       json{{"size", records->front().size}, {"sha256_checked", true}}.dump()},
      deps_.clock.now_unix_ms());
  spdlog::info("api: evidence {} downloaded by {}", sha256, caller.name);
  ApiResponse response;
  response.content_type = "application/octet-stream";
  response.file = *path;
  return response;
}

ApiResponse ApiRouter::evidence_custody(const std::string& sha256, int limit,
                                        std::int64_t after_seq) {
  if (!is_sha256_hex(sha256)) return error(400, "evidence id must be a lowercase SHA-256 hash");
  auto records = deps_.store.find_evidence(sha256);
  if (!records) return error(500, records.error().message);
  if (records->empty()) return error(404, fmt::format("no evidence {}", sha256));
  // Paged (?after=SEQ&limit=N): the entries about one object are as many as its agent's offers
  // and its downloads, which no one bounds in advance.
  auto events = deps_.store.audit_entries_about(sha256, limit + 1, after_seq);
  if (!events) return error(500, events.error().message);
  const bool more = events->size() > static_cast<std::size_t>(limit);
  if (more) events->resize(static_cast<std::size_t>(limit));
  json produced = json::array();
  for (const auto& r : *records) {
    produced.push_back({{"action_id", r.action_id},
                        {"agent_id", r.agent_id},
                        {"name", r.name},
                        {"size", r.size},
                        {"stored", r.stored},
                        {"offered_at", format_utc_ms(r.offered_at_ms)},
                        {"stored_at", utc_or_null(r.stored_at_ms)}});
  }
  json custody = json::array();
  for (const auto& e : *events) {
    custody.push_back({{"seq", e.seq},
                       {"at", format_utc_ms(e.at_ms)},
                       {"actor", e.actor},
                       {"event", e.event},
                       {"details", parse_json_or(e.details, json(e.details))}});
  }
  return reply(200, json{{"sha256", sha256},
                         {"size", records->front().size},
                         {"produced_by", produced},
                         {"custody", custody},
                         {"next_after", more ? json(events->back().seq) : json(nullptr)}});
}

ApiResponse ApiRouter::verify_audit() {
  auto report = verify_audit_chain(deps_.store, &stopping_);
  if (!report) return error(500, report.error().message);
  return reply(200,
               json{{"ok", !report->first_broken_seq.has_value()},
                    {"entries_verified", report->entries},
                    {"first_broken_seq",
                     report->first_broken_seq ? json(*report->first_broken_seq) : json(nullptr)},
                    {"problem", report->problem},
                    {"head_hash", report->head_hash}});
}

ApiResponse ApiRouter::export_audit(const ApiRequest& request) {
  const auto after = integer_param(request.target, "after").value_or(0);
  const auto limit =
      std::clamp<std::int64_t>(integer_param(request.target, "limit").value_or(10'000), 1, 100'000);
  auto entries = deps_.store.audit_entries(after, static_cast<int>(limit));
  if (!entries) return error(500, entries.error().message);
  ApiResponse response;
  response.content_type = "application/x-ndjson";
  for (const auto& e : *entries) {
    response.body += json{
        {"seq", e.seq},
        {"at", format_utc_ms(e.at_ms)},
        {"at_ms", e.at_ms},
        {"actor", e.actor},
        {"event", e.event},
        {"subject", e.subject},
        {"details", parse_json_or(e.details, json(e.details))},
        {"details_text", e.details},
        {"prev_hash", e.prev_hash},
        {"hash", e.hash}}.dump();
    response.body += '\n';
  }
  return response;
}

}  // namespace riposte::controller
