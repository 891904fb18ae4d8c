#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

#include "common/result.h"

namespace riposte {

// Sets the default spdlog logger for a daemon: `level` is trace|debug|info|warn|error, `format` is
// "text" (human-readable) or "json" (one JSON object a line, fields escaped). Under systemd
// (JOURNAL_STREAM set) "text" becomes journal_formatter()'s lines.
Status configure_logging(const std::string& component, const std::string& level,
                         const std::string& format);

// Lines for journald: "<3>agent: message", the syslog priority as an sd-daemon prefix and no
// timestamp (the journal has its own).
std::unique_ptr<spdlog::formatter> journal_formatter();

}  // namespace riposte
