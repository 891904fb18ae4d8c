#include "protocol/framing.h"

#include <fmt/format.h>

namespace riposte {

std::vector<std::uint8_t> encode_frame(std::span<const std::uint8_t> payload) {
  if (payload.size() > UINT32_MAX) throw std::length_error("frame payload exceeds 4 GiB");
  const auto size = static_cast<std::uint32_t>(payload.size());
  std::vector<std::uint8_t> frame;
  frame.reserve(kFrameHeaderSize + payload.size());
  frame.push_back(static_cast<std::uint8_t>(size >> 24));
  frame.push_back(static_cast<std::uint8_t>(size >> 16));
  frame.push_back(static_cast<std::uint8_t>(size >> 8));
  frame.push_back(static_cast<std::uint8_t>(size));
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

std::vector<std::uint8_t> encode_frame(const std::string& payload) {
  return encode_frame(
      std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
}

FrameDecoder::FrameDecoder(std::uint32_t max_frame_size) : max_frame_size_(max_frame_size) {}

void FrameDecoder::feed(std::span<const std::uint8_t> bytes) {
  if (failed()) return;
  // Compact lazily so a long session does not grow the buffer with consumed frames.
  if (read_pos_ > 0 && read_pos_ == buffer_.size()) {
    buffer_.clear();
    // Memory a megabyte evidence chunk needed is not kept by a session that then idles for days.
    if (buffer_.capacity() > 64 * 1024) buffer_.shrink_to_fit();
    read_pos_ = 0;
  } else if (read_pos_ > 64 * 1024) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(read_pos_));
    read_pos_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<std::span<const std::uint8_t>> FrameDecoder::next_view() {
  if (failed() || buffered() < kFrameHeaderSize) return std::nullopt;
  const std::uint8_t* header = buffer_.data() + read_pos_;
  const std::uint32_t size = (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
                             (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
  if (size > max_frame_size_) {
    error_ =
        fmt::format("frame of {} bytes exceeds the maximum of {} bytes", size, max_frame_size_);
    return std::nullopt;
  }
  if (buffered() < kFrameHeaderSize + size) return std::nullopt;
  read_pos_ += kFrameHeaderSize + size;
  return std::span<const std::uint8_t>(header + kFrameHeaderSize, size);
}

std::optional<std::string> FrameDecoder::next() {
  auto view = next_view();
  if (!view) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(view->data()), view->size());
}

}  // namespace riposte
