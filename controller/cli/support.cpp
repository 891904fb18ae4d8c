#include "controller/cli/support.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/address.h"
#include "common/secure_file.h"
#include "protocol/https_client.h"
#include "protocol/tls.h"

namespace riposte::cli {

using nlohmann::json;

[[noreturn]] void die(std::string_view message) {
  std::cerr << "riposte: " << message << "\n";
  std::exit(1);
}

std::string env_or(const char* name, const std::string& given) {
  if (!given.empty()) return given;
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

namespace {

// How long a command waits out 503s in all: alert batches are answered "retry in 1 s" while
// others are stored, which can take a minute under a burst.
constexpr int kBusyPatienceS = 120;

std::string request(const Connection& c, const std::string& method, const std::string& target,
                    std::string body, const std::string& output_file) {
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

  HttpsRequest http;
  http.host = address->host;
  http.port = address->port;
  http.method = method;
  http.target = target;
  http.bearer_token = c.token;
  http.output_file = output_file;
  http.body = std::move(body);
  auto response = https_request(http, tls);
  // 503 with Retry-After means the controller did not handle the request (a heavy route's slot
  // is taken, two large uploads are being read, alert batches are being stored): waiting as told
  // and asking again is safe for any method. For up to kBusyPatienceS in all, at most 30 s a
  // wait, saying so on stderr at the first and then every 10 s. (429, too many failed attempts,
  // is not retried: the same token would fail again.)
  int waited_s = 0, said_at_s = -10;
  while (response && response->status == 503 && response->retry_after_s > 0 &&
         waited_s < kBusyPatienceS) {
    const int wait_s = std::min({response->retry_after_s, 30, kBusyPatienceS - waited_s});
    if (waited_s - said_at_s >= 10) {
      std::fprintf(stderr, "riposte: controller answered %d (busy); retrying in %d s\n",
                   response->status, wait_s);
      said_at_s = waited_s;
    }
    std::this_thread::sleep_for(std::chrono::seconds(wait_s));
    waited_s += wait_s;
    response = https_request(http, tls);
  }
  if (!response) die(response.error().message);
  if (response->status >= 400) {
    const auto parsed = json::parse(response->body, nullptr, false);
    const std::string reason = parsed.is_object() && parsed.contains("error")
                                   ? parsed["error"].get<std::string>()
                                   : response->body;
    die(fmt::format("controller answered {}: {}", response->status, reason));
  }
  return std::move(response->body);
}

}  // namespace

std::string call_raw(const Connection& c, const std::string& method, const std::string& target,
                     const json& body, const std::string& output_file) {
  return request(c, method, target, body.is_null() ? "" : body.dump(), output_file);
}

std::string call_raw_text(const Connection& c, const std::string& method, const std::string& target,
                          std::string body) {
  return request(c, method, target, std::move(body), "");
}

json call(const Connection& c, const std::string& method, const std::string& target,
          const json& body) {
  auto parsed = json::parse(call_raw(c, method, target, body), nullptr, false);
  if (parsed.is_discarded()) die("controller sent a response that is not JSON");
  return parsed;
}

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

std::string text(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : printable(v.get<std::string>());
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

bool action_ended(const nlohmann::json& action) {
  const auto state = action.value("state", "");
  return state == "succeeded" || state == "failed" || state == "refused" || state == "expired";
}

void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& raw_rows) {
  // Cells hold what agents and alerts reported: a newline or an escape sequence in a hostname
  // must not forge a row or drive the terminal.
  std::vector<std::vector<std::string>> rows;
  for (const auto& raw : raw_rows) {
    auto& row = rows.emplace_back();
    for (const auto& cell : raw) row.push_back(printable(cell));
  }
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

std::string url_encode(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::vector<json> read_json_documents(const std::string& path) {
  std::string content;
  if (path == "-") {
    std::ostringstream in;
    in << std::cin.rdbuf();
    content = in.str();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) die(fmt::format("cannot read {}", path));
    std::ostringstream text_in;
    text_in << in.rdbuf();
    content = text_in.str();
  }
  std::vector<json> documents;
  auto whole = json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (!whole.is_discarded()) {
    if (whole.is_array()) {
      for (auto& d : whole) documents.push_back(std::move(d));
    } else {
      documents.push_back(std::move(whole));
    }
  } else {
    std::istringstream lines(content);
    std::string line;
    for (std::size_t n = 1; std::getline(lines, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (doc.is_discarded())
        die(
            fmt::format("{}: line {} is not JSON (the file is neither one JSON document nor JSON "
                        "lines)",
                        path, n));
      documents.push_back(std::move(doc));
    }
  }
  if (documents.empty()) die(fmt::format("{}: no JSON document in it", path));
  return documents;
}

}  // namespace riposte::cli
