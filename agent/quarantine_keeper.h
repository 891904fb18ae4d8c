#pragma once

// Keeps the host's quarantine true across agent restarts and expires it on time. The intent is
// written to the state directory before rules change, and restore() makes the firewall match the
// intent on start: a crash between the two can only be resolved towards what was last asked.
// While the agent runs, enforce() (every second, on the watch thread) compares the kernel's table
// with what was applied and puts it back when someone removed or altered it: `systemctl reload
// nftables` with a stock /etc/nftables.conf starts with `flush ruleset`.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "agent/periodic_thread.h"
#include "common/clock.h"
#include "platform/firewall.h"

namespace riposte::agent {

struct QuarantineState {
  platform::QuarantineSpec spec;
  std::optional<std::int64_t> release_at_ms;  // automatic release, if any
  std::string action_id;                      // the network.quarantine action that set it
};

// A quarantine found removed or altered in the kernel, and put back.
struct QuarantineTamper {
  std::string what;  // "removed" or "altered"
  std::string detail;
  std::string action_id;  // the quarantine it undid
  std::int64_t at_ms = 0;
  Status reapplied = ok_status();  // whether putting it back worked
};

inline constexpr const char* kQuarantineFile = "quarantine.json";

// The persisted intent, read without touching the firewall (`riposte-agent status`).
std::optional<QuarantineState> read_quarantine_state(const std::filesystem::path& state_file);

class QuarantineKeeper {
 public:
  QuarantineKeeper(platform::Firewall& firewall, std::filesystem::path state_file,
                   const Clock& clock);

  // Persists the intent, applies it, and reads back what the kernel now enforces.
  Result<platform::EnforcedQuarantine> quarantine(const platform::QuarantineSpec& spec,
                                                  std::optional<std::int64_t> release_at_ms,
                                                  const std::string& action_id = "");
  Status release();
  // On start: re-applies a persisted quarantine, or removes stray rules when none is persisted.
  // Returns whether the host is quarantined afterwards.
  Result<bool> restore();
  // Releases when the automatic-release time has passed; returns true if it released.
  Result<bool> release_if_due();
  std::optional<QuarantineState> current() const;
  // What the kernel enforces now (network.status, `riposte-agent status`).
  Result<platform::EnforcedQuarantine> enforced() { return firewall_.enforced(); }

  // With a quarantine intended: when the kernel's table is gone or differs from what was applied,
  // applies it again and returns what was found. nullopt when all is as it should be.
  std::optional<QuarantineTamper> enforce();

 private:
  // Applies `spec` and reads the table back (remembering its listing); mutex_ held.
  Result<platform::EnforcedQuarantine> apply_locked(const platform::QuarantineSpec& spec);

  platform::Firewall& firewall_;
  std::filesystem::path state_file_;
  const Clock& clock_;
  std::mutex mutex_;             // one change of rules at a time: actions and the watch thread
  std::string applied_listing_;  // the table as listed right after this agent applied it
};

// Calls keeper.enforce() every `interval` on its own thread and hands each tamper found to
// `on_tamper` (log it, tell the controller). Stops on destruction.
class QuarantineWatch {
 public:
  QuarantineWatch(QuarantineKeeper& keeper, std::chrono::milliseconds interval,
                  std::function<void(const QuarantineTamper&)> on_tamper);

 private:
  PeriodicThread thread_;
};

}  // namespace riposte::agent
