#include "controller/gateway/listener.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace riposte::controller {

Status open_listener(boost::asio::ip::tcp::acceptor& acceptor,
                     const boost::asio::ip::tcp::endpoint& endpoint, std::string_view what) {
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error{fmt::format("{} cannot listen on {}:{}: {}", what, endpoint.address().to_string(),
                             endpoint.port(), ec.message())};
  }
  return ok_status();
}

boost::asio::awaitable<void> accept_backoff(std::string_view what, boost::system::error_code ec) {
  // Shared by the two listeners' loops (each runs on one strand at a time); a relaxed count is
  // enough for a log line.
  static std::atomic<std::int64_t> last_logged_s{0};
  static std::atomic<std::uint64_t> failures{0};
  ++failures;
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
  if (last_logged_s.exchange(now_s) != now_s) {
    spdlog::error("{}: accept failed: {} ({} failure(s) since the last report); retrying in 100 ms",
                  what, ec.message(), failures.exchange(0));
  }
  boost::asio::steady_timer wait(co_await boost::asio::this_coro::executor);
  wait.expires_after(std::chrono::milliseconds(100));
  boost::system::error_code ignored;
  co_await wait.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
}

}  // namespace riposte::controller
