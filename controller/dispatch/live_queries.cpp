#include "controller/dispatch/live_queries.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <set>

#include "protocol/action_catalog.h"

namespace riposte::controller {

namespace asio = boost::asio;

struct LiveQueries::Batch {
  std::vector<LiveAnswer> answers;
  std::size_t pending = 0;
  bool finished = false;
  Done done;
  std::unique_ptr<asio::steady_timer> deadline;
};

namespace {

std::string question_key(const LiveQuery& q) {
  return q.agent_id + "\n" + q.kind + "\n" + q.parameters.dump();
}

}  // namespace

LiveQueries::LiveQueries(asio::io_context& io, Store& store, ActionDispatcher& dispatcher)
    : io_(io), store_(store), dispatcher_(dispatcher) {
  std::weak_ptr<bool> alive = alive_;
  dispatcher_.add_observer([this, alive](const std::string& action_id, ActionState) {
    if (alive.lock()) action_ended(action_id);
  });
}

LiveQueries::~LiveQueries() { alive_.reset(); }

void LiveQueries::ask(std::vector<LiveQuery> queries, const std::string& requester,
                      const std::string& case_id, std::int64_t timeout_ms, Done done) {
  auto batch = std::make_shared<Batch>();
  batch->done = std::move(done);
  batch->deadline = std::make_unique<asio::steady_timer>(io_);
  std::lock_guard lock(mutex_);
  for (auto& query : queries) {
    LiveAnswer answer;
    answer.query = query;
    const auto key = question_key(query);
    if (const auto it = in_flight_.find(key); it != in_flight_.end()) {
      answer.action_id = it->second;  // asked already: wait for that answer
      answer.state = "unanswered";
      by_action_.emplace(answer.action_id, batch);
      ++batch->pending;
      batch->answers.push_back(std::move(answer));
      continue;
    }
    ActionSubmission submission;
    submission.agent_ids = {query.agent_id};
    submission.kind = query.kind;
    submission.parameters = query.parameters;
    // The action outlives the wait a little, so a late answer is still recorded on the action.
    submission.ttl_ms = std::max<std::int64_t>(timeout_ms, 1000) + 30'000;
    submission.requester = requester;
    submission.case_id = case_id;
    auto issued = dispatcher_.submit(submission);
    if (!issued || issued->empty()) {
      answer.state = "failed";
      answer.reason = issued ? "no action issued" : issued.error().message;
    } else {
      answer.action_id = issued->front().id;
      answer.state = "unanswered";
      by_action_.emplace(answer.action_id, batch);
      in_flight_[key] = answer.action_id;
      ++batch->pending;
    }
    batch->answers.push_back(std::move(answer));
  }
  if (batch->pending == 0) {
    batch->finished = true;
    asio::post(io_, [batch] { batch->done(std::move(batch->answers)); });
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  batch->deadline->expires_after(std::chrono::milliseconds(timeout_ms));
  batch->deadline->async_wait([this, alive, batch](const boost::system::error_code& ec) {
    if (ec || !alive.lock()) return;
    finish(batch);
  });
}

void LiveQueries::fill(LiveAnswer& answer, const Result<std::optional<ActionRecord>>& record) {
  if (record && *record) {
    const auto& action = **record;
    answer.state = std::string(to_string(action.state));
    answer.reason = action.reason;
    if (action.state == ActionState::succeeded) {
      answer.result = action_catalog::result_to_json(action.kind, action.result);
      // An answer that cannot be read is no answer: "0 processes" would hide what the agent has.
      if (auto why = action_catalog::result_unreadable(answer.result)) {
        answer.state = "failed";
        answer.reason = *why;
        answer.result = nlohmann::json::object();
      }
    }
  } else {
    answer.state = "failed";
    answer.reason = record ? "action vanished from the store" : record.error().message;
  }
}

void LiveQueries::action_ended(const std::string& action_id) {
  std::vector<std::shared_ptr<Batch>> batches;
  {
    std::lock_guard lock(mutex_);
    const auto [first, last] = by_action_.equal_range(action_id);
    for (auto it = first; it != last; ++it) batches.push_back(it->second);
    const bool asked_here = std::any_of(in_flight_.begin(), in_flight_.end(),
                                        [&](const auto& q) { return q.second == action_id; });
    if (batches.empty() && !asked_here) return;  // not one of ours
  }
  auto record = store_.find_action(action_id);
  std::lock_guard lock(mutex_);
  by_action_.erase(action_id);
  std::erase_if(in_flight_, [&](const auto& q) { return q.second == action_id; });
  for (const auto& batch : batches) {
    if (batch->finished) continue;
    for (auto& answer : batch->answers) {
      if (answer.action_id == action_id && answer.state == "unanswered") fill(answer, record);
    }
    if (--batch->pending == 0) {
      batch->finished = true;
      batch->deadline->cancel();
      asio::post(io_, [batch] { batch->done(std::move(batch->answers)); });
    }
  }
}

void LiveQueries::look_for_answers_elsewhere() {
  std::set<std::string> awaited;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [action_id, batch] : by_action_) awaited.insert(action_id);
    for (const auto& [key, action_id] : in_flight_) awaited.insert(action_id);
  }
  for (const auto& action_id : awaited) {
    auto record = store_.find_action(action_id);
    if (record && *record && is_terminal((*record)->state)) action_ended(action_id);
  }
}

void LiveQueries::finish(const std::shared_ptr<Batch>& batch) {
  std::lock_guard lock(mutex_);
  if (batch->finished) return;
  batch->finished = true;
  for (auto& answer : batch->answers) {
    if (answer.state != "unanswered") continue;
    // Only this batch stops waiting; another batch sharing the action may still hear it.
    const auto [first, last] = by_action_.equal_range(answer.action_id);
    for (auto it = first; it != last; ++it) {
      if (it->second == batch) {
        by_action_.erase(it);
        break;
      }
    }
    answer.reason = "no answer before the deadline";
  }
  asio::post(io_, [batch] { batch->done(std::move(batch->answers)); });
}

}  // namespace riposte::controller
