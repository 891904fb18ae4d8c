#pragma once

// A small blocking HTTPS client (TLS 1.3 via the given context) for the operator CLI and agent
// enrollment: one request, one response, with a timeout on every step.

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <string>

#include "common/result.h"

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
  std::chrono::seconds timeout{30};  // per step: connect, handshake, each read of the body
  // When set, a successful (2xx) response body is streamed into this file (created 0600,
  // truncated) instead of memory; an error response's body is still returned in `body`.
  std::string output_file;
};

struct HttpsResponse {
  int status = 0;
  std::string body;
  // The Retry-After header in seconds (RFC 9110 10.2.3, delay form), 0 when absent or a date.
  int retry_after_s = 0;
};

Result<HttpsResponse> https_request(const HttpsRequest& request, boost::asio::ssl::context& tls);

}  // namespace riposte
