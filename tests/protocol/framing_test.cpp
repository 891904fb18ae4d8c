#include "protocol/framing.h"

#include <gtest/gtest.h>

#include <random>

namespace riposte {
namespace {

std::span<const std::uint8_t> bytes(const std::vector<std::uint8_t>& v) { return v; }

TEST(Framing, RoundTripsOneFrame) {
  FrameDecoder decoder;
  decoder.feed(bytes(encode_frame(std::string("hello"))));
  auto frame = decoder.next();
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(*frame, "hello");
  EXPECT_FALSE(decoder.next().has_value());
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Framing, HeaderIsBigEndianLength) {
  const auto frame = encode_frame(std::string(258, 'x'));
  ASSERT_EQ(frame.size(), 4u + 258u);
  EXPECT_EQ(frame[0], 0);
  EXPECT_EQ(frame[1], 0);
  EXPECT_EQ(frame[2], 1);
  EXPECT_EQ(frame[3], 2);
}

TEST(Framing, AssemblesFramesFedOneByteAtATime) {
  auto a = encode_frame(std::string("first"));
  auto b = encode_frame(std::string(""));
  auto c = encode_frame(std::string(1000, 'z'));
  std::vector<std::uint8_t> stream;
  for (auto* f : {&a, &b, &c}) stream.insert(stream.end(), f->begin(), f->end());

  FrameDecoder decoder;
  std::vector<std::string> out;
  for (std::uint8_t byte : stream) {
    decoder.feed(std::span(&byte, 1));
    while (auto frame = decoder.next()) out.push_back(*frame);
  }
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], "first");
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(out[2], std::string(1000, 'z'));
}

TEST(Framing, PartialHeaderAndPayloadWaitForMoreBytes) {
  const auto frame = encode_frame(std::string("payload"));
  FrameDecoder decoder;
  decoder.feed(std::span(frame.data(), 2));
  EXPECT_FALSE(decoder.next().has_value());
  decoder.feed(std::span(frame.data() + 2, 5));
  EXPECT_FALSE(decoder.next().has_value());
  decoder.feed(std::span(frame.data() + 7, frame.size() - 7));
  EXPECT_EQ(decoder.next().value_or("<none>"), "payload");
  EXPECT_FALSE(decoder.failed());
}

TEST(Framing, OversizedFrameFailsBeforeItsPayloadArrives) {
  FrameDecoder decoder(1024);
  const std::uint8_t header[] = {0x00, 0x00, 0x04, 0x01};  // 1025 bytes announced
  decoder.feed(header);
  EXPECT_FALSE(decoder.next().has_value());
  ASSERT_TRUE(decoder.failed());
  EXPECT_NE(decoder.error().find("1025"), std::string::npos) << decoder.error();
  EXPECT_NE(decoder.error().find("1024"), std::string::npos) << decoder.error();
  // A failed decoder stays failed: nothing after the bad header is ever returned.
  decoder.feed(bytes(encode_frame(std::string("ok"))));
  EXPECT_FALSE(decoder.next().has_value());
}

TEST(Framing, FrameExactlyAtTheMaximumIsAccepted) {
  FrameDecoder decoder(16);
  decoder.feed(bytes(encode_frame(std::string(16, 'a'))));
  EXPECT_EQ(decoder.next().value_or(""), std::string(16, 'a'));
  EXPECT_FALSE(decoder.failed());
}

TEST(Framing, RandomGarbageNeverYieldsMoreThanWasFed) {
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::uint8_t> garbage(rng() % 64);
    for (auto& b : garbage) b = static_cast<std::uint8_t>(rng());
    FrameDecoder decoder(32);
    decoder.feed(garbage);
    std::size_t total = 0;
    while (auto frame = decoder.next()) total += frame->size() + kFrameHeaderSize;
    EXPECT_LE(total, garbage.size());
    EXPECT_LE(decoder.buffered(), garbage.size());
  }
}

TEST(Framing, LongSessionsDoNotAccumulateConsumedBytes) {
  FrameDecoder decoder;
  const auto frame = encode_frame(std::string(1000, 'q'));
  for (int i = 0; i < 500; ++i) {
    decoder.feed(bytes(frame));
    ASSERT_TRUE(decoder.next().has_value());
  }
  EXPECT_EQ(decoder.buffered(), 0u);
}

}  // namespace
}  // namespace riposte
