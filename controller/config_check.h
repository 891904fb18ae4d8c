#pragma once

// `riposte-controller check --config FILE`: everything the controller would refuse or trip over
// at start, checked without starting (no data directory, store, listener or agent needed), for
// the CI pipelines of teams that keep controller.yaml, their playbooks and asset map in git.

#include <nlohmann/json.hpp>

#include "controller/config.h"

namespace riposte::controller {

// {"ok": bool, "checks": [{"what", "ok", "detail"}]}: the configuration (already loaded: its own
// keys and values were checked by load_controller_config), the asset map, every playbook
// directory (each playbook, names unique across them, `webhook:NAME` naming a configured
// webhook) and every intel feed (read as at start, with what each yields). `now_ms` decides
// which indicators have expired.
nlohmann::json check_configuration(const ControllerConfig& config, std::int64_t now_ms);

}  // namespace riposte::controller
