#pragma once

// The agent's periodic local work, on its own thread so the controller link's network thread never
// waits on /proc scans or disk: sample the socket table into the connection history, prune it, and
// release a quarantine whose timeout has passed.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "agent/connection_history.h"
#include "agent/quarantine_keeper.h"
#include "common/clock.h"
#include "platform/network_table.h"

namespace riposte::agent {

class Housekeeping {
 public:
  Housekeeping(platform::NetworkTable& network, ConnectionHistory& history,
               QuarantineKeeper& quarantine, const Clock& clock, std::chrono::seconds interval);
  ~Housekeeping();  // stops the thread

  // One round, as the thread runs it (exposed for tests).
  void run_once();

 private:
  void loop();

  platform::NetworkTable& network_;
  ConnectionHistory& history_;
  QuarantineKeeper& quarantine_;
  const Clock& clock_;
  std::chrono::seconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace riposte::agent
