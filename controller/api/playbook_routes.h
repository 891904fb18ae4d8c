#pragma once

// The API's playbook, run, approval and case routes (README "API"):
//   GET  /api/v1/playbooks                      loaded playbooks
//   POST /api/v1/runs {playbook, alert_id, simulate}   analyst (simulate only) / responder
//   GET  /api/v1/runs[?case=ID]  /api/v1/runs/ID (steps and actions)
//   GET  /api/v1/approvals[?state=pending&case=ID]  /api/v1/approvals/ID
//   POST /api/v1/approvals/ID/approve|deny {reason}    responder, not the run's starter
//   GET  /api/v1/cases[?status=S&since=30d]  /api/v1/cases/ID  /api/v1/cases/ID/report?format=
//   POST /api/v1/cases/ID {status, severity, assignee, note}   analyst
//   GET  /api/v1/cases/stats?since=30d
// Reads need any role; the role each write needs is checked here and refused through `deny`.

#include <functional>
#include <string>
#include <vector>

#include "controller/api/operator_auth.h"
#include "controller/api/router_types.h"
#include "controller/playbooks/engine.h"

namespace riposte::controller {

class PlaybookApi {
 public:
  using Deny = std::function<ApiResponse(std::string_view what, Role needed)>;

  // `console_url`: where people open the console (console.public_url), for the links reports
  // carry; empty: the address the request came to.
  PlaybookApi(Store& store, PlaybookEngine* engine, const Clock& clock, std::string console_url)
      : store_(store), engine_(engine), clock_(clock), console_url_(std::move(console_url)) {}

  // Whether `path` is one of these routes.
  static bool handles(std::string_view path);
  ApiResponse handle(const ApiRequest& request, std::string_view path, const ApiTokenRecord& caller,
                     const Deny& deny);

 private:
  ApiResponse start_run(const ApiRequest& request, const ApiTokenRecord& caller, const Deny& deny);
  ApiResponse show_run(const std::string& id);
  ApiResponse decide(const std::string& id, bool approve, const ApiRequest& request,
                     const ApiTokenRecord& caller);
  ApiResponse cancel_run(const std::string& id, const ApiRequest& request,
                         const ApiTokenRecord& caller);
  // GET /api/v1/playbooks/{name}/impact, POST /api/v1/playbooks/{name}/backtest.
  ApiResponse playbook_view(const std::vector<std::string>& parts, const ApiRequest& request);
  ApiResponse list_cases(const ApiRequest& request);
  ApiResponse show_case(const std::string& id);
  ApiResponse update_case(const std::string& id, const ApiRequest& request,
                          const ApiTokenRecord& caller);
  ApiResponse report(const std::string& id, const ApiRequest& request);
  ApiResponse stats(const ApiRequest& request);

  Store& store_;
  PlaybookEngine* engine_;  // null: no playbooks on this controller (runs cannot start)
  const Clock& clock_;
  const std::string console_url_;
};

}  // namespace riposte::controller
