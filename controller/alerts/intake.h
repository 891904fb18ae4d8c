#pragma once

// Alert intake: a request body (one alert or a list) is parsed, every document normalized, linked
// to its assets and scored against threat intel, then the whole batch is stored in one
// transaction — or, if any document is bad, nothing is stored and the error names the document
// and field. New alerts are handed on for validation and enrichment.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "controller/alerts/asset_map.h"
#include "controller/intel/threat_intel.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct AlertIntakeOptions {
  std::int64_t case_window_ms = 24LL * 3600 * 1000;
  ConfidenceThresholds thresholds;
  std::size_t max_batch = 10'000;  // documents per request
};

struct IntakeReport {
  std::vector<AlertInsertOutcome> alerts;  // in the order submitted
  int error_status = 0;                    // 400 / 422 / 500 when refused; 0 when stored
  std::string error;
};

// Who submits a batch: an operator (a person) or an integration (role `ingest`, with the highest
// autonomy mode its alerts may start). Recorded on every alert of the batch.
struct AlertSubmitter {
  std::string name;
  std::string role;
  std::string max_mode;  // integrations only; "" for a person
};

class AlertIntake {
 public:
  AlertIntake(Store& store, const ThreatIntel& intel, const AssetCatalog& assets,
              const Clock& clock, AlertIntakeOptions options = {});

  // Told the ids of newly stored (not duplicate) alerts, after they are committed.
  void set_listener(std::function<void(const std::vector<std::string>&)> listener) {
    listener_ = std::move(listener);
  }

  // `format`: nullopt to detect per document, or "ecs" / "wazuh" / "generic".
  IntakeReport submit(std::string_view body, std::optional<std::string_view> format,
                      const AlertSubmitter& submitter);

 private:
  Store& store_;
  const ThreatIntel& intel_;
  const AssetCatalog& assets_;
  const Clock& clock_;
  AlertIntakeOptions options_;
  std::function<void(const std::vector<std::string>&)> listener_;
};

// The JSON stored as `text` (a record's details, validation, ...), or `fallback` when it is
// empty or not JSON.
nlohmann::json parse_json_or(const std::string& text, nlohmann::json fallback);

// The JSON form of an alert for the API and CLI (`riposte alerts show --json`).
nlohmann::json alert_json(const AlertRecord& alert, bool with_raw = true);

}  // namespace riposte::controller
