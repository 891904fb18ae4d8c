#include "protocol/envelope_channel.h"

#include <fmt/format.h>
#include <openssl/err.h>

#include <boost/asio/error.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "protocol/wire_text.h"

namespace riposte {

namespace asio = boost::asio;

template <typename Stream>
BasicEnvelopeChannel<Stream>::BasicEnvelopeChannel(Stream& stream, std::uint32_t max_frame_size)
    : stream_(stream), decoder_(max_frame_size) {}

template <typename Stream>
asio::awaitable<Result<proto::Envelope>> BasicEnvelopeChannel<Stream>::read() {
  for (;;) {
    if (auto payload = decoder_.next_view()) {
      proto::Envelope envelope;  // parsed straight from the receive buffer: evidence is large
      // A peer that put bytes that are not UTF-8 in a `string` field (an older agent, or a
      // hostile one) is read with those fields escaped into wire text (wire_text.h): one odd
      // process name must not cost the whole message.
      if (auto parsed = parse_repairing(
              envelope, {reinterpret_cast<const char*>(payload->data()), payload->size()});
          !parsed) {
        co_return Error{
            fmt::format("malformed message ({} bytes that are not an Envelope)", payload->size())};
      }
      if (envelope.body_case() == proto::Envelope::BODY_NOT_SET) {
        co_return Error{"message with no known body (newer peer or garbage)"};
      }
      co_return envelope;
    }
    if (decoder_.failed()) co_return Error{decoder_.error()};
    boost::system::error_code ec;
    if constexpr (std::is_same_v<Stream, TlsSocket>) {
      if (buffer_.empty()) {
        co_await stream_.async_wait_readable(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return Error{describe_error(ec)};
      }
    }
    buffer_.resize(kReadSize);
    const std::size_t n = co_await stream_.async_read_some(
        asio::buffer(buffer_), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Error{describe_error(ec)};
    decoder_.feed(std::span(buffer_.data(), n));
    if constexpr (std::is_same_v<Stream, TlsSocket>) {
      // A full read may have left more behind; otherwise give the memory back until data comes.
      if (n < kReadSize && SSL_has_pending(stream_.native_handle()) != 1)
        std::vector<std::uint8_t>().swap(buffer_);
    }
  }
}

template <typename Stream>
asio::awaitable<Status> BasicEnvelopeChannel<Stream>::write(const proto::Envelope& envelope) {
  // Every `string` leaves as UTF-8, or the peer's Protobuf refuses the whole message. What the
  // agent read from the OS is escaped where it was read; this catches anything that was not.
  if (!text_fields_are_utf8(envelope)) {
    proto::Envelope repaired = envelope;
    repair_text_fields(repaired);
    co_return co_await write(repaired);
  }
  // Serialized straight behind the length header: one buffer, no intermediate copy.
  const std::size_t size = envelope.ByteSizeLong();
  std::vector<std::uint8_t> frame(kFrameHeaderSize + size);
  frame[0] = static_cast<std::uint8_t>(size >> 24);
  frame[1] = static_cast<std::uint8_t>(size >> 16);
  frame[2] = static_cast<std::uint8_t>(size >> 8);
  frame[3] = static_cast<std::uint8_t>(size);
  envelope.SerializeWithCachedSizesToArray(frame.data() + kFrameHeaderSize);
  boost::system::error_code ec;
  co_await asio::async_write(stream_, asio::buffer(frame),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Error{describe_error(ec)};
  co_return ok_status();
}

template class BasicEnvelopeChannel<TlsStream>;
template class BasicEnvelopeChannel<TlsSocket>;

std::string describe_error(const boost::system::error_code& ec) {
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    return "the peer closed the connection";
  }
  if (ec == asio::error::connection_refused)
    return "connection refused (is the controller running?)";
  if (ec == asio::error::operation_aborted) return "timed out or cancelled";
  if (ec.category() == asio::error::get_ssl_category()) {
    char text[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), text, sizeof(text));
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    return fmt::format("TLS error: {}", reason != nullptr ? reason : text);
  }
  return ec.message();
}

}  // namespace riposte
