#pragma once

// The HTTP API's request handling, free of I/O: a request in, a JSON response out. The Beast
// server (api_server.h) only moves bytes; this is what is tested without sockets.

#include <functional>
#include <string>

#include "controller/enrollment.h"
#include "controller/operator_auth.h"
#include "controller/store.h"

namespace riposte::controller {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path with optional query
  std::string authorization;
  std::string body;
  std::string remote_address;
};

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON
};

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
};

class ApiRouter {
 public:
  explicit ApiRouter(ApiRouterDeps deps);
  ApiResponse handle(const ApiRequest& request);

 private:
  ApiResponse enroll(const ApiRequest& request);
  ApiResponse list_agents();
  ApiResponse show_agent(const std::string& id);
  ApiResponse revoke_agent(const std::string& id, const ApiTokenRecord& caller);
  ApiResponse create_enrollment_token(const ApiRequest& request, const ApiTokenRecord& caller);

  ApiRouterDeps deps_;
};

// {"error": message}, for responses produced outside the router.
std::string json_error_body(std::string_view message);

}  // namespace riposte::controller
