#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace riposte {

// Frames on the agent channel: a 4-byte big-endian payload length, then the payload (one
// serialized Envelope). Frames above the negotiated maximum are a protocol violation: the reader
// stops and the connection is closed, so a peer cannot make us buffer without bound.
inline constexpr std::size_t kFrameHeaderSize = 4;
inline constexpr std::uint32_t kDefaultMaxFrameSize = 4u * 1024 * 1024;

// Returns header + payload, ready to write.
std::vector<std::uint8_t> encode_frame(std::span<const std::uint8_t> payload);
std::vector<std::uint8_t> encode_frame(const std::string& payload);

// Incremental decoder: feed it whatever bytes arrived (partial headers, partial payloads, several
// frames at once) and take complete frames out. No I/O, so it is tested without sockets.
class FrameDecoder {
 public:
  explicit FrameDecoder(std::uint32_t max_frame_size = kDefaultMaxFrameSize);

  // Appends bytes. After an error, further input is ignored.
  void feed(std::span<const std::uint8_t> bytes);

  // The next complete payload, if one is buffered.
  std::optional<std::string> next();
  // The same without a copy: a view into the decoder's buffer, valid until the next feed().
  std::optional<std::span<const std::uint8_t>> next_view();

  // Set once a frame header announced more than the maximum; the reason is for the log.
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

  // Bytes buffered but not yet returned as a frame.
  std::size_t buffered() const { return buffer_.size() - read_pos_; }

 private:
  std::uint32_t max_frame_size_;
  std::vector<std::uint8_t> buffer_;
  std::size_t read_pos_ = 0;
  std::string error_;
};

}  // namespace riposte
