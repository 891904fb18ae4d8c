#include "controller/playbooks/webhook.h"

#include <fmt/format.h>

#include <charconv>

#include "protocol/https_client.h"
#include "protocol/tls.h"

namespace riposte::controller {

Result<WebhookUrl> parse_webhook_url(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) return Error{"a webhook URL must start with https://"};
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  WebhookUrl out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target = fmt::format("/{}", out.target);
  if (authority.find('@') != std::string_view::npos)
    return Error{"webhook URLs carry no user:password (a token belongs in the path)"};
  const auto colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    const auto port_text = authority.substr(colon + 1);
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535)
      return Error{"a webhook URL has a bad port"};
    out.port = static_cast<std::uint16_t>(port);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return Error{"a webhook URL has no host"};
  out.host = std::string(authority);
  return out;
}

Result<int> WebhookClient::post(const std::string& url, const nlohmann::json& body) const {
  auto parsed = parse_webhook_url(url);
  if (!parsed) return parsed.error();
  auto tls = tls::make_tls13_context();
  boost::system::error_code ec;
  if (ca_file_.empty()) {
    tls.set_default_verify_paths(ec);
  } else {
    tls.load_verify_file(ca_file_.string(), ec);
  }
  if (ec) return Error{fmt::format("webhook trust store: {}", ec.message())};
  tls.set_verify_mode(boost::asio::ssl::verify_peer);
  HttpsRequest request;
  request.host = parsed->host;
  request.port = parsed->port;
  request.method = "POST";
  request.target = parsed->target;
  request.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  request.timeout = std::chrono::seconds(10);
  auto response = https_request(request, tls);
  if (!response)
    return Error{fmt::format("webhook {}: {}", parsed->host, response.error().message)};
  if (response->status < 200 || response->status > 299)
    return Error{fmt::format("webhook {} answered HTTP {}", parsed->host, response->status)};
  return response->status;
}

}  // namespace riposte::controller
