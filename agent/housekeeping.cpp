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
      interval_(interval) {
  thread_ = std::thread([this] { loop(); });
}

Housekeeping::~Housekeeping() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

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

void Housekeeping::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    run_once();
    lock.lock();
    wake_.wait_for(lock, interval_, [&] { return stopping_; });
  }
}

}  // namespace riposte::agent
