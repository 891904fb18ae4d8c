#pragma once

// Keeps the host's quarantine true across agent restarts and expires it on time. The intent is
// written to the state directory before rules change, and restore() makes the firewall match the
// intent on start: a crash between the two can only be resolved towards what was last asked.

#include <cstdint>
#include <filesystem>
#include <optional>

#include "common/clock.h"
#include "platform/firewall.h"

namespace riposte::agent {

struct QuarantineState {
  platform::QuarantineSpec spec;
  std::optional<std::int64_t> release_at_ms;  // automatic release, if any
};

inline constexpr const char* kQuarantineFile = "quarantine.json";

// The persisted intent, read without touching the firewall (`riposte-agent status`).
std::optional<QuarantineState> read_quarantine_state(const std::filesystem::path& state_file);

class QuarantineKeeper {
 public:
  QuarantineKeeper(platform::Firewall& firewall, std::filesystem::path state_file,
                   const Clock& clock);

  Status quarantine(const platform::QuarantineSpec& spec,
                    std::optional<std::int64_t> release_at_ms);
  Status release();
  // On start: re-applies a persisted quarantine, or removes stray rules when none is persisted.
  // Returns whether the host is quarantined afterwards.
  Result<bool> restore();
  // Releases when the automatic-release time has passed; returns true if it released.
  Result<bool> release_if_due();
  std::optional<QuarantineState> current() const;

 private:
  platform::Firewall& firewall_;
  std::filesystem::path state_file_;
  const Clock& clock_;
};

}  // namespace riposte::agent
