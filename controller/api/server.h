#pragma once

// HTTPS (TLS 1.3) listener for the operator API and enrollment, on Boost.Beast. It moves bytes and
// enforces limits (request size, timeouts); ApiRouter decides what each request means.
//
// The io threads are shared with the agent gateway, so no request is handled on them: the
// router runs on a small worker pool (kWorkers), and the routes whose work grows with the data
// (audit verification and export, case reports, evidence downloads, which re-hash the file) may
// run at most one at once each; more get 503 with Retry-After. Alert batches (POST
// /api/v1/alerts) are stored one at a time anyway (Store::insert_alerts), so at most two hold a
// worker, one storing and one waiting its turn: a burst of shippers cannot take every worker from
// the console. /healthz is answered at once, on the io thread.

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http/message.hpp>

#include "controller/api/router.h"
#include "controller/gateway/connection_limiter.h"
#include "controller/gateway/pki.h"

namespace riposte::controller {

struct ApiServerOptions {
  boost::asio::ip::tcp::endpoint listen;
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_alert_body_bytes = 16 * 1024 * 1024;  // POST /api/v1/alerts
  // POST /api/v1/rule-sets by a caller allowed to upload (ApiRouter::body_limit decides); keep it
  // equal to the router's max_rule_set_bytes.
  std::size_t max_rule_set_bytes = 64 * 1024 * 1024;
  std::uint32_t request_timeout_seconds = 30;
  // Per source address: open connections at once, and new connections a second
  // (connection_limiter.h). Operators and integrations keep a few keep-alive connections each.
  ConnectionLimits connection_limits = kApiListenerLimits;
};

class ApiServer {
 public:
  ApiServer(boost::asio::io_context& io, const Pki& pki, ApiRouter& router,
            ApiServerOptions options);

  Status start();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  // Connections refused by the per-address limits since start.
  std::uint64_t connections_refused() const { return limiter_->refused(); }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket,
                                     ConnectionLimiter::Ticket ticket);

  boost::asio::io_context& io_;
  const Pki& pki_;
  ApiRouter& router_;
  ApiServerOptions options_;
  std::shared_ptr<ConnectionLimiter> limiter_;
  boost::asio::ssl::context tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<bool> stopped_{false};
  // Requests granted a body over max_body_bytes (rule-set uploads) being read or handled now;
  // each holds its body in memory, so at most kMaxLargeBodies at once (others get 503).
  static constexpr int kMaxLargeBodies = 2;
  std::atomic<int> large_in_flight_{0};
  static constexpr int kWorkers = 4;
  // Which bounded route a request is (an index into kHeavyLimits and heavy_in_flight_), or -1.
  static int heavy_route(std::string_view method, std::string_view target);
  // At once, per route: audit verify, audit export, case report, evidence download, alert intake.
  static constexpr std::array<int, 5> kHeavyLimits{1, 1, 1, 1, 2};
  boost::asio::awaitable<ApiResponse> handle_on_worker(ApiRequest request);
  // router_.handle, with any exception answered 500 and logged.
  ApiResponse handle_guarded(const ApiRequest& request);
  std::array<std::atomic<int>, kHeavyLimits.size()> heavy_in_flight_{};
  boost::asio::thread_pool workers_{kWorkers};
};

// The router's view of a request whose header has been read: method, target, the headers the
// router looks at (Authorization, Cookie, X-CSRF-Token, Content-Type, Origin, Sec-Fetch-Site,
// Host), `body` and the peer's address.
ApiRequest api_request(const boost::beast::http::request_header<>& head, std::string body,
                       std::string remote_address);

}  // namespace riposte::controller
