#pragma once

// The API's alert, intel, asset and case routes (README "API"): the handlers behind ApiRouter,
// which has already authenticated the caller and checked the role.

#include <functional>

#include "controller/alerts/asset_map.h"
#include "controller/alerts/intake.h"
#include "controller/api/router_types.h"
#include "controller/intel/threat_intel.h"

namespace riposte::controller {

struct AlertApiDeps {
  Store& store;
  AlertIntake& intake;
  const ThreatIntel& intel;
  const AssetCatalog& assets;
  ConfidenceThresholds thresholds;
  // Reloads intel feeds and the asset map from their files (what SIGHUP does).
  std::function<Status()> reload;
};

class AlertApi {
 public:
  explicit AlertApi(AlertApiDeps deps) : deps_(std::move(deps)) {}

  // Records the caller as the alerts' submitter (their authority; see AlertSubmitter).
  ApiResponse submit(const ApiRequest& request, const ApiTokenRecord& caller);
  ApiResponse list(const ApiRequest& request);
  ApiResponse show(const std::string& id);
  ApiResponse lookup(const ApiRequest& request);
  ApiResponse feeds();
  ApiResponse reload(const std::string& actor);
  ApiResponse assets();

 private:
  AlertApiDeps deps_;
};

}  // namespace riposte::controller
