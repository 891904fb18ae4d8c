#include "common/utf8.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace riposte {

// Its serializer replaces invalid UTF-8 with U+FFFD when told to; reading its output back gives
// the repaired text.
std::string as_utf8(std::string_view text) {
  return nlohmann::json::parse(
             nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

namespace {

// The escape introducer, U+FFFD REPLACEMENT CHARACTER, in UTF-8.
constexpr std::string_view kEscape = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence starting at text[i] (1-4), or 0 when the byte there does not
// start one. Written out (RFC 3629, table 3-7 of the Unicode standard) because the escape needs to
// know where each invalid byte is; the validators at hand (nlohmann's writer, Protobuf's parser)
// only say whether a whole string is valid. The same rules as Protobuf's: what this accepts,
// Protobuf parses (checked by tests/common/utf8_test.cpp).
std::size_t sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return n;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Like sequence_length, but NUL counts as invalid too: wire text carries none (no OS path or name
// holds one, and PostgreSQL text cannot store it), so a NUL a peer sends is escaped.
std::size_t wire_length(std::string_view text, std::size_t i) {
  return text[i] == '\0' ? 0 : sequence_length(text, i);
}

// Whether text[i] starts an escape: U+FFFD and two hex digits.
bool escape_at(std::string_view text, std::size_t i) {
  return text.substr(i, kEscape.size()) == kEscape && i + kEscape.size() + 2 <= text.size() &&
         hex_value(text[i + 3]) >= 0 && hex_value(text[i + 4]) >= 0;
}

void append_escaped(std::string& out, unsigned char byte) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += kEscape;
  out += kHex[byte >> 4];
  out += kHex[byte & 0xF];
}

}  // namespace

// The same rules as nlohmann's writer (Hoehrmann's decoder, RFC 3629) and Protobuf's parser.
bool is_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto n = sequence_length(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) {
    std::size_t end = max_bytes;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
  }
  return is_utf8(text) ? std::string(text) : as_utf8(text);
}

std::string to_wire_text(std::string_view bytes) {
  // The common case, text that is valid and holds no U+FFFD, is returned as it is.
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto n = wire_length(bytes, i);
    if (n == 0 || bytes.substr(i, n) == kEscape) break;
    i += n;
  }
  if (i == bytes.size()) return std::string(bytes);
  std::string out(bytes.substr(0, i));
  out.reserve(bytes.size() + 16);
  while (i < bytes.size()) {
    const auto n = wire_length(bytes, i);
    if (n == 0) {
      append_escaped(out, static_cast<unsigned char>(bytes[i]));
      ++i;
    } else if (bytes.substr(i, n) == kEscape) {
      for (char c : kEscape) append_escaped(out, static_cast<unsigned char>(c));
      i += n;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool is_wire_text(std::string_view text) { return from_wire_text(text).ok(); }

Result<std::string> from_wire_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto n = wire_length(text, i);
    if (n == 0) return Error{fmt::format("byte {} is a NUL or not valid UTF-8", i)};
    if (text.substr(i, n) != kEscape) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    if (!escape_at(text, i)) {
      return Error{fmt::format(
          "U+FFFD at byte {} is not followed by two hex digits (wire text writes a byte that is "
          "not UTF-8 as U+FFFD and its hex value, e.g. \"\\uFFFDff\")",
          i)};
    }
    out.push_back(static_cast<char>(hex_value(text[i + 3]) * 16 + hex_value(text[i + 4])));
    i += kEscape.size() + 2;
  }
  // One name, one spelling: an escape of a byte that needs none ("\uFFFD2f" for '/'), upper-case
  // hex, or escapes that together make a valid character would let two texts name one file.
  if (to_wire_text(out) != text)
    return Error{
        "not wire text as the agent writes it (an escape of a byte that needs none, or "
        "upper-case hex); use the name exactly as shown"};
  return out;
}

}  // namespace riposte
