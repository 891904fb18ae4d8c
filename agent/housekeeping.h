#pragma once

// The agent's periodic local work, on its own thread so the controller link's network thread never
// waits on /proc scans or disk: sample the socket table into the connection history, prune it, and
// release a quarantine whose timeout has passed.

#include <chrono>

#include "agent/connection_history.h"
#include "agent/periodic_thread.h"
#include "agent/quarantine_keeper.h"
#include "common/clock.h"
#include "platform/network_table.h"

namespace riposte::agent {

class Housekeeping {
 public:
  Housekeeping(platform::NetworkTable& network, ConnectionHistory& history,
               QuarantineKeeper& quarantine, const Clock& clock, std::chrono::seconds interval);

  // One round, as the thread runs it (exposed for tests).
  void run_once();

 private:
  platform::NetworkTable& network_;
  ConnectionHistory& history_;
  QuarantineKeeper& quarantine_;
  const Clock& clock_;
  PeriodicThread thread_;  // last: stopped before the members it uses go
};

}  // namespace riposte::agent
