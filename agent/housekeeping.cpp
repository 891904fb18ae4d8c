#include "agent/housekeeping.h"

#include <spdlog/spdlog.h>

namespace riposte::agent {

Housekeeping::Housekeeping(platform::NetworkTable& network, ConnectionHistory& history,
                           QuarantineKeeper& quarantine, const Clock& clock,
                           std::chrono::seconds interval)
    : network_(network),
      history_(history),
      quarantine_(quarantine),
      clock_(clock),
      thread_(interval, [this] { run_once(); }) {}

void Housekeeping::run_once() {
  const auto now = clock_.now_unix_ms();
  if (auto connections = network_.connections(); !connections) {
    spdlog::warn("agent: cannot read the socket table: {}", connections.error().message);
  } else if (auto s = history_.record(*connections, now); !s) {
    spdlog::warn("agent: cannot record connections: {}", s.error().message);
  }
  if (auto pruned = history_.prune(now); !pruned) spdlog::warn("agent: {}", pruned.error().message);
  if (auto released = quarantine_.release_if_due(); !released) {
    spdlog::error("agent: automatic quarantine release failed: {}", released.error().message);
  } else if (*released) {
    spdlog::warn("agent: quarantine timeout reached; network released");
  }
}

}  // namespace riposte::agent
