#pragma once

// Reads and writes Envelopes as frames over a TLS stream, with coroutines. One reader at a time and
// one writer at a time; the owner serializes them (a session's strand).

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "protocol/agent_channel.pb.h"
#include "protocol/framing.h"
#include "protocol/tls_socket.h"

namespace riposte {

using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

// `Stream` is TlsStream (agents, clients) or TlsSocket (the gateway's many idle sessions).
template <typename Stream>
class BasicEnvelopeChannel {
 public:
  BasicEnvelopeChannel(Stream& stream, std::uint32_t max_frame_size);

  // The next envelope, or an error naming why the stream cannot go on (peer closed, oversized
  // frame, malformed message). After an error the connection should be closed.
  boost::asio::awaitable<Result<proto::Envelope>> read();

  boost::asio::awaitable<Status> write(const proto::Envelope& envelope);

 private:
  static constexpr std::size_t kReadSize = 16 * 1024;
  Stream& stream_;
  FrameDecoder decoder_;
  // Filled by each read, then copied into the decoder. A TlsSocket channel allocates it only once
  // data is there and frees it when nothing more is (an idle gateway session holds none of it).
  std::vector<std::uint8_t> buffer_;
};

using EnvelopeChannel = BasicEnvelopeChannel<TlsStream>;
extern template class BasicEnvelopeChannel<TlsStream>;
extern template class BasicEnvelopeChannel<TlsSocket>;

// Describes a socket/TLS error in words for logs ("connection refused", "certificate verify
// failed").
std::string describe_error(const boost::system::error_code& ec);

}  // namespace riposte
