#pragma once

// A request and response of the operator API, free of any HTTP library.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace riposte::controller {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path with optional query
  std::string authorization;
  std::string body;
  std::string remote_address;
  // The console's session: the Cookie header, and the X-CSRF-Token header that every request
  // changing state must repeat from the session (api/console_sessions.h).
  std::string cookie;
  std::string csrf_token;
  // What a browser says about where the request comes from, for sign-in (which no page of
  // another origin may do): Content-Type, Origin, Sec-Fetch-Site and Host headers ("" absent).
  std::string content_type;
  std::string origin;
  std::string fetch_site;
  std::string host;
};

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON unless content_type says otherwise
  std::string content_type = "application/json";
  // When set, the response body is this file (evidence downloads), streamed by the server.
  std::filesystem::path file;
  int retry_after_s = 0;  // > 0: a Retry-After header (503 busy)
  // Further headers (Set-Cookie, Location, a page's own Content-Security-Policy), written as
  // given after the server's own; a Content-Security-Policy here replaces the default one.
  std::vector<std::pair<std::string, std::string>> headers;
};

// A JSON response, and {"error": message} with `status`.
ApiResponse json_response(int status, const nlohmann::json& body);
ApiResponse error_response(int status, std::string_view message);
// `status` (301, 302) with Location: `location`.
ApiResponse redirect_response(int status, std::string location);

// The percent-decoded value of `name` in the target's query string ("" when absent).
std::string query_param(std::string_view target, std::string_view name);
// %XX sequences decoded; '+' is a space in a query string, itself in a path segment.
std::string percent_decode(std::string_view raw, bool plus_is_space);
// The non-negative integer `name` of the query string; nullopt when absent or not one.
std::optional<std::int64_t> integer_param(std::string_view target, std::string_view name);
// A list route's page, from ?limit=&offset= (README: newest first, `offset` rows skipped).
struct ListPage {
  int limit = 100;
  int offset = 0;
  // What to ask the store for: one row more than the page, to know whether another follows.
  int fetch_limit() const { return limit + 1; }
  // Drops that extra row and adds {"limit","offset","next_offset"} to `body` (next_offset: the
  // offset of the following page, null on the last one).
  template <class Rows>
  void finish(Rows& rows, nlohmann::json& body) const {
    const bool more = rows.size() > static_cast<std::size_t>(limit);
    if (more) rows.resize(static_cast<std::size_t>(limit));
    body["limit"] = limit;
    body["offset"] = offset;
    body["next_offset"] = more ? nlohmann::json(offset + limit) : nlohmann::json(nullptr);
  }
};
// limit in [1, max_limit] (`fallback` when absent), offset in [0, 10^7] (0 when absent). A value
// that is not a non-negative integer is an error naming it.
Result<ListPage> page_param(const ApiRequest& request, int fallback, int max_limit);
// A request body as a JSON object ({} when empty); errors say what is wrong with it.
Result<nlohmann::json> parse_object(const std::string& body);
// Ids in paths are UUIDs: anything else is refused before it reaches the store.
bool plausible_id(std::string_view id);

}  // namespace riposte::controller
