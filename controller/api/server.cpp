#include "controller/api/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <optional>

#include "common/allocator_tuning.h"
#include "controller/gateway/listener.h"
#include "protocol/envelope_channel.h"
#include "protocol/tls.h"

namespace riposte::controller {

namespace {
// An oversized request body up to this size is read and dropped so the client sees the 413.
constexpr std::uint64_t kMaxDrainBytes = 256ull * 1024 * 1024;
}  // namespace

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

ApiServer::ApiServer(asio::io_context& io, const Pki& pki, ApiRouter& router,
                     ApiServerOptions options)
    : io_(io),
      pki_(pki),
      router_(router),
      options_(std::move(options)),
      limiter_(std::make_shared<ConnectionLimiter>("api", options_.connection_limits)),
      tls_(tls::make_tls13_context()),
      acceptor_(io) {}

Status ApiServer::start() {
  if (auto s = tls::use_identity(tls_, pki_.server_chain_pem(), pki_.server_key_pem()); !s)
    return s;
  if (auto s = open_listener(acceptor_, options_.listen, "API"); !s) return s;
  asio::co_spawn(io_, accept_loop(), asio::detached);
  return ok_status();
}

void ApiServer::stop() {
  stopped_ = true;
  router_.stop();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

// A coroutine taking the request by value: its frame owns it (a capturing lambda's captures
// would die with the lambda before the coroutine runs).
asio::awaitable<ApiResponse> ApiServer::handle_on_worker(ApiRequest request) {
  co_return handle_guarded(request);
}

ApiResponse ApiServer::handle_guarded(const ApiRequest& request) {
  // A request that makes a handler throw is a bug (found by fuzzing, mended where it is): it gets
  // a 500 and a log line, and the controller keeps serving everyone else.
  try {
    return router_.handle(request);
  } catch (const std::exception& e) {
    spdlog::error("api: {} {} from {}: internal error: {}", request.method,
                  request.target, request.remote_address, e.what());
    return ApiResponse{500, json_error_body("internal error; see the controller's log")};
  }
}

namespace {
std::string_view path_of(std::string_view target) {
  if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  while (target.size() > 1 && target.ends_with('/')) target.remove_suffix(1);
  return target;
}
}  // namespace

int ApiServer::heavy_route(std::string_view method, std::string_view target) {
  target = path_of(target);  // "/report/" is "/report" to the router too
  if (method == "POST" && target == "/api/v1/alerts") return 4;
  if (method != "GET") return -1;
  if (target == "/api/v1/audit/verify") return 0;
  if (target == "/api/v1/audit") return 1;
  if (target.starts_with("/api/v1/cases/") && target.ends_with("/report")) return 2;
  if (target.starts_with("/api/v1/evidence/") && !target.ends_with("/custody")) return 3;
  return -1;
}

tcp::endpoint ApiServer::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

asio::awaitable<void> ApiServer::accept_loop() {
  while (!stopped_) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(
        asio::make_strand(io_), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopped_ || ec == asio::error::operation_aborted) co_return;
      // Out of file descriptors and similar: the pending connection stays queued, so accepting
      // again at once fails again at once (a log line a microsecond). Back off 100 ms and say
      // so once a second; connections already open keep being served meanwhile.
      co_await accept_backoff("api", ec);
      continue;
    }
    const auto peer = socket.remote_endpoint(ec);
    if (ec) continue;  // already gone
    auto ticket = limiter_->admit(peer.address());
    if (!ticket) continue;  // closed before any TLS work; logged by the limiter
    // Responses are written as header and body records; without this, Nagle's algorithm and the
    // client's delayed ACK stall every keep-alive request by tens of milliseconds.
    socket.set_option(tcp::no_delay(true), ec);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(std::move(socket), std::move(*ticket)), asio::detached);
  }
}

asio::awaitable<void> ApiServer::serve(tcp::socket socket, ConnectionLimiter::Ticket /*held*/) {
  boost::system::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  const std::string remote =
      ec ? "unknown" : fmt::format("{}:{}", peer.address().to_string(), peer.port());
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), tls_);
  const auto timeout = std::chrono::seconds(options_.request_timeout_seconds);

  beast::get_lowest_layer(stream).expires_after(timeout);
  co_await stream.async_handshake(asio::ssl::stream_base::server,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    spdlog::debug("api: TLS handshake from {} failed: {}", remote, describe_error(ec));
    co_return;
  }

  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    std::uint64_t route_limit = options_.max_body_bytes;
    bool too_busy = false, holds_large = false, intake = false;
    // Beast checks Content-Length against the limit as the header completes, so the header is
    // read under the largest limit and the route's own limit applied right after: alert batches
    // may be large, everything else is small.
    // Rule-set uploads may be larger still, once the router has authenticated the caller.
    parser.body_limit(std::max(
        {options_.max_body_bytes, options_.max_alert_body_bytes, options_.max_rule_set_bytes}));
    parser.header_limit(16 * 1024);
    beast::get_lowest_layer(stream).expires_after(timeout);
    co_await http::async_read_header(stream, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      const auto& head = parser.get();
      const auto limit =
          router_.body_limit(api_request(head, {}, remote), options_.max_body_bytes);
      const auto declared = parser.content_length();
      if (declared && *declared > limit) ec = http::error::body_limit;
      parser.body_limit(limit);
      route_limit = limit;
      // A body over the ordinary limit is held in memory until handled: only a few at once,
      // admitted here, before a byte of it is read (alert batches too: 60 slow 15 MiB batches
      // once took the controller from 1.7 to 2.6 GiB). A body declared small, or a route whose
      // caller may send only small ones, needs no slot.
      intake = head.target().starts_with("/api/v1/alerts");
      const bool large = !declared || *declared > options_.max_body_bytes;
      if (!ec && limit > options_.max_body_bytes && large) {
        if (large_in_flight_.fetch_add(1) >= kMaxLargeBodies) {
          large_in_flight_.fetch_sub(1);
          too_busy = true;
        } else {
          holds_large = true;
        }
      }
    }
    if (too_busy) {
      // Answer now and close: the body is not read.
      ApiResponse busy{
          503, json_error_body(fmt::format("{} large {} are in progress; retry shortly",
                                           kMaxLargeBodies, intake ? "alert batches" : "uploads"))};
      http::response<http::string_body> response;
      response.result(http::status::service_unavailable);
      response.version(11);
      response.set(http::field::server, "riposte-controller");
      response.set(http::field::content_type, busy.content_type);
      // Alert batches are stored in a second or two; an upload takes longer.
      response.set(http::field::retry_after, intake ? "1" : "5");
      response.keep_alive(false);
      response.body() = std::move(busy.body);
      response.prepare_payload();
      co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
      // Read and drop what the client is still sending (up to its declared length, within the
      // request timeout) before closing: closing with unread bytes resets the connection, and a
      // client still writing its body would see the reset instead of the 503 and its
      // Retry-After. Costs bandwidth, never memory.
      if (const auto declared = parser.content_length(); !ec && declared) {
        std::uint64_t left = *declared > buffer.size() ? *declared - buffer.size() : 0;
        buffer.consume(buffer.size());
        std::array<char, 64 * 1024> sink;
        while (left > 0) {
          beast::get_lowest_layer(stream).expires_after(timeout);
          const auto n = co_await stream.async_read_some(
              asio::buffer(sink.data(), std::min<std::uint64_t>(left, sink.size())),
              asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
          left -= n;
        }
      }
      break;
    }
    struct LargeBodyRelease {
      std::atomic<int>& count;
      bool held;
      ~LargeBodyRelease() {
        // The last large body gone: give its memory back (it came from a worker's arena, which
        // glibc does not shrink by itself, and the controller kept 1 GiB after one burst).
        if (held && count.fetch_sub(1) == 1) return_freed_memory();
      }
    } release{large_in_flight_, holds_large};
    if (!ec && !parser.is_done()) {
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated) break;

    ApiResponse result;
    unsigned version = 11;
    bool keep_alive = false;
    if (ec) {
      // Malformed or oversized requests get a JSON error, then the connection closes.
      const bool too_big = ec == http::error::body_limit || ec == http::error::header_limit;
      if (ec == beast::error::timeout || ec == asio::error::operation_aborted) break;
      result.status = too_big ? 413 : 400;
      result.body = json_error_body(too_big ? "request too large" : "malformed HTTP request");
      // The parser refuses before it marks the header done, but the fields are already stored.
      std::optional<std::uint64_t> declared;
      if (const auto field = parser.get()[http::field::content_length]; !field.empty()) {
        std::uint64_t value = 0;
        const auto [end, problem] =
            std::from_chars(field.data(), field.data() + field.size(), value);
        if (problem == std::errc() && end == field.data() + field.size()) declared = value;
      }
      if (ec == http::error::body_limit && declared) {
        result.body = json_error_body(
            fmt::format("request body of {} bytes is over this route's limit of {} bytes{}",
                        *declared, route_limit,
                        route_limit == options_.max_rule_set_bytes ? " (max_rule_set_bytes)" : ""));
        // The client is still sending the body; closing now would reset the connection before
        // it reads the answer. Bodies up to a bound are read and dropped first.
        if (*declared <= kMaxDrainBytes) {
          // What is buffered may still start with the refused header; only body bytes count.
          const std::string_view buffered(static_cast<const char*>(buffer.data().data()),
                                          buffer.size());
          const auto header_end = buffered.find("\r\n\r\n");
          const std::uint64_t body_buffered = header_end == std::string_view::npos
                                                  ? buffered.size()
                                                  : buffered.size() - (header_end + 4);
          std::uint64_t left = *declared - std::min<std::uint64_t>(*declared, body_buffered);
          buffer.consume(buffer.size());
          std::vector<char> scratch(64 * 1024);
          boost::system::error_code drain_ec;
          while (left > 0 && !drain_ec) {
            beast::get_lowest_layer(stream).expires_after(timeout);
            const auto n = co_await stream.async_read_some(
                asio::buffer(scratch.data(), std::min<std::uint64_t>(left, scratch.size())),
                asio::redirect_error(asio::use_awaitable, drain_ec));
            left -= std::min<std::uint64_t>(left, n);
          }
        }
      }
    } else {
      const auto& request = parser.get();
      auto api = api_request(request, request.body(), remote);
      const int heavy = heavy_route(api.method, api.target);
      const std::string method = api.method, target = api.target;  // api moves to the worker
      // Only a caller the heavy route will serve takes one of its slots (checked on this thread:
      // one token-hash lookup); anyone else goes through and is refused quickly.
      const bool takes_slot =
          heavy >= 0 && api.target != "/healthz" && router_.may_run_heavy(api, path_of(api.target));
      if (api.target == "/healthz") {
        result = handle_guarded(api);  // cheap, and what monitoring needs even when busy
      } else if (takes_slot && heavy_in_flight_[heavy].fetch_add(1) >= kHeavyLimits[heavy]) {
        heavy_in_flight_[heavy].fetch_sub(1);
        const bool intake = heavy == 4;
        result = error_response(503, intake ? "other alert batches are being stored; retry shortly"
                                            : "this kind of request is already running; retry "
                                              "shortly");
        result.retry_after_s = intake ? 1 : 5;
      } else {
        // Off the io threads: the handler may read the store for seconds.
        result = co_await asio::co_spawn(workers_, handle_on_worker(std::move(api)),
                                         asio::use_awaitable);
        if (takes_slot) heavy_in_flight_[heavy].fetch_sub(1);
      }
      version = request.version();
      keep_alive = request.keep_alive();
      spdlog::debug("api: {} {} {} -> {}", remote, method, target, result.status);
    }
    auto prepare = [&](auto& response) {
      response.result(static_cast<http::status>(result.status));
      response.version(version);
      response.set(http::field::server, "riposte-controller");
      response.set(http::field::content_type, result.content_type);
      response.set(http::field::cache_control, "no-store");
      // Whatever a browser is shown from here, it neither sniffs, frames, runs nor leaks: JSON,
      // evidence and reports get a policy that allows nothing; console pages bring their own.
      response.set("X-Content-Type-Options", "nosniff");
      response.set("X-Frame-Options", "DENY");
      response.set("Referrer-Policy", "no-referrer");
      // HTTPS only, for a year (RFC 6797): a browser that once reached the console never falls
      // back to plain HTTP for this host. No includeSubDomains: the controller does not speak
      // for other services under its name.
      response.set("Strict-Transport-Security", "max-age=31536000");
      response.set("Content-Security-Policy",
                   "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
                   "form-action 'none'");
      if (result.retry_after_s > 0)
        response.set(http::field::retry_after, std::to_string(result.retry_after_s));
      for (const auto& [name, value] : result.headers) {
        if (beast::iequals(name, "Content-Security-Policy")) response.erase(name);
        response.insert(name, value);
      }
      response.keep_alive(keep_alive);
      response.prepare_payload();
    };
    // Evidence can be gigabytes: stream the file instead of loading it.
    http::file_body::value_type file;
    if (!result.file.empty()) {
      file.open(result.file.c_str(), beast::file_mode::scan, ec);
      if (ec) {
        result.status = 500;
        result.content_type = "application/json";
        result.body = json_error_body("cannot open the stored evidence file");
        result.file.clear();
      }
    }
    beast::get_lowest_layer(stream).expires_after(timeout);
    if (!result.file.empty()) {
      http::response<http::file_body> response;
      response.body() = std::move(file);
      prepare(response);
      // The timeout covers each write, not the whole transfer.
      http::response_serializer<http::file_body> serializer(response);
      while (!serializer.is_done() && !ec) {
        beast::get_lowest_layer(stream).expires_after(timeout);
        co_await http::async_write_some(stream, serializer,
                                        asio::redirect_error(asio::use_awaitable, ec));
      }
    } else {
      http::response<http::string_body> response;
      response.body() = std::move(result.body);
      prepare(response);
      co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec || !keep_alive) break;
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
  co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
}

namespace {
// Every value of a header, joined by ", " (RFC 9110 section 5.3): a header sent twice is read as
// both values, so "Origin: ours" then "Origin: theirs" never passes for "ours".
std::string all_values(const http::request_header<>& head, beast::string_view name) {
  std::string joined;
  for (auto [it, end] = head.equal_range(name); it != end; ++it) {
    if (!joined.empty()) joined += ", ";
    joined += std::string(it->value());
  }
  return joined;
}
}  // namespace

ApiRequest api_request(const http::request_header<>& head, std::string body,
                       std::string remote_address) {
  ApiRequest api;
  api.method = std::string(head.method_string());
  api.target = std::string(head.target());
  api.authorization = std::string(head[http::field::authorization]);
  api.body = std::move(body);
  api.remote_address = std::move(remote_address);
  api.cookie = std::string(head[http::field::cookie]);
  // What judges where a request comes from (sign-in) is read whole: see all_values.
  api.content_type = all_values(head, "Content-Type");
  api.origin = all_values(head, "Origin");
  api.fetch_site = all_values(head, "Sec-Fetch-Site");
  api.host = all_values(head, "Host");
  api.csrf_token = all_values(head, "X-CSRF-Token");
  return api;
}

}  // namespace riposte::controller
