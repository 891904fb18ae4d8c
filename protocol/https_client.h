#pragma once

// A small blocking HTTPS client (TLS 1.3 via the given context) for the operator CLI and agent
// enrollment: one request, one response, with a timeout on every step.

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <string>

#include "protocol/result.h"

namespace riposte {

struct HttpsRequest {
  std::string host;
  std::uint16_t port = 443;
  std::string method = "GET";
  std::string target = "/";
  std::string body;          // sent as application/json when non-empty
  std::string bearer_token;  // Authorization: Bearer ..., when non-empty
  // Check the server certificate's names against `host` (the CLI does; pinned enrollment relies on
  // the pinned CA and the serverAuth purpose instead, since agents may enroll by any address).
  bool verify_host_name = true;
  std::chrono::seconds timeout{30};
};

struct HttpsResponse {
  int status = 0;
  std::string body;
};

Result<HttpsResponse> https_request(const HttpsRequest& request, boost::asio::ssl::context& tls);

}  // namespace riposte
