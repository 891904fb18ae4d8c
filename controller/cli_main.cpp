// riposte: the operator CLI. Talks to the controller's HTTPS API with a bearer token.
//   riposte [--server URL] [--token T] [--ca FILE] <noun> <verb> [--json]

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "protocol/address.h"
#include "protocol/https_client.h"
#include "protocol/secure_file.h"
#include "protocol/tls.h"

using namespace riposte;
using nlohmann::json;

namespace {

struct Connection {
  std::string server;
  std::string token;
  std::string ca;
};

[[noreturn]] void die(std::string_view message) {
  std::cerr << "riposte: " << message << "\n";
  std::exit(1);
}

std::string env_or(const char* name, const std::string& given) {
  if (!given.empty()) return given;
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

json call(const Connection& c, const std::string& method, const std::string& target,
          const json& body = nullptr) {
  if (c.server.empty()) die("no controller: pass --server https://HOST:PORT or set RIPOSTE_SERVER");
  if (c.token.empty()) die("no API token: pass --token or set RIPOSTE_TOKEN");
  if (c.ca.empty()) die("no CA certificate: pass --ca FILE or set RIPOSTE_CA");
  std::string_view url = c.server;
  if (!url.starts_with("https://"))
    die(fmt::format("--server '{}' must start with https://", c.server));
  url.remove_prefix(8);
  while (url.ends_with('/')) url.remove_suffix(1);
  auto address = parse_host_port(url);
  if (!address) die(fmt::format("--server: {}", address.error().message));
  auto ca_pem = read_file(c.ca);
  if (!ca_pem) die(ca_pem.error().message);
  auto tls = tls::make_tls13_context();
  if (auto s = tls::trust_only(tls, *ca_pem); !s) die(s.error().message);

  HttpsRequest request;
  request.host = address->host;
  request.port = address->port;
  request.method = method;
  request.target = target;
  request.bearer_token = c.token;
  if (!body.is_null()) request.body = body.dump();
  auto response = https_request(request, tls);
  if (!response) die(response.error().message);
  auto parsed = json::parse(response->body, nullptr, false);
  if (response->status >= 400) {
    const std::string reason = parsed.is_object() && parsed.contains("error")
                                   ? parsed["error"].get<std::string>()
                                   : response->body;
    die(fmt::format("controller answered {}: {}", response->status, reason));
  }
  if (parsed.is_discarded()) die("controller sent a response that is not JSON");
  return parsed;
}

std::string text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& item : v) {
      if (!out.empty()) out += ',';
      out += text(item);
    }
    return out.empty() ? "-" : out;
  }
  return v.dump();
}

void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(headers);
  for (const auto& row : rows) line(row);
}

void print_agent(const json& a) {
  for (const char* key : {"id", "hostname", "status", "os", "kernel", "arch", "ip_addresses",
                          "mac_addresses", "agent_version", "capabilities", "connected_since",
                          "last_heartbeat", "last_seen", "remote_address", "last_disconnect_reason",
                          "enrolled_at", "revoked_at", "cert_fingerprint"}) {
    std::cout << fmt::format("{:<23} {}\n", std::string(key) + ":",
                             text(a.value(key, json(nullptr))));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Riposte operator CLI"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(RIPOSTE_VERSION));
  Connection given;
  app.add_option("--server", given.server,
                 "controller API URL, e.g. https://127.0.0.1:8443 (RIPOSTE_SERVER)");
  app.add_option("--token", given.token, "API token (RIPOSTE_TOKEN)");
  app.add_option("--ca", given.ca, "controller CA certificate PEM (RIPOSTE_CA)");
  bool as_json = false;

  auto* agents = app.add_subcommand("agents", "enrolled agents");
  agents->require_subcommand(1);
  auto* list = agents->add_subcommand("list", "list agents");
  list->add_flag("--json", as_json, "print JSON");
  std::string agent_id;
  auto* show = agents->add_subcommand("show", "show one agent");
  show->add_option("ID", agent_id, "agent id")->required();
  show->add_flag("--json", as_json, "print JSON");
  auto* revoke =
      agents->add_subcommand("revoke", "revoke an agent: close its session, refuse it from now on");
  revoke->add_option("ID", agent_id, "agent id")->required();
  revoke->add_flag("--json", as_json, "print JSON");

  auto* tokens = app.add_subcommand("tokens", "enrollment tokens");
  tokens->require_subcommand(1);
  auto* create = tokens->add_subcommand("create", "create an enrollment token");
  int uses = 1;
  std::string ttl = "24h";
  create->add_option("--uses", uses, "how many agents may enroll with it (default 1)");
  create->add_option("--ttl", ttl, "lifetime, e.g. 30m, 24h, 7d (default 24h)");
  create->add_flag("--json", as_json, "print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const Connection c{env_or("RIPOSTE_SERVER", given.server), env_or("RIPOSTE_TOKEN", given.token),
                     env_or("RIPOSTE_CA", given.ca)};

  if (list->parsed()) {
    const auto result = call(c, "GET", "/api/v1/agents");
    if (as_json) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : result.at("agents")) {
      rows.push_back({text(a["id"]), text(a["hostname"]), text(a["status"]), text(a["os"]),
                      text(a["kernel"]), text(a["ip_addresses"]), text(a["agent_version"]),
                      text(a["capabilities"]), text(a["connected_since"]),
                      text(a["last_heartbeat"])});
    }
    print_table({"ID", "HOSTNAME", "STATUS", "OS", "KERNEL", "IP ADDRESSES", "VERSION",
                 "CAPABILITIES", "CONNECTED SINCE", "LAST HEARTBEAT"},
                rows);
    return 0;
  }
  if (show->parsed() || revoke->parsed()) {
    const auto result = show->parsed() ? call(c, "GET", "/api/v1/agents/" + agent_id)
                                       : call(c, "POST", "/api/v1/agents/" + agent_id + "/revoke");
    if (as_json) {
      std::cout << result.dump(2) << "\n";
    } else {
      if (revoke->parsed()) std::cout << "Revoked agent " << agent_id << ".\n";
      print_agent(result);
    }
    return 0;
  }
  if (create->parsed()) {
    const auto result =
        call(c, "POST", "/api/v1/enrollment-tokens", json{{"uses", uses}, {"ttl", ttl}});
    if (as_json) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << "Enrollment token (shown once): " << text(result["token"]) << "\n"
                << "Uses: " << text(result["uses"]) << ", expires " << text(result["expires_at"])
                << "\n";
    }
    return 0;
  }
  return 1;
}
