// libFuzzer target for the alert normalizers: whatever document a SIEM sends, normalize_alert
// returns an alert or an error, never crashes, throws or hangs. The format is the environment's
// RIPOSTE_FUZZ_FORMAT: ecs, wazuh, generic, or unset for detection (scripts/fuzz.sh runs each).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "controller/alerts/normalizer.h"

using namespace riposte::controller;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto document = nlohmann::json::parse(data, data + size, nullptr, false);
  if (document.is_discarded()) return 0;
  static const std::string kFormat = std::getenv("RIPOSTE_FUZZ_FORMAT") != nullptr
                                         ? std::getenv("RIPOSTE_FUZZ_FORMAT")
                                         : "";
  const auto format =
      kFormat.empty() ? std::optional<std::string_view>() : std::optional<std::string_view>(kFormat);
  if (auto alert = normalize_alert(document, format, 1'790'000'000'000)) {
    // What the intake does next with it.
    (void)alert->raw.size();
    for (const auto& o : alert->observables) (void)canonical_observable(o.type, o.value);
  }
  (void)detect_alert_format(document);
  return 0;
}
