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
// An action step's effective mode is the lowest of what it declares, the run's own limit (an
// analyst's run only simulates) and the autonomy ceiling of every asset it would touch
// (autonomy_policy.h), with the reason recorded:
//   simulate  the signed action is recorded as `simulated` beside the real ones; nothing is sent;
//   approve   an approval request waits for a second operator (not the run's starter); the
//             approver's name is signed into the ActionSpec; denied or expired fails the step;
//   auto      dispatched at once.
// Failed steps are retried (retries, backoff doubling each time), then follow on_failure (a step,
// `stop` or `escalate`); a step's actions not ended by its timeout fail it. When a run ends the
// responder webhook, if configured, gets its summary and the case link.
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
  // Prefix of a case's link in notifications, e.g. "https://soc.example:8443/api/v1/cases/".
  std::string case_link_prefix;
};

class PlaybookEngine {
 public:
  PlaybookEngine(PlaybookEngineDeps deps, std::vector<Playbook> playbooks);
  ~PlaybookEngine();

  const std::vector<Playbook>& playbooks() const { return playbooks_; }
  // Set once the API listens, before resume().
  void set_case_link_prefix(std::string prefix) { deps_.case_link_prefix = std::move(prefix); }

  // An alert's validation and enrichment have ended: starts every playbook whose trigger holds
  // (started_by "controller"). Each (alert, playbook) is started once, however often this is told.
  void alert_ready(const std::string& alert_id);
  // An operator starts `playbook` over an alert; `simulate_only` caps every action at simulate.
  // Errors: unknown playbook or alert, trigger not matching (the reason).
  Result<PlaybookRunRecord> start(const std::string& playbook, const std::string& alert_id,
                                  const std::string& started_by, bool simulate_only);
  // Continues every unfinished run (controller start).
  Status resume();
  // From the dispatcher: an action ended; its run, if any, looks again.
  void action_ended(const std::string& action_id);
  // An approval was decided: its run looks again.
  void approval_decided(const std::string& run_id);
  // Timers: waits and backoffs that are due, step deadlines, approval expiry. Called each second.
  void tick();
  // Blocks until the worker has done everything queued so far (tests).
  void drain();

 private:
  struct StepOutcome;
  void post_advance(const std::string& run_id);
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
  // Ends the run (succeeded, failed or escalated), storing its last step record if given, and
  // tells the responder.
  void finish(const Playbook* playbook, PlaybookRunRecord& run, const std::string& state,
              const std::string& error, const RunStepRecord* last_step);
  Result<PlaybookRunRecord> insert(const Playbook& playbook, const AlertRecord& alert,
                                   const std::string& run_id, const std::string& started_by,
                                   bool simulate_only);
  const Playbook* find(const std::string& name) const;

  PlaybookEngineDeps deps_;
  std::vector<Playbook> playbooks_;
  boost::asio::thread_pool worker_{1};
};

// The JSON form of a run (with its steps when given) for the API and CLI.
nlohmann::json run_json(const PlaybookRunRecord& run, const std::vector<RunStepRecord>* steps);
nlohmann::json approval_json(const ApprovalRecord& approval);

}  // namespace riposte::controller
