// libFuzzer target for what an agent's session reads before anything else: the frame decoder fed
// the input in uneven pieces (the first byte of the input picks the piece size), each complete
// frame parsed as an Envelope, and an ActionResult's or Hello's nested messages walked. Never a
// crash, an over-read, or a frame larger than the limit handed out.
#include <cstdint>
#include <span>
#include <string>

#include "protocol/agent_channel.pb.h"
#include "protocol/framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  constexpr std::uint32_t kMax = 64 * 1024;
  riposte::FrameDecoder decoder(kMax);
  const std::size_t piece = 1 + data[0] % 97;
  const std::span<const std::uint8_t> bytes(data + 1, size - 1);
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    decoder.feed(bytes.subspan(at, std::min(piece, bytes.size() - at)));
    while (auto frame = decoder.next()) {
      if (frame->size() > kMax) __builtin_trap();
      riposte::proto::Envelope envelope;
      if (!envelope.ParseFromString(*frame)) continue;
      if (envelope.has_action_result()) {
        for (const auto& e : envelope.action_result().evidence()) (void)e.sha256().size();
      }
      if (envelope.has_hello()) (void)envelope.hello().os().ip_addresses_size();
      (void)envelope.ByteSizeLong();
    }
    if (decoder.failed()) break;
  }
  return 0;
}
