#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <string_view>

#include "common/result.h"

namespace riposte::controller {

// Opens, binds and listens `acceptor` on `endpoint`; `what` names the listener in the error
// ("agent gateway cannot listen on 0.0.0.0:7443: Address already in use").
Status open_listener(boost::asio::ip::tcp::acceptor& acceptor,
                     const boost::asio::ip::tcp::endpoint& endpoint, std::string_view what);

}  // namespace riposte::controller
