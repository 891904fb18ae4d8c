#pragma once

// UTF-8 checks for text that reaches JSON (responses, audit entries, logs): nlohmann::json writes
// only UTF-8 and throws on anything else, so text from the network is checked or repaired first.

#include <string>
#include <string_view>

namespace riposte {

// Whether `text` is valid UTF-8.
bool is_utf8(std::string_view text);
// `text` with every invalid sequence replaced by U+FFFD (unchanged when it is valid).
std::string as_utf8(std::string_view text);

}  // namespace riposte
