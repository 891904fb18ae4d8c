#pragma once

// Turns an alert document from a SIEM or EDR into Riposte's one alert model. Three formats:
//   ecs     Elastic Security alerts (flat dotted keys and nested objects, mixed in one document;
//           a search hit's `_source` is unwrapped),
//   wazuh   Wazuh alerts, bare or wrapped in an active-response message (`parameters.alert`),
//   generic the documented shape in README "Generic alerts".
// Every field is best effort: a value that is not what its field says (a "hash" that is not hex
// of the right length, a number where text belongs, a date that is neither ISO 8601 nor epoch
// milliseconds) is dropped with a note on the alert naming the field and why, never emitted under
// the wrong type and never the cause of losing the alert. Only a document with nothing usable (no
// rule, no host, no observable) is refused. A search hit's `_source` is unwrapped for every
// format; the format is recognised by its producer's markers (Wazuh: `rule.level` with `agent`,
// `manager`, `decoder` or `location`) before the shipper's (`@timestamp`).

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "common/result.h"
#include "controller/store/store.h"

namespace riposte::controller {

namespace alert_format {
inline constexpr std::string_view kEcs = "ecs";
inline constexpr std::string_view kWazuh = "wazuh";
inline constexpr std::string_view kGeneric = "generic";
}  // namespace alert_format

// "ecs", "wazuh" or "generic" for a document, or an error saying why none fits.
Result<std::string_view> detect_alert_format(const nlohmann::json& document);

// Normalizes one document. `format` forces a format (else it is detected); `received_ms` stands in
// for a missing timestamp. The result's controller-side fields (case, status, ...) are unset.
Result<AlertRecord> normalize_alert(const nlohmann::json& document,
                                    std::optional<std::string_view> format,
                                    std::int64_t received_ms);

// Severity on Riposte's one scale from a 0-100 risk score (Elastic's bands).
std::string_view severity_from_risk_score(double score);

// The value at a dotted path, whichever way the document spells it: `{"host.name": ..}`,
// `{"host": {"name": ..}}` or any mix (`{"kibana.alert": {"rule.name": ..}}`). nullptr if absent.
const nlohmann::json* find_field(const nlohmann::json& document, std::string_view path);

}  // namespace riposte::controller
