#pragma once

// Asking agents questions for the controller's own decisions (alert validation, enrichment):
// each question is a signed read-only action dispatched like any other (so it is audited and
// verified by the agent), and the answers are collected until all have ended or a deadline
// passes. Questions that got no answer are reported as such, never dropped.
//
// An alert storm asks the same question many times (300 alerts about one IP: "did you talk to
// it?" to every agent, 300 times). A question identical to one still in flight (same agent,
// kind and parameters) waits for that action's answer instead of issuing another: with the
// pipeline's alerts in flight bounded (AlertPipelineOptions::max_in_flight), the fan-out to
// agents per batch of alerts is bounded by its distinct questions. The answer names the action
// that answered it (filed under the case of the alert that asked first). An answer is never
// reused once given: a process started or a connection made a second later must be seen.

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/dispatch/action_dispatcher.h"

namespace riposte::controller {

struct LiveQuery {
  std::string agent_id;
  std::string kind;  // a read-only action kind (network.connections, host.logins, ...)
  nlohmann::json parameters = nlohmann::json::object();
};

struct LiveAnswer {
  LiveQuery query;
  std::string action_id;  // empty when the action could not even be issued
  std::string state;      // succeeded, failed, refused, expired, or "unanswered"
  std::string reason;
  nlohmann::json result;  // the typed result as JSON when succeeded
  bool answered() const { return state == "succeeded"; }
};

class LiveQueries {
 public:
  using Done = std::function<void(std::vector<LiveAnswer>)>;

  // Registers itself as an observer of `dispatcher`.
  LiveQueries(boost::asio::io_context& io, Store& store, ActionDispatcher& dispatcher);
  ~LiveQueries();

  // Issues every query and calls `done` (on the io_context) once each has ended or `timeout_ms`
  // has passed, whichever is first.
  void ask(std::vector<LiveQuery> queries, const std::string& requester, const std::string& case_id,
           std::int64_t timeout_ms, Done done);
  // With controllers sharing a store, a question's action may end on another controller (the
  // one holding the agent's session), whose dispatcher this one does not observe: reads each
  // action still awaited from the store and takes the answer of those that have ended. Called
  // each second by the controller.
  void look_for_answers_elsewhere();

 private:
  struct Batch;
  void action_ended(const std::string& action_id);
  void finish(const std::shared_ptr<Batch>& batch);

  boost::asio::io_context& io_;
  Store& store_;
  ActionDispatcher& dispatcher_;
  // Fills `answer` from the stored action (its state, reason and result).
  void fill(LiveAnswer& answer, const Result<std::optional<ActionRecord>>& record);

  std::mutex mutex_;
  // Every batch waiting for an action (several when questions were shared).
  std::multimap<std::string, std::shared_ptr<Batch>> by_action_;
  // Question key (agent, kind, parameters) -> the action asking it now.
  std::map<std::string, std::string> in_flight_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace riposte::controller
