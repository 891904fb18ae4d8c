// Wire text (common/utf8.h): OS bytes that are not UTF-8 cross the wire as valid UTF-8 and come
// back as the same bytes; text that is UTF-8 already is untouched.

#include "common/utf8.h"

#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "protocol/actions.pb.h"

namespace riposte {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(WireText, Utf8TextIsUnchanged) {
  for (const std::string text : {"", "sshd", "/usr/bin/python3 -c 'print(1)'", "C:\\Windows\\x.exe",
                                 "naïve café 東京 🦊", "100% \\x41 \"quoted\""}) {
    EXPECT_EQ(to_wire_text(text), text);
    EXPECT_TRUE(is_wire_text(text));
    EXPECT_EQ(from_wire_text(text).value(), text);
  }
}

TEST(WireText, BytesThatAreNotUtf8BecomeReplacementAndHex) {
  EXPECT_EQ(to_wire_text("bad\xff\xfe.txt"), "bad" + kFffd + "ff" + kFffd + "fe.txt");
  // Each invalid form of RFC 3629 is escaped byte by byte: a lone continuation byte, an overlong
  // '/', a surrogate, a code point above U+10FFFF, a sequence cut short at the end.
  EXPECT_EQ(to_wire_text("\x80"), kFffd + "80");
  EXPECT_EQ(to_wire_text("\xC0\xAF"), kFffd + "c0" + kFffd + "af");
  EXPECT_EQ(to_wire_text("\xED\xA0\x80"), kFffd + "ed" + kFffd + "a0" + kFffd + "80");
  EXPECT_EQ(to_wire_text("\xF4\x90\x80\x80"),
            kFffd + "f4" + kFffd + "90" + kFffd + "80" + kFffd + "80");
  EXPECT_EQ(to_wire_text("ok\xE2\x82"), "ok" + kFffd + "e2" + kFffd + "82");
  // NUL is escaped too: PostgreSQL text cannot hold it.
  EXPECT_EQ(to_wire_text(std::string("a\0b", 3)), "a" + kFffd + "00b");
}

TEST(WireText, AReplacementCharacterInTheInputIsEscapedSoNothingIsAmbiguous) {
  // A file really named "x\uFFFDff" is not the file named "x\xff".
  const std::string genuine = "x" + kFffd + "ff";
  const std::string escaped = to_wire_text(genuine);
  EXPECT_EQ(escaped, "x" + kFffd + "ef" + kFffd + "bf" + kFffd + "bdff");
  EXPECT_EQ(from_wire_text(escaped).value(), genuine);
  EXPECT_EQ(from_wire_text(to_wire_text("x\xff")).value(), "x\xff");
  EXPECT_NE(to_wire_text("x\xff"), escaped);
}

TEST(WireText, MalformedWireTextIsRefusedWithWhere) {
  const auto cut = from_wire_text("abc" + kFffd + "f");
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("byte 3"), std::string::npos) << cut.error().message;
  EXPECT_FALSE(from_wire_text(kFffd + "zz"));
  EXPECT_FALSE(from_wire_text("raw\xff"));
  EXPECT_FALSE(from_wire_text(std::string("nul\0", 4)));
  EXPECT_FALSE(is_wire_text(kFffd));
  // One byte string, one wire text: nothing else decodes, so two texts never name one file.
  EXPECT_FALSE(from_wire_text(kFffd + "FF")) << "upper-case hex";
  EXPECT_FALSE(from_wire_text("/tmp" + kFffd + "2fx")) << "an escaped '/'";
  EXPECT_FALSE(from_wire_text(kFffd + "c3" + kFffd + "a9")) << "escapes that make an 'é'";
  EXPECT_EQ(from_wire_text(kFffd + "ff").value(), "\xff");
  EXPECT_EQ(from_wire_text(kFffd + "00").value(), std::string(1, '\0'));
}

// Random bytes, the shapes an attacker controls in a process name or a path: every one becomes
// text Protobuf parses as a `string`, nlohmann writes as JSON, and reads back as the same bytes.
TEST(WireText, RandomBytesRoundTripThroughProtobufAndJson) {
  google::protobuf::LogSilencer quiet;  // serializing the raw bytes below logs each time
  std::mt19937 random(20261207);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(random() % 24, '\0');
    for (auto& b : bytes) {
      // Mostly bytes near UTF-8's edges, where the validators could disagree.
      static constexpr unsigned char kEdges[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1,
                                                 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4,
                                                 0xF5, 0xFF, 0xA0, 0x9F, 0x90, 0x8F, 0xBD};
      b = static_cast<char>(random() % 3 ? kEdges[random() % sizeof(kEdges)] : random() % 256);
    }
    const auto wire = to_wire_text(bytes);
    ASSERT_TRUE(is_utf8(wire));
    ASSERT_TRUE(is_wire_text(wire));
    ASSERT_EQ(is_utf8(bytes) && bytes.find('\0') == std::string::npos &&
                  bytes.find(kFffd) == std::string::npos,
              wire == bytes);
    proto::ProcessEntry entry;
    entry.set_name(wire);
    proto::ProcessEntry parsed;
    ASSERT_TRUE(parsed.ParseFromString(entry.SerializeAsString()));
    ASSERT_NO_THROW((void)nlohmann::json(parsed.name()).dump());
    ASSERT_EQ(from_wire_text(parsed.name()).value(), bytes);
    // Where this file's validator says UTF-8, so do Protobuf's and nlohmann's.
    proto::ProcessEntry raw;
    raw.set_name(bytes);
    proto::ProcessEntry raw_parsed;
    ASSERT_EQ(raw_parsed.ParseFromString(raw.SerializeAsString()), is_utf8(bytes));
    bool json_writes = true;
    try {
      (void)nlohmann::json(bytes).dump();
    } catch (const nlohmann::json::type_error&) {
      json_writes = false;
    }
    ASSERT_EQ(json_writes, is_utf8(bytes));
  }
}

}  // namespace
}  // namespace riposte
