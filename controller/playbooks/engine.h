#pragma once

// Runs playbooks for real. A run walks one playbook over one alert, step by step, and every
// move is stored before the next begins (store.h PlaybookRunRecord), so the run row alone says
// where it is: after a crash or restart `resume()` continues each unfinished run from its step
// and attempt.
//
// Nothing is done twice on resume: the actions of a step attempt get ids derived from
// (run, step, attempt), so re-entering a step whose actions were already dispatched finds them
// instead of issuing new ones (ActionSubmission::idempotency_key); an approval request has such
// an id too. Notifications are at least once: one sent just before a crash is sent again.
//
// A run acts for someone: the operator who started it, or, for a run the controller started
// from an alert, the alert's submitter. That person (and the alert's submitter in any case) can
// never decide the run's approvals.
//
// An action step's effective mode is the lowest of what it declares, the run's own limit (an
// analyst's run only simulates), the autonomy ceiling of every asset it would touch, the
// ceiling of the alert's source (an integration's max mode; `approve` for a person's alert) and
// the rate limits on automatic actions (autonomy_policy.h), with the reason recorded:
//   simulate  the signed action is recorded as `simulated` beside the real ones; nothing is sent;
//   approve   an approval request waits for a second operator (not the run's requester); the
//             approver's name is signed into the ActionSpec; expired fails the step, denied
//             ends the run as `denied` (a person decided: never asked again);
//   auto      dispatched at once, unless a rate limit is reached: then it waits for approval,
//             with the limit named on the step and the case. The decision is kept for the
//             step's attempt (a dispatched step stays auto, an asked one stays asked).
// Failed steps are retried (retries, backoff doubling each time), then follow on_failure (a step,
// `stop` or `escalate`); a step's actions not ended by its timeout fail it. A run that ends
// without succeeding (failed, escalated, denied, cancelled) first undoes what it did: every
// succeeded step with an `undo` action, newest first, each recorded as step `undo:ID`.
// When a run ends the responder webhook, if configured, gets its summary and the case link.
// Webhook posts are rate limited per URL (NotificationLimiter); a notify step whose named
// webhook is not configured is skipped with a note, not failed.
//
// All run work happens on one worker thread, in order, so a run is never advanced twice at once.

#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "controller/alerts/asset_map.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/playbooks/autonomy_policy.h"
#include "controller/playbooks/notification_limiter.h"
#include "controller/playbooks/playbook.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct PlaybookEngineDeps {
  Store& store;
  ActionDispatcher& dispatcher;
  const AssetCatalog& assets;
  const AutonomyPolicy& autonomy;
  const Clock& clock;
  // POSTs a JSON body to an HTTPS webhook; blocking (runs on the engine's worker).
  std::function<Status(const std::string& url, const nlohmann::json& body)> post_webhook;
  // Told when a run ends (responder notification); "" for none.
  std::string responder_webhook;
  // Named webhooks a notify step's `url: webhook:NAME` refers to (secrets stay out of playbooks).
  std::map<std::string, std::string> webhooks;
  // Prefix of a case's link in notifications, e.g. "https://soc.example:8443/ui/cases/".
  std::string case_link_prefix;
  // Prefix of an approval's link, e.g. "https://soc.example:8443/ui/approvals/".
  std::string approval_link_prefix;
};

class PlaybookEngine {
 public:
  PlaybookEngine(PlaybookEngineDeps deps, std::vector<Playbook> playbooks);
  ~PlaybookEngine();

  const std::vector<Playbook>& playbooks() const { return playbooks_; }
  // The loaded playbook of that name; null when there is none.
  const Playbook* find(const std::string& name) const;
  // The policy and the asset map runs are held to (impact maps and backtests use the same).
  const AutonomyPolicy& autonomy() const { return deps_.autonomy; }
  const AssetCatalog& assets() const { return deps_.assets; }
  // Set once the API listens, before resume().
  void set_link_prefixes(std::string case_prefix, std::string approval_prefix) {
    deps_.case_link_prefix = std::move(case_prefix);
    deps_.approval_link_prefix = std::move(approval_prefix);
  }

  // An alert's validation and enrichment have ended: starts every playbook whose trigger holds
  // (started_by "controller"). Each (alert, playbook) is started once, however often this is told.
  void alert_ready(const std::string& alert_id);
  // An operator starts `playbook` over an alert; `simulate_only` caps every action at simulate.
  // Errors: unknown playbook or alert, trigger not matching (the reason), and, unless `force`,
  // an unfinished run of the same playbook over the alert ("an unfinished run ID ...").
  Result<PlaybookRunRecord> start(const std::string& playbook, const std::string& alert_id,
                                  const std::string& started_by, bool simulate_only,
                                  bool force = false);
  // Stops an unfinished run: its pending approvals are cancelled, what it did is undone, and it
  // ends `cancelled` with `by` and `reason` recorded and audited. Errors: no such run, already
  // ended or already undoing. When another controller sharing the store holds the run's lease
  // (it may be dispatching a step this moment), the cancel is recorded for that controller to
  // carry out at its next look (within a tick) and the run is returned unfinished, with its
  // cancel_request set.
  Result<PlaybookRunRecord> cancel(const std::string& run_id, const std::string& by,
                                   const std::string& reason);
  // Continues every unfinished run (controller start).
  Status resume();
  // From the dispatcher: an action ended; its run, if any, looks again.
  void action_ended(const std::string& action_id);
  // An approval was decided: its run looks again.
  void approval_decided(const std::string& run_id);
  // Timers: waits and backoffs that are due, step deadlines, approval expiry; leases renewed and
  // runs of a stopped controller taken over. Called each second.
  void tick();

  // Controllers sharing a store work on a run only while holding its lease (Store::claim_run):
  // renewed every kRunLeaseRenewMs, lost kRunLeaseMs after its controller stopped.
  static constexpr std::int64_t kRunLeaseMs = 30'000;
  static constexpr std::int64_t kRunLeaseRenewMs = 10'000;
  // Blocks until the worker has done everything queued so far (tests).
  void drain();

 private:
  struct StepOutcome;
  void post_advance(const std::string& run_id);
  // Once `run` is stored waiting for actions: if they have all ended meanwhile, looks again.
  // With controllers sharing a store, an action that ended on another controller before the
  // run was stored as waiting found nothing to wake (Store::wake_run), and would otherwise be
  // noticed only at the step's deadline.
  void look_again_if_actions_ended(const PlaybookRunRecord& run);
  void advance(const std::string& run_id);
  StepOutcome execute(const Playbook& playbook, const PlaybookStep& step, PlaybookRunRecord& run,
                      nlohmann::json& context);
  StepOutcome run_actions(const Playbook& playbook, const PlaybookStep& step,
                          PlaybookRunRecord& run, const nlohmann::json& context);
  // Why `run` may not close its case now (another run unfinished, or one that contained it);
  // "" when it may.
  std::string closing_blocked_by(const PlaybookRunRecord& run);
  StepOutcome gate(const PlaybookStep& step, PlaybookRunRecord& run, const std::string& what,
                   const nlohmann::json& impact, const std::string& reason,
                   std::int64_t expires_ms);
  // The run ends as `state`: unless it succeeded, its undo steps run first (compensate), then
  // finish.
  // The cancel itself, on a run this controller holds (worker thread): approvals cancelled,
  // audited, undone, ended `cancelled`.
  Status cancel_held(PlaybookRunRecord run, const std::string& by, const std::string& reason);
  void end(const Playbook* playbook, PlaybookRunRecord& run, nlohmann::json& context,
           const std::string& state, const std::string& error, const RunStepRecord* last_step);
  // Runs the undo steps queued in context.run.undo, one at a time, waiting for their actions;
  // finishes the run when none remain.
  void compensate(const Playbook& playbook, PlaybookRunRecord& run, nlohmann::json& context);
  // Ends the run (succeeded, failed, escalated, denied or cancelled), storing its last step
  // record if given, and tells the responder.
  void finish(const Playbook* playbook, PlaybookRunRecord& run, const std::string& state,
              const std::string& error, const RunStepRecord* last_step);
  // advance's work. advance() catches what it throws (a fault on this run's data): the run is
  // due again kRunFaultRetryMs later, up to kMaxRunFaults faults, then failed with the reason, so
  // that it is not resumed into the same fault at every start, here or on another controller.
  void advance_held(const std::string& run_id);
  void fault(const std::string& run_id, const std::string& what);
  // Posts `fn` to the worker; an exception it throws is logged instead of ending the controller.
  template <typename Fn>
  void post_guarded(std::string what, Fn fn);
  // Why an automatic step must wait for approval instead ("" when within every rate limit).
  std::string rate_limited(const Playbook& playbook, const std::vector<AgentRecord>& targets,
                           std::int64_t now_ms);
  // Posts through the per-webhook rate limit; false with `held` set when kept for a digest.
  Status post_limited(const std::string& url, const nlohmann::json& body, bool* held);
  Result<PlaybookRunRecord> insert(const Playbook& playbook, const AlertRecord& alert,
                                   const std::string& run_id, const std::string& started_by,
                                   bool simulate_only);

  PlaybookEngineDeps deps_;
  std::vector<Playbook> playbooks_;
  NotificationLimiter notifications_;  // used on the worker thread only
  std::int64_t leases_renewed_at_ms_ = 0;  // worker thread only
  std::map<std::string, int> faults_;      // internal errors per run still failing; worker only
  static constexpr int kMaxRunFaults = 3;
  static constexpr std::int64_t kRunFaultRetryMs = 5'000;
  boost::asio::thread_pool worker_{1};
};

// Whether a cancel asked through another controller waits for the run's holder to carry it out.
bool cancel_pending(const PlaybookRunRecord& run);
// The JSON form of a run (with its steps when given) for the API and CLI.
nlohmann::json run_json(const PlaybookRunRecord& run, const std::vector<RunStepRecord>* steps);
nlohmann::json approval_json(const ApprovalRecord& approval);

}  // namespace riposte::controller
