#pragma once

// `riposte-controller status`: initialized?, running (pid, since)?, serving (the API answers
// /healthz over TLS, checked against the controller's own CA)?, how many agents are enrolled and
// connected (on PostgreSQL, also each controller sharing the database and the agents it holds),
// where the first admin token was left, and the last error. Read from the data directory
// (status.json, controller.json), the store's database (SQLite opened read-only; PostgreSQL only
// read) and one local HTTPS request; it changes nothing.

#include <nlohmann/json.hpp>
#include <string>

#include "controller/config.h"

namespace riposte::controller {

// Where the unit's `init --admin-token-file` leaves the first admin token.
inline constexpr const char* kAdminTokenFile = "admin.token";

struct ControllerHealth {
  nlohmann::json report;  // the --json form
  bool healthy = false;   // initialized, running and answering
};

ControllerHealth controller_health(const ControllerConfig& config);
std::string render_controller_health(const nlohmann::json& report);

}  // namespace riposte::controller
