#pragma once

// Runs one response action on this endpoint: maps a kind name (protocol/action_kinds.h) and its
// serialized parameters (protocol/actions.proto) to the platform/ implementation, after the local
// safety policy. Signature, target, expiry and replay checks happen before this, in the session.

#include <filesystem>
#include <functional>
#include <string>

#include "agent/connection_history.h"
#include "agent/local_policy.h"
#include "agent/quarantine_keeper.h"
#include "agent/rule_set_cache.h"
#include "common/clock.h"
#include "platform/files.h"
#include "platform/firewall.h"
#include "platform/logins.h"
#include "platform/memory_capture.h"
#include "platform/network_table.h"
#include "platform/process_control.h"
#include "platform/system_facts.h"
#include "platform/yara_scanner.h"
#include "protocol/agent_channel.pb.h"

namespace riposte::agent {

struct ExecutorContext {
  platform::ProcessControl& processes;
  platform::MemoryCapture& memory;
  platform::Files& files;
  platform::NetworkTable& network;
  platform::YaraScanner& yara;
  platform::Logins& logins;
  platform::SystemFactsSource& facts;
  QuarantineKeeper& quarantine;
  ConnectionHistory& history;
  const LocalPolicy& policy;
  const Clock& clock;
  std::filesystem::path evidence_dir;  // memory captures and collected files
  std::filesystem::path vault_dir;     // quarantined files
  platform::AllowedPeer controller;    // always kept reachable by network.quarantine
  // Optional: reports progress of long actions (memory capture: bytes of the core file), at most
  // a few times per second.
  std::function<void(const std::string& action_id, std::uint64_t done, std::uint64_t total,
                     const std::string& unit)>
      progress;
  // Optional: bytes of evidence that may still be written before the agent's spool is full.
  std::function<std::uint64_t()> evidence_budget;
  // Optional: a rule set's bytes from the controller (ObjectFetcher), for yara.scan actions that
  // name their rules by hash; without it only inline rules can be scanned with.
  RuleSetCache::Fetch fetch_rule_set;
  std::filesystem::path rule_set_dir;  // where fetched sets are kept; empty: not kept
  // The fallback gateways' controllers (LinkOptions::fallback_gateways): kept reachable by
  // network.quarantine too, or a quarantined host could not fail over.
  std::vector<platform::AllowedPeer> other_controllers;
  // Optional: every address a controller may be reached at now (ControllerLink::
  // controller_addresses: each A and AAAA record of every gateway name, the live session's peer).
  // network.quarantine keeps each reachable on every gateway port.
  std::function<std::vector<std::string>()> controller_addresses;
  // Optional: a heartbeat round trip over the live session (ControllerLink::round_trip). After
  // applying a quarantine the agent proves it still reaches a controller; without an answer in
  // kQuarantineProofTimeout it rolls the quarantine back and the action fails, saying so.
  std::function<bool(std::chrono::milliseconds)> controller_round_trip;
};

inline constexpr std::chrono::milliseconds kQuarantineProofTimeout{5000};

class ActionExecutor {
 public:
  explicit ActionExecutor(ExecutorContext context);

  // Never throws: unknown kinds, unparsable parameters, policy refusals and failures all come back
  // as an ActionResult with a status and a message. Evidence files an action wrote are listed in
  // the result's `evidence`, named by their file name in evidence_dir.
  proto::ActionResult execute(const std::string& action_id, const std::string& kind,
                              const std::string& parameters);

  const std::filesystem::path& evidence_dir() const { return ctx_.evidence_dir; }
  const RuleSetCache& rule_sets() const { return rule_sets_; }

 private:
  ExecutorContext ctx_;
  RuleSetCache rule_sets_;
};

}  // namespace riposte::agent
