#pragma once

// Issues response actions: validates the request, builds one ActionSpec per target agent, signs
// it with the controller's action key, stores it (queued) with its audit entry, and hands it to
// the agent's live session if there is one. Queued actions are (re)sent when their agent
// connects, and expire if they wait past expires_at; results and progress reported by agents
// move them to their final state. Delivery is at least once; the agent's persisted replay check
// makes execution at most once.

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "controller/dispatch/evidence_policy.h"
#include "controller/store/store.h"
#include "protocol/agent_channel.pb.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace riposte::controller {

struct ActionSubmission {
  std::vector<std::string> agent_ids;  // fan-out: one action per agent, one batch
  std::vector<std::string> labels;     // ... plus every non-revoked agent carrying any of these
  std::string kind;
  nlohmann::json parameters = nlohmann::json::object();
  std::int64_t ttl_ms = 5 * 60 * 1000;
  std::string requester;  // the operator (or playbook) asking
  std::string approver;
  std::string case_id;
  std::string playbook_run_id;
  // The same key always yields the same action id for an agent, and submitting the key again
  // returns the actions stored the first time instead of issuing new ones: a playbook run
  // resumed after a crash never acts twice.
  std::string idempotency_key;
  // Sign and record the action exactly as it would be sent, in state `simulated`, and send
  // nothing (a playbook step in simulate mode).
  bool simulate = false;
  // A playbook action step dispatched in `auto` mode, with nobody's approval: counted by the
  // rate limits on automation (store.h count_automatic_actions).
  bool automatic = false;
};

// The content-object kind of YARA rule sets (store.h ContentObjectRecord).
inline constexpr const char* kYaraRulesKind = "yara-rules";

// Whether `text` can be a YARA rule set: not empty, and no NUL byte (libyara reads rule text up
// to its first NUL, so anything after one would be signed for and never compiled).
Status check_rule_text(std::string_view text);

struct DispatchOptions {
  std::int64_t max_ttl_ms = 7LL * 24 * 3600 * 1000;
  // A delivered action with no answer this long after its expiry is marked expired; the agent's
  // own clock-skew allowance must be smaller.
  std::int64_t unanswered_grace_ms = 60'000;
  // Which evidence a result may bring, and each agent's quota (evidence_policy.h).
  EvidenceLimits evidence;
};

class EvidenceStore;

class ActionDispatcher {
 public:
  // Queues an envelope on the agent's live session; false when the agent is not connected.
  using SendToAgent = std::function<bool(const std::string& agent_id, proto::Envelope)>;

  ActionDispatcher(Store& store, EVP_PKEY* action_key, const Clock& clock,
                   DispatchOptions options = {});
  void set_sender(SendToAgent send) { send_ = std::move(send); }
  // Told which evidence objects were refused and why, so that the agent's offer of one is
  // answered with the reason (which the agent logs). Optional.
  void set_evidence_store(EvidenceStore* evidence) { evidence_ = evidence; }
  // Told after an action's final state is stored (from a result or the expiry sweep), on the
  // thread that stored it. For whatever waits on actions (live queries, playbooks, benchmarks).
  // Add observers before the controller starts serving; they must not block.
  using Observer = std::function<void(const std::string& action_id, ActionState state)>;
  void add_observer(Observer observer) { observers_.push_back(std::move(observer)); }

  // Errors name the problem (unknown kind, bad parameters, unknown or revoked agent, ttl) and
  // nothing is stored then. A yara.scan's inline `rules` are stored as a rule set (once, by
  // hash) and the spec names them by `rules_sha256` and `rules_size`; a `rules_sha256` given
  // must name a stored rule set.
  Result<std::vector<ActionRecord>> submit(const ActionSubmission& submission);

  // Stores YARA rule text as a content object (kind "yara-rules") unless already stored, with an
  // audit entry `rule_set.stored` by `who` when new; returns its SHA-256. The bytes are checked
  // only by the agents that compile them.
  struct StoredRuleSet {
    std::string sha256;
    bool created = false;  // false: that exact text was stored before
  };
  Result<StoredRuleSet> store_rule_set(std::string_view text, const std::string& name,
                                       const std::string& who);

  // Called by the gateway once an agent's session is accepted.
  void agent_connected(const std::string& agent_id);
  // Another controller sharing the store queued actions for these agents (Store::
  // watch_queued_actions): sends the still-queued ones to those whose session is here (`held`).
  void queued_elsewhere(const std::vector<std::string>& agent_ids,
                        const std::vector<std::string>& held);
  // Called by the gateway for reports from `agent_id`; returns what to send back, if anything.
  // Only reports about the agent's own open actions count: anything else (another agent's
  // action, an unknown id, one already ended) changes nothing, writes no audit entry, and is
  // counted and logged at a bounded rate (dropped_reports), whoever sends it. Evidence the
  // result names is taken only as evidence_policy.h allows; refused objects are listed, with
  // why, in the action's audit entry.
  std::optional<proto::Envelope> handle_result(const std::string& agent_id,
                                               const proto::ActionResult& result);
  // handle_result for a session that need not wait: `reply` gets the same answer, later and on
  // whichever gateway thread stores it. A result without evidence is stored together with every
  // other one that arrived while the group before it was being written: one transaction for the
  // group (a group commit; nothing waits for a timer, so a lone result is stored at once). The
  // thread that finds no group being written writes them until none is left; the others only
  // queue. Past kMaxQueuedResults or kMaxQueuedResultBytes waiting, a result is stored on the
  // caller's thread, so a flood of results meets the store's pace instead of growing the queue.
  using ResultReply = std::function<void(std::optional<proto::Envelope>)>;
  void handle_result_grouped(const std::string& agent_id, proto::ActionResult result,
                             ResultReply reply);
  static constexpr std::size_t kMaxQueuedResults = 8192;
  static constexpr std::size_t kMaxQueuedResultBytes = 64u << 20;
  void handle_progress(const std::string& agent_id, const proto::ActionProgress& progress);
  // How many reports from `agent_id` were dropped since the controller started.
  std::uint64_t dropped_reports(const std::string& agent_id) const;
  // Marks overdue actions expired; called periodically.
  void expire_due();

 private:
  // yara.scan parameters: inline rules stored and replaced by their hash; returns the hash.
  Result<std::string> attach_rule_set(nlohmann::json& parameters, const std::string& requester);
  // Sends each action to its agent's live session, if any, and records the deliveries in the
  // store (one transaction for all: a fan-out's 10,000 commits wrote every touched page 10,000
  // times) and in `actions`.
  void deliver_all(std::vector<ActionRecord>& actions);

  // Up to this many actions of one submission are logged one line each; more, one line.
  static constexpr std::size_t kActionsLoggedEach = 20;
  // What a result says, as the store records it.
  ActionOutcome outcome_of(const proto::ActionResult& result, std::int64_t now_ms) const;
  // After a result is stored: observers and log when it ended its action, else `dropped`.
  void result_stored(const std::string& agent_id, const std::string& action_id,
                     const ActionOutcome& outcome, bool changed);
  // Writes the queued results, group by group, until the queue is empty (handle_result_grouped).
  void write_result_groups();
  struct QueuedResult {
    ActionOutcomeReport report;
    ResultReply reply;
  };

  // A report that names no open action of the sending agent: counted, and logged at most
  // kDroppedLogsPerMinute times a minute per agent (then once with the number held back).
  void dropped(const std::string& agent_id, const std::string& action_id, std::string_view what);
  static constexpr int kDroppedLogsPerMinute = 5;
  struct DroppedReports {
    std::int64_t window_start_ms = 0;
    int logged = 0;
    std::uint64_t suppressed = 0;
    std::uint64_t total = 0;
  };

  Store& store_;
  EVP_PKEY* action_key_;
  const Clock& clock_;
  DispatchOptions options_;
  SendToAgent send_;
  EvidenceStore* evidence_ = nullptr;
  std::vector<Observer> observers_;
  std::mutex results_mutex_;  // guards the four below
  std::vector<QueuedResult> queued_results_;
  std::size_t queued_result_bytes_ = 0;  // outputs and messages of queued_results_
  bool writing_results_ = false;
  mutable std::mutex dropped_mutex_;  // handle_* run on the gateway's io threads
  std::map<std::string, DroppedReports> dropped_;
};

// The JSON form of an action for the API and CLI.
nlohmann::json action_json(const ActionRecord& action);

}  // namespace riposte::controller
