#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <string_view>

#include "common/result.h"

namespace riposte::controller {

// Opens, binds and listens `acceptor` on `endpoint`; `what` names the listener in the error
// ("agent gateway cannot listen on 0.0.0.0:7443: Address already in use").
Status open_listener(boost::asio::ip::tcp::acceptor& acceptor,
                     const boost::asio::ip::tcp::endpoint& endpoint, std::string_view what);

// After a failed accept (out of file descriptors, say): waits 100 ms and logs at most once a
// second per listener, with how many failures that second held. Without it an accept loop spins
// on the same failure and writes a million log lines a second.
boost::asio::awaitable<void> accept_backoff(std::string_view what, boost::system::error_code ec);

}  // namespace riposte::controller
