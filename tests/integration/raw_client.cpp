#include "tests/integration/raw_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/secure_file.h"
#include "protocol/envelope_channel.h"
#include "protocol/tls.h"
#include "protocol/version.h"

namespace riposte::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

asio::awaitable<void> plain(tcp::endpoint endpoint, std::vector<std::uint8_t> bytes,
                            RawOutcome& out) {
  boost::system::error_code ec;
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    out.detail = "connect: " + ec.message();
    co_return;
  }
  co_await asio::async_write(socket, asio::buffer(bytes),
                             asio::redirect_error(asio::use_awaitable, ec));
  std::array<char, 4096> sink{};
  for (;;) {
    co_await socket.async_read_some(asio::buffer(sink),
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
  out.closed_by_peer = true;
  out.detail = ec.message();
}

asio::awaitable<void> with_tls(tcp::endpoint endpoint, asio::ssl::context& tls, bool hello,
                               std::vector<std::uint8_t> bytes, bool read_replies,
                               std::chrono::seconds timeout, RawOutcome& out) {
  boost::system::error_code ec;
  TlsStream stream(co_await asio::this_coro::executor, tls);
  co_await stream.lowest_layer().async_connect(endpoint,
                                               asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    out.detail = "connect: " + ec.message();
    co_return;
  }
  co_await stream.async_handshake(asio::ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    out.detail = "handshake: " + describe_error(ec);
    co_return;
  }
  out.handshake_ok = true;
  EnvelopeChannel channel(stream, kDefaultMaxFrameSize);
  if (hello) {
    proto::Envelope envelope;
    envelope.mutable_hello()->set_protocol_version(kProtocolVersion);
    envelope.mutable_hello()->set_agent_version("raw-test-client");
    envelope.mutable_hello()->mutable_os()->set_hostname("raw-client");
    if (auto s = co_await channel.write(envelope); !s) {
      out.detail = "hello: " + s.error().message;
      co_return;
    }
    auto ack = co_await channel.read();
    if (!ack || !ack->has_hello_ack()) {
      out.detail = "no HelloAck: " + (ack ? std::string("other message") : ack.error().message);
      co_return;
    }
    out.hello_accepted = ack->hello_ack().accepted();
    if (!out.hello_accepted) out.detail = "hello refused: " + ack->hello_ack().reason();
  }
  co_await asio::async_write(stream, asio::buffer(bytes),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (!read_replies) {
    // A peer that stops reading: the connection stays open, nothing is taken off the socket.
    asio::steady_timer idle(co_await asio::this_coro::executor, timeout);
    co_await idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  // Drain whatever the controller still sends (heartbeat acks, Goodbye) until it closes.
  for (;;) {
    auto message = co_await channel.read();
    if (!message) {
      out.detail = message.error().message;
      break;
    }
    out.received.push_back(message->SerializeAsString());
  }
  out.closed_by_peer = true;
}

}  // namespace

RawOutcome send_to_gateway(const std::string& host, int port,
                           const std::filesystem::path& state_dir, bool say_hello_first,
                           const std::vector<std::uint8_t>& bytes, std::chrono::seconds timeout,
                           bool read_replies) {
  asio::io_context io;
  RawOutcome out;
  const tcp::endpoint endpoint(asio::ip::make_address(host), static_cast<std::uint16_t>(port));
  auto tls = tls::make_tls13_context();
  if (state_dir.empty()) {
    asio::co_spawn(io, plain(endpoint, bytes, out), asio::detached);
  } else {
    if (!tls::use_identity(tls, read_file(state_dir / "agent.pem").value(),
                           read_file(state_dir / "agent.key").value()) ||
        !tls::trust_only(tls, read_file(state_dir / "ca.pem").value())) {
      out.detail = "cannot load identity";
      return out;
    }
    asio::co_spawn(io, with_tls(endpoint, tls, say_hello_first, bytes, read_replies, timeout, out),
                   asio::detached);
  }
  io.run_for(timeout);
  if (!io.stopped()) out.detail = "timed out: the controller kept the connection open";
  return out;
}

}  // namespace riposte::testing
