#include "protocol/https_client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>

#include "protocol/envelope_channel.h"

namespace riposte {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

template <class Fields>
int retry_after_of(const Fields& message) {
  const auto value = message[beast::http::field::retry_after];
  int seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  return ec == std::errc() && end == value.data() + value.size() && seconds > 0 ? seconds : 0;
}

asio::awaitable<Result<HttpsResponse>> perform(const HttpsRequest& req, asio::ssl::context& tls) {
  auto executor = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  const std::string where = fmt::format("{}:{}", req.host, req.port);

  tcp::resolver resolver(executor);
  auto endpoints = co_await resolver.async_resolve(req.host, std::to_string(req.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error{fmt::format("cannot resolve {}: {}", req.host, ec.message())};

  beast::ssl_stream<beast::tcp_stream> stream(executor, tls);
  if (!SSL_set_tlsext_host_name(stream.native_handle(), req.host.c_str())) {
    co_return Error{"cannot set TLS server name"};
  }
  if (req.verify_host_name) stream.set_verify_callback(asio::ssl::host_name_verification(req.host));

  beast::get_lowest_layer(stream).expires_after(req.timeout);
  co_await beast::get_lowest_layer(stream).async_connect(
      endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error{fmt::format("cannot connect to {}: {}", where, describe_error(ec))};
  beast::get_lowest_layer(stream).expires_after(req.timeout);
  co_await stream.async_handshake(asio::ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec)
    co_return Error{fmt::format("TLS handshake with {} failed: {}", where, describe_error(ec))};

  http::request<http::string_body> request{http::string_to_verb(req.method), req.target, 11};
  // RFC 9110 7.2: uri-host [":" port], the port left out only when it is https's 443; an IPv6
  // literal in brackets. The controller builds links (a report's console link) from it.
  const auto host = req.host.find(':') != std::string::npos && !req.host.starts_with('[')
                        ? "[" + req.host + "]"
                        : req.host;
  request.set(http::field::host, req.port == 443 ? host : fmt::format("{}:{}", host, req.port));
  request.set(http::field::user_agent, "riposte/" RIPOSTE_VERSION);
  request.set(http::field::accept, "application/json");
  if (!req.bearer_token.empty())
    request.set(http::field::authorization, "Bearer " + req.bearer_token);
  if (!req.body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = req.body;
  }
  request.keep_alive(false);
  request.prepare_payload();
  beast::get_lowest_layer(stream).expires_after(req.timeout);
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error{fmt::format("sending to {} failed: {}", where, describe_error(ec))};

  beast::flat_buffer buffer;
  if (!req.output_file.empty()) {
    // Large downloads (evidence): stream to disk, with the timeout applied to each read.
    http::response_parser<http::file_body> file_parser;
    // Not boost::none: Beast 1.74 compares the length with the optional, and "no limit" loses.
    file_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    const int fd = ::open(req.output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
      co_return Error{fmt::format("cannot create {}: {}", req.output_file, std::strerror(errno))};
    ::close(fd);
    file_parser.get().body().open(req.output_file.c_str(), beast::file_mode::write, ec);
    if (ec) co_return Error{fmt::format("cannot write {}: {}", req.output_file, ec.message())};
    while (!file_parser.is_done()) {
      beast::get_lowest_layer(stream).expires_after(req.timeout);
      co_await http::async_read_some(stream, buffer, file_parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    file_parser.get().body().close();
    if (ec)
      co_return Error{
          fmt::format("reading the response from {} failed: {}", where, describe_error(ec))};
    HttpsResponse response{static_cast<int>(file_parser.get().result_int()), "",
                           retry_after_of(file_parser.get())};
    if (response.status >= 300) {
      // Not the file we asked for: hand back the error text and leave no file behind.
      std::ifstream in(req.output_file, std::ios::binary);
      response.body.assign(std::istreambuf_iterator<char>(in), {});
      ::unlink(req.output_file.c_str());
    }
    co_return response;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  // A body with neither Content-Length nor chunking ends when the server closes the connection;
  // many servers (Python's http.server over TLS, some chat webhooks) close TCP without a TLS
  // close_notify. That is the end of such a body, as curl and browsers take it, not an error.
  // Any other truncation (a length or chunk promised and not delivered) stays an error.
  if (ec == asio::ssl::error::stream_truncated && parser.is_header_done() && !parser.chunked() &&
      !parser.content_length()) {
    parser.put_eof(ec);
  }
  if (ec)
    co_return Error{
        fmt::format("reading the response from {} failed: {}", where, describe_error(ec))};
  HttpsResponse response{static_cast<int>(parser.get().result_int()), parser.get().body(),
                         retry_after_of(parser.get())};
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));  // best effort
  co_return response;
}

}  // namespace

Result<HttpsResponse> https_request(const HttpsRequest& request, asio::ssl::context& tls) {
  asio::io_context io;
  Result<HttpsResponse> result = Error{"request did not run"};
  auto run = [&]() -> asio::awaitable<void> { result = co_await perform(request, tls); };
  asio::co_spawn(io, run(), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      result = Error{ex.what()};
    }
  });
  io.run();
  return result;
}

}  // namespace riposte
