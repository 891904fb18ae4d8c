#pragma once

// The HTTP API's request handling, free of I/O: a request in, a JSON response out. The Beast
// server (api/server.h) only moves bytes; this is what is tested without sockets.

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <variant>

#include "controller/api/console_files.h"
#include "controller/api/console_sessions.h"
#include "controller/api/failure_throttle.h"
#include "controller/api/metrics.h"
#include "controller/api/operator_auth.h"
#include "controller/api/playbook_routes.h"
#include "controller/api/router_types.h"
#include "controller/api/rule_set_routes.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/gateway/enrollment.h"
#include "controller/observables/ip_network.h"
#include "controller/playbooks/autonomy_policy.h"
#include "controller/store/store.h"

namespace riposte::controller {

class AlertApi;

struct ApiRouterDeps {
  Store& store;
  Enrollment& enrollment;
  OperatorAuth& auth;
  const Clock& clock;
  // Closes the live session of a revoked agent and refuses its next handshakes.
  std::function<void(const std::string& agent_id)> revoke_session;
  // Where enrolled agents should connect: host may be empty (use the host they enrolled with).
  std::string agent_gateway_host;
  unsigned agent_gateway_port = 0;
  ActionDispatcher* dispatcher = nullptr;
  EvidenceStore* evidence = nullptr;
  AlertApi* alerts = nullptr;                // alert, intel, asset and case routes
  const AutonomyPolicy* autonomy = nullptr;  // GET /api/v1/autonomy
  PlaybookEngine* engine = nullptr;          // runs; null: playbooks cannot start
  // POST /api/v1/rule-sets may carry this much (the other routes keep the server's limit).
  std::size_t max_rule_set_bytes = 64 * 1024 * 1024;
  // POST /api/v1/alerts may carry this much, for analysts and integrations.
  std::size_t max_alert_body_bytes = 16 * 1024 * 1024;
  // GET /metrics: what only the running controller knows (sessions, refused connections).
  LiveMetrics live_metrics;
  // GET /metrics without a token from these networks (config metrics.unauthenticated_from);
  // everyone else needs a token of any role but ingest.
  std::vector<IpNetwork> metrics_open_to;
  // The web console: its files at /ui/ (null or empty: not installed) and its sessions (null:
  // no sign-in, bearer tokens only).
  const ConsoleFiles* console = nullptr;
  ConsoleSessions* sessions = nullptr;
  // console.public_url: where links in reports point ("": the address a request came to).
  std::string console_public_url;
};

class ApiRouter {
 public:
  explicit ApiRouter(ApiRouterDeps deps);
  ApiResponse handle(const ApiRequest& request);
  // The server is stopping: long work under way (audit verification) gives up.
  void stop() { stopping_ = true; }
  // Whether the request's token may do `what` a heavy route does (any role but ingest; evidence:
  // responder; audit export: admin; alert intake: whoever may submit alerts). The server takes one
  // of a heavy route's few slots only for such a request: a client without a valid token, or one
  // the route will refuse, holds none.
  bool may_run_heavy(const ApiRequest& request, std::string_view path);
  // The body limit for a request whose header has arrived (`head.body` empty): the rule-set
  // limit for an upload by a caller allowed to upload, the alert limit for an alert batch by a
  // caller allowed to submit alerts, else `default_limit`. The caller is authenticated before
  // megabytes are read, so a stranger cannot make the server buffer them.
  std::size_t body_limit(const ApiRequest& head, std::size_t default_limit);

 private:
  std::atomic<bool> stopping_{false};
  // Who is asking: the bearer token's operator when the request has one, else the operator of
  // the console session in its cookie. `session` is set for a session: a request through it
  // that changes state must repeat its CSRF token.
  struct Caller {
    ApiTokenRecord record;
    std::optional<ConsoleSession> session;
  };
  Result<Caller> identify(const ApiRequest& request);
  // identify() behind the per-address throttle (429 while an address waits; a failure counts
  // toward it), answering 401 for nobody and 403 for a session's state change without its CSRF
  // token: the caller, or the refusal to send.
  std::variant<Caller, ApiResponse> authenticate(const ApiRequest& request,
                                                 const std::string& address, std::int64_t now);
  // POST (sign in with {"token"}), GET (who am I, the CSRF token), DELETE (sign out).
  ApiResponse route_session(const ApiRequest& request);

  ApiResponse enroll(const ApiRequest& request);
  ApiResponse route_alerts(const ApiRequest& request, std::string_view path,
                           const ApiTokenRecord& caller);
  ApiResponse list_agents(const ApiRequest& request);
  ApiResponse show_agent(const std::string& id);
  ApiResponse revoke_agent(const std::string& id, const ApiTokenRecord& caller);
  ApiResponse create_enrollment_token(const ApiRequest& request, const ApiTokenRecord& caller);
  ApiResponse create_actions(const ApiRequest& request, const ApiTokenRecord& caller);
  ApiResponse list_actions(const ApiRequest& request);
  ApiResponse show_action(const std::string& id);
  ApiResponse download_evidence(const std::string& sha256, const ApiTokenRecord& caller);
  // GET /api/v1/evidence/SHA/custody?after=SEQ&limit=N (limit 1..1000, default 500).
  ApiResponse evidence_custody(const std::string& sha256, int limit, std::int64_t after_seq);
  ApiResponse verify_audit();
  ApiResponse export_audit(const ApiRequest& request);
  ApiResponse route_operators(const ApiRequest& request, std::string_view path,
                              const ApiTokenRecord& caller);
  // 403 "WHAT needs the ROLE role; NAME is ROLE", and an audit entry saying who was refused what.
  ApiResponse deny(const ApiRequest& request, const ApiTokenRecord& caller, std::string_view what,
                   Role needed);

  // 429 "too many failed attempts from ADDRESS; retry in N s" (with Retry-After).
  static ApiResponse too_many(const std::string& address, int retry_after_s);

  ApiRouterDeps deps_;
  PlaybookApi playbooks_;  // playbook, run, approval and case routes
  RuleSetApi rule_sets_;
  // Failed authentications and enrollments per source address: 20 a minute, then 429.
  FailureThrottle failures_{20, 60'000};
  // Denials (403) already audited this minute per (caller, method, path): the first is written,
  // the rest counted and written as one entry when the next minute's first denial comes, so a
  // caller hammering a route cannot grow the audit log by thousands of entries a second.
  struct Denials {
    std::int64_t minute = 0;
    std::uint64_t repeated = 0;
  };
  std::mutex denials_mutex_;
  std::map<std::string, Denials> denials_;
};

// {"error": message}, for responses produced outside the router.
std::string json_error_body(std::string_view message);

}  // namespace riposte::controller
