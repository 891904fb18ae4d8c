#pragma once

#include <string>

#include "protocol/result.h"

namespace riposte {

// Sets the default spdlog logger for a daemon: `level` is trace|debug|info|warn|error, `format` is
// "text" (human-readable) or "json" (one JSON object a line, fields escaped).
Status configure_logging(const std::string& component, const std::string& level,
                         const std::string& format);

}  // namespace riposte
