#include "controller/dispatch/evidence_policy.h"

#include <fmt/format.h>

#include "common/utf8.h"
#include "controller/dispatch/evidence_store.h"
#include "protocol/action_kinds.h"
#include "protocol/action_outcome.h"
#include "protocol/actions.pb.h"
#include "protocol/wire_text.h"

namespace riposte::controller {

namespace {

namespace ak = action_kind;

// What the action's own result says its one object is.
struct Expected {
  std::string name;
  std::string sha256;
  std::uint64_t size = 0;
  std::uint64_t limit = 0;  // the largest size the action may produce
  std::string limit_why;
};

// The one object the action produced, as its result describes it; an error says why the kind
// brings none.
Result<Expected> expected_object(const ActionRecord& action, const proto::ActionResult& result) {
  proto::ActionSpec spec;
  if (!spec.ParseFromString(action.spec)) return Error{"the action's stored spec does not parse"};
  Expected e;
  if (action.kind == ak::kMemoryCapture) {
    proto::MemoryCaptureParams params;
    proto::MemoryCaptureResult out;
    if (!params.ParseFromString(spec.parameters()) || !parse_repairing(out, result.output()))
      return Error{"the memory.capture result does not parse"};
    e.name = action.id + ".core";
    e.sha256 = out.sha256();
    e.size = out.bytes();
    // The agent caps memory at max_bytes and writes headers and notes besides.
    const bool capped = params.max_bytes() != 0 && params.max_bytes() < out.memory_bytes();
    const std::uint64_t memory = capped ? params.max_bytes() : out.memory_bytes();
    e.limit =
        memory > kMaxEvidenceObjectBytes ? kMaxEvidenceObjectBytes : memory + kCoreHeaderAllowance;
    e.limit_why =
        fmt::format("{} ({}) plus {} of headers",
                    capped ? "the action's max_bytes" : "the process memory the result reports",
                    bytes_text(memory), bytes_text(kCoreHeaderAllowance));
    return e;
  }
  if (action.kind == ak::kFileCollect) {
    proto::FileParams params;
    proto::FileResult out;
    if (!params.ParseFromString(spec.parameters()) || !parse_repairing(out, result.output()))
      return Error{"the file.collect result does not parse"};
    e.name = action.id + ".collected";
    e.sha256 = out.sha256();
    e.size = out.size();
    e.limit = params.max_bytes() == 0 ? kDefaultCollectLimit : params.max_bytes();
    e.limit_why =
        params.max_bytes() == 0 ? "file.collect's default limit" : "the action's max_bytes";
    return e;
  }
  return Error{fmt::format("{} produces no evidence", action.kind)};
}

}  // namespace

EvidenceDecision decide_evidence(const ActionRecord& action, const proto::ActionResult& result,
                                 std::uint64_t declared_in_window, const EvidenceLimits& limits,
                                 std::int64_t now_ms) {
  EvidenceDecision decision;
  if (result.evidence().empty()) return decision;
  auto refuse = [&](const proto::EvidenceRef& ref, std::string reason) {
    decision.refused.push_back({utf8_prefix(ref.sha256(), 64), utf8_prefix(ref.name(), 256),
                                ref.size(), std::move(reason)});
  };
  const auto expected = result.status() == proto::ActionResult::STATUS_SUCCEEDED
                            ? expected_object(action, result)
                            : Result<Expected>(Error{"only a succeeded action brings evidence"});
  bool taken = false;
  std::size_t decided = 0;
  for (const auto& ref : result.evidence()) {
    if (decided++ == kMaxEvidenceRefsDecided) {
      decision.refused.push_back(
          {"", "", 0,
           fmt::format("{} more objects named by one result, not looked at",
                       result.evidence_size() - static_cast<int>(kMaxEvidenceRefsDecided))});
      break;
    }
    if (!expected) {
      refuse(ref, expected.error().message);
    } else if (taken) {
      refuse(ref, fmt::format("{} produces one object", action.kind));
    } else if (!is_sha256_hex(ref.sha256())) {
      refuse(ref, "evidence id is not a SHA-256 hash");
    } else if (ref.name() != expected->name) {
      refuse(ref, fmt::format("{} names its object \"{}\"", action.kind, expected->name));
    } else if (ref.sha256() != expected->sha256 || ref.size() != expected->size) {
      refuse(ref, "hash or size differs from what the action's result reports");
    } else if (ref.size() > expected->limit || ref.size() > kMaxEvidenceObjectBytes) {
      refuse(ref, fmt::format("{} is over the action's limit of {} ({})", bytes_text(ref.size()),
                              bytes_text(expected->limit), expected->limit_why));
    } else if (ref.size() > limits.agent_quota_bytes ||
               declared_in_window > limits.agent_quota_bytes - ref.size()) {  // no overflow
      refuse(ref, fmt::format("the agent's evidence quota ({} per {} h) would be exceeded: {} "
                              "declared already",
                              bytes_text(limits.agent_quota_bytes),
                              limits.quota_window_ms / 3'600'000, bytes_text(declared_in_window)));
    } else {
      taken = true;
      decision.accepted.push_back({ref.sha256(), action.id, action.agent_id, ref.name(), ref.size(),
                                   false, now_ms, std::nullopt});
    }
  }
  return decision;
}

}  // namespace riposte::controller
