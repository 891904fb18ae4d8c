#pragma once

// Which evidence objects an action's result may bring: the controller stores only what the action
// kind produces, as many objects as it produces, named and sized as its own result says, within
// the action's size limit and the agent's quota. An agent's result is its claim; these checks keep
// a compromised agent from turning any action into an upload of anything (`host.facts` with
// 8 MiB named `collected:/etc/shadow`), and bound what one agent can put on the controller's disk.
//
// What each kind declares (agent/action_executor.cpp produces it):
//   memory.capture  one object "<action id>.core": an ELF core of the process. Its size is the
//                   result's `bytes`, at most the process memory the result reports
//                   (`memory_bytes`), or the parameters' `max_bytes` when that is smaller (the
//                   agent applies it to memory, not headers), plus kCoreHeaderAllowance for
//                   headers and notes. Its hash is the result's `sha256`.
//   file.collect    one object "<action id>.collected": the file. Its size is the result's `size`
//                   (the file's size), at most the parameters' `max_bytes` (0 = 1 GiB); its hash
//                   is the result's `sha256`.
//   anything else   none.
// Only a succeeded action brings evidence (a failed capture is removed by the agent).

#include <cstdint>
#include <string>
#include <vector>

#include "controller/store/store.h"
#include "protocol/agent_channel.pb.h"

namespace riposte::controller {

struct EvidenceLimits {
  // Bytes of evidence one agent may declare within `quota_window_ms` (config
  // `evidence.agent_quota_bytes`). A memory capture of a large process is several GiB; a day of
  // them on one host is already an incident of its own.
  std::uint64_t agent_quota_bytes = 64ULL << 30;
  std::int64_t quota_window_ms = 24LL * 3600 * 1000;
};

// ELF header, program headers and notes (registers of every thread, the mapped-file table)
// written before a core's memory: far less than this for any real process.
inline constexpr std::uint64_t kCoreHeaderAllowance = 64ULL << 20;
// file.collect's limit when the parameters set none (agent/action_executor.cpp uses the same).
inline constexpr std::uint64_t kDefaultCollectLimit = 1ULL << 30;
// No object is larger than this whatever a result says (also what the store can record).
inline constexpr std::uint64_t kMaxEvidenceObjectBytes = 256ULL << 30;
// A result naming more objects than this: the first ones are decided, the rest refused as one
// entry ("N more objects"), so a result cannot cost the controller memory, log lines or audit
// bytes by the number of objects it names.
inline constexpr std::size_t kMaxEvidenceRefsDecided = 8;

struct EvidenceDecision {
  std::vector<EvidenceRecord> accepted;
  std::vector<RefusedEvidence> refused;
};

// `action` is the stored action the result answers (kind, parameters, id, agent);
// `declared_in_window` the evidence bytes this agent declared within the quota window before.
EvidenceDecision decide_evidence(const ActionRecord& action, const proto::ActionResult& result,
                                 std::uint64_t declared_in_window, const EvidenceLimits& limits,
                                 std::int64_t now_ms);

}  // namespace riposte::controller
