#pragma once

// Playbook notifications: a JSON body POSTed to an HTTPS webhook (chat, ticketing). TLS 1.3,
// the server's certificate checked against the system trust store or a given CA file, the host
// name checked. Plain http:// is refused: bodies carry case details.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"

namespace riposte::controller {

struct WebhookUrl {
  std::string host;
  std::uint16_t port = 443;
  std::string target = "/";
};

// "https://host[:port][/path?query]"; errors say what is wrong.
Result<WebhookUrl> parse_webhook_url(const std::string& url);

class WebhookClient {
 public:
  // `ca_file` empty: the system's trust store.
  explicit WebhookClient(std::filesystem::path ca_file = {}) : ca_file_(std::move(ca_file)) {}
  // Blocking; returns the HTTP status. A non-2xx answer is an error naming the status.
  Result<int> post(const std::string& url, const nlohmann::json& body) const;

 private:
  std::filesystem::path ca_file_;
};

}  // namespace riposte::controller
