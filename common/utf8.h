#pragma once

// UTF-8 for text that crosses the agent channel or reaches JSON (responses, audit entries, logs).
// nlohmann::json writes only UTF-8 and throws on anything else, and Protobuf refuses to parse a
// `string` field that is not UTF-8, so text from the network is checked, repaired or escaped first.
//
// Wire text. What the OS hands the agent (process names, command lines, paths, user names, YARA
// targets) is bytes, not always UTF-8: any user can name a process or a file "\xff". Such bytes
// cross the wire losslessly as *wire text*, which is always valid UTF-8:
//   - every byte that is not part of a valid UTF-8 sequence (RFC 3629: no overlong forms, no
//     surrogates, nothing above U+10FFFF), every NUL, and each of the three bytes of a U+FFFD
//     that was in the input, is written as U+FFFD followed by the byte's two lowercase hex digits;
//   - everything else is copied unchanged.
// So "bad\xff\xfe.txt" travels as "bad\uFFFDff\uFFFDfe.txt" (shown "bad�ff�fe.txt"), text that is
// already UTF-8 (the overwhelming case) is untouched, and the agent turns a path it is sent back
// into the exact bytes it names. U+FFFD is the character every UTF-8 reader already shows for a
// broken byte, and the only one escaped, so no other text changes meaning. docs/protocol.md.

#include <string>
#include <string_view>

#include "common/result.h"

namespace riposte {

// Whether `text` is valid UTF-8.
bool is_utf8(std::string_view text);
// `text` with every invalid sequence replaced by U+FFFD (unchanged when it is valid). Lossy: for
// display only.
std::string as_utf8(std::string_view text);

// At most `max_bytes` of `text`, cut where a character starts (a byte count alone can split one,
// and the stored half would make every later JSON write of it throw); invalid sequences in what
// is kept are replaced as as_utf8 does.
std::string utf8_prefix(std::string_view text, std::size_t max_bytes);

// OS bytes -> wire text (see above). Always valid UTF-8; `bytes` itself when it holds no invalid
// sequence and no U+FFFD.
std::string to_wire_text(std::string_view bytes);
// Whether `text` is exactly what to_wire_text makes of something: valid UTF-8 whose every U+FFFD
// starts an escape. Text that needs no escaping is wire text of itself.
bool is_wire_text(std::string_view text);
// Wire text -> the OS bytes it stands for. Fails, naming the offset, on invalid UTF-8 and on a
// U+FFFD not followed by two hex digits (an escape cut short or typed by hand), and on any text
// that is not exactly what to_wire_text writes (upper-case hex, an escaped byte that needed none):
// every byte string has one wire text, so two names never reach one file.
Result<std::string> from_wire_text(std::string_view text);

}  // namespace riposte
