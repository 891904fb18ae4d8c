#include "common/utf8.h"

#include <nlohmann/json.hpp>

namespace riposte {

// nlohmann's serializer is the UTF-8 validator used: it is the writer the text must pass.
bool is_utf8(std::string_view text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

// Its serializer replaces invalid UTF-8 with U+FFFD when told to; reading its output back gives
// the repaired text.
std::string as_utf8(std::string_view text) {
  return nlohmann::json::parse(
             nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

}  // namespace riposte
