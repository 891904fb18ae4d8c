#pragma once

// A request and response of the operator API, free of any HTTP library.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"

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
  std::string body;  // JSON unless content_type says otherwise
  std::string content_type = "application/json";
  // When set, the response body is this file (evidence downloads), streamed by the server.
  std::filesystem::path file;
  int retry_after_s = 0;  // > 0: a Retry-After header (503 busy)
};

// A JSON response, and {"error": message} with `status`.
ApiResponse json_response(int status, const nlohmann::json& body);
ApiResponse error_response(int status, std::string_view message);

// The percent-decoded value of `name` in the target's query string ("" when absent).
std::string query_param(std::string_view target, std::string_view name);
// %XX sequences decoded; '+' is a space in a query string, itself in a path segment.
std::string percent_decode(std::string_view raw, bool plus_is_space);
// The non-negative integer `name` of the query string; nullopt when absent or not one.
std::optional<std::int64_t> integer_param(std::string_view target, std::string_view name);
// A request body as a JSON object ({} when empty); errors say what is wrong with it.
Result<nlohmann::json> parse_object(const std::string& body);
// Ids in paths are UUIDs: anything else is refused before it reaches the store.
bool plausible_id(std::string_view id);

}  // namespace riposte::controller
