#pragma once

// What every `riposte` command shares: the connection to the controller, one HTTPS request with
// the controller's error turned into a message and exit status 1, and table output.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace riposte::cli {

struct Connection {
  std::string server;
  std::string token;
  std::string ca;
};

[[noreturn]] void die(std::string_view message);
// `given` when set, else the environment variable `name`.
std::string env_or(const char* name, const std::string& given);

// One request; dies with the controller's reason on an error status. The body is returned as
// text, or streamed into `output_file` when one is given (evidence downloads).
std::string call_raw(const Connection& c, const std::string& method, const std::string& target,
                     const nlohmann::json& body = nullptr, const std::string& output_file = "");
// The same with a body that is already JSON text (alert files are sent as read).
std::string call_raw_text(const Connection& c, const std::string& method, const std::string& target,
                          std::string body);
nlohmann::json call(const Connection& c, const std::string& method, const std::string& target,
                    const nlohmann::json& body = nullptr);

// A JSON value as table text, "-" when empty.
std::string text(const nlohmann::json& v);
// Whether an action (as the API shows it) has ended: succeeded, failed, refused or expired.
bool action_ended(const nlohmann::json& action);
// `s` with control characters written as \xNN, for text output (JSON output stays exact).
std::string printable(std::string_view s);
void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows);
// The JSON documents in a file ('-': stdin): one document (a list gives its items) or JSON lines.
// Dies naming the file and line that is not JSON, or when there is none.
std::vector<nlohmann::json> read_json_documents(const std::string& path);
// Percent-encodes a query-string value.
std::string url_encode(std::string_view value);

}  // namespace riposte::cli
