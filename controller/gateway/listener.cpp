#include "controller/gateway/listener.h"

#include <fmt/format.h>

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

}  // namespace riposte::controller
