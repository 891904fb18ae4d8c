#pragma once

// Wire text at the level of messages (common/utf8.h defines wire text): every `string` field of
// every message that crosses the agent channel holds wire text, so that Protobuf (which refuses a
// `string` that is not UTF-8) and JSON readers take it, and the bytes it stands for are not lost.
//
// - The agent escapes what it sends: escape_text_fields on each result message before it is
//   serialized into ActionResult.output, and on each Envelope its channel writes.
// - The controller repairs what an agent did not escape (an older agent, or a hostile one):
//   parse_repairing reads a message whose `string` fields hold any bytes and escapes them exactly
//   as the agent would have, so that one process with an odd name never turns a whole result into
//   nothing.

#include <google/protobuf/message.h>

#include <string_view>

#include "common/result.h"

namespace riposte {

// Rewrites every `string` field of `message` (nested messages, repeated fields and maps included;
// `bytes` fields untouched) as to_wire_text of itself. Returns whether anything changed.
bool escape_text_fields(google::protobuf::Message& message);

// Rewrites as wire text only the `string` fields that are not valid UTF-8 (a safety net for text
// that should have been escaped where it was read from the OS). Returns whether anything changed.
bool repair_text_fields(google::protobuf::Message& message);

// Whether every `string` field of `message` is valid UTF-8, so that Protobuf will parse it.
bool text_fields_are_utf8(const google::protobuf::Message& message);

// Cuts every `string` field of `message` longer than `max_bytes` to at most that many bytes, on a
// character boundary, ending in "…": what a peer says is data, bounded before it reaches a log, the
// audit chain or the database. Returns how many fields were cut.
int bound_text_fields(google::protobuf::Message& message, std::size_t max_bytes);

// How parse_repairing read the bytes.
enum class ParseRepair {
  none,      // parsed as it was
  repaired,  // parsed after escaping `string` fields that were not UTF-8
};

// Parses `serialized` into `message` (cleared first). Where the strict parse fails, reads it again
// with every `string` field taken as bytes and escapes them into wire text. Fails, with Protobuf's
// reason, only when the bytes are not a `message` at all. `message` must be one of the generated
// messages of protocol/*.proto.
Result<ParseRepair> parse_repairing(google::protobuf::Message& message,
                                    std::string_view serialized);

}  // namespace riposte
