#pragma once

// The real Linux platform objects an agent's executor works with, in a temporary state
// directory: what tests and benchmarks of the agent's action path build on. Inherit from it (it
// owns `dir`, so it is ready before the deriving fixture's own members).

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "agent/action_executor.h"
#include "platform/files.h"
#include "platform/firewall.h"
#include "platform/logins.h"
#include "platform/memory_capture.h"
#include "platform/network_table.h"
#include "platform/process_control.h"
#include "platform/system_facts.h"
#include "platform/yara_scanner.h"
#include "tests/test_dir.h"

namespace riposte::agent {

struct RealPlatform {
  RealPlatform() {
    history = ConnectionHistory::open(dir.path() / "connections.db").value();
    std::filesystem::create_directories(dir.path() / "evidence");
  }

  // The executor's view of all of it; the controller is 127.0.0.1:`controller_port`.
  ExecutorContext context(std::uint16_t controller_port = 7443,
                          std::function<std::uint64_t()> evidence_budget = nullptr) {
    return ExecutorContext{*processes,
                           *memory,
                           *files,
                           *network,
                           *yara,
                           *logins,
                           *facts,
                           quarantine,
                           *history,
                           policy,
                           clock,
                           dir.path() / "evidence",
                           dir.path() / "vault",
                           {"127.0.0.1", controller_port, "tcp"},
                           nullptr,
                           std::move(evidence_budget)};
  }

  testing::TempDir dir;
  SystemClock clock;
  std::unique_ptr<platform::ProcessControl> processes = platform::make_process_control();
  std::unique_ptr<platform::MemoryCapture> memory = platform::make_memory_capture();
  std::unique_ptr<platform::Files> files = platform::make_files();
  std::unique_ptr<platform::NetworkTable> network = platform::make_network_table();
  std::unique_ptr<platform::YaraScanner> yara = platform::make_yara_scanner();
  std::unique_ptr<platform::Logins> logins = platform::make_logins();
  std::unique_ptr<platform::SystemFactsSource> facts = platform::make_system_facts_source();
  std::unique_ptr<platform::Firewall> firewall = platform::make_firewall();
  QuarantineKeeper quarantine{*firewall, dir.path() / "quarantine.json", clock};
  std::unique_ptr<ConnectionHistory> history;
  LocalPolicy policy{{}, ::getpid()};
};

}  // namespace riposte::agent
