#pragma once

// What happens to an alert after intake: validation (is it relevant?), then, unless it was ruled
// not relevant, enrichment. Both ask agents through LiveQueries and store their outcome on the
// alert with an audit entry. The pipeline's own work runs on one worker thread, never on the io
// threads that accept alerts and serve agents, and takes alerts from a queue a few at a time so a
// burst at intake floods neither the agents nor the store. Alerts whose processing had not ended
// when the controller stopped are taken up again (resume), so a crash loses no work.
//
// Controllers sharing a store process each alert once: an alert is worked on only under its
// lease (Store::claim_alert), which the controller that stored it holds from intake and renews
// (tick); another controller takes the alert over once that lease has expired.

#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "controller/alerts/asset_map.h"
#include "controller/alerts/enrichment.h"
#include "controller/alerts/validation.h"
#include "controller/dispatch/live_queries.h"

namespace riposte::controller {

struct AlertPipelineOptions {
  std::uint32_t lookback_days = 30;
  std::int64_t timeout_ms = 60'000;
  std::size_t max_in_flight = 16;
};

class AlertPipeline {
 public:
  AlertPipeline(Store& store, LiveQueries& queries, const AssetCatalog& assets, const Clock& clock,
                AlertPipelineOptions options);
  ~AlertPipeline();

  void enqueue(const std::vector<std::string>& alert_ids);
  // Told (on the worker) when an alert's processing has ended: ruled not relevant, or enriched.
  // Set before the first enqueue.
  void set_listener(std::function<void(const std::string& alert_id)> listener) {
    listener_ = std::move(listener);
  }
  // Queues alerts a previous run left unfinished, unless another controller holds them.
  Status resume();
  // Renews this controller's alert leases, tries again alerts whose processing failed on an
  // error, and takes over alerts of a stopped controller, every kLeaseRenewMs. Called each second.
  void tick();
  static constexpr std::int64_t kLeaseRenewMs = 10'000;

 private:
  void pump();
  void start(const std::string& id);
  void validated(AlertRecord alert, const ValidationPlan& plan, std::vector<LiveAnswer> answers);
  void enrich(AlertRecord alert);
  // An alert's processing here has ended: done (or not this controller's), or failed on an error
  // (the store, say), to be tried again at the next tick.
  enum class Outcome { done, failed };
  void finished(const std::string& id, Outcome outcome = Outcome::done);
  // Runs one piece of an alert's processing. An exception (a fault on this alert's data) ends the
  // attempt as failed, logged with its reason, instead of ending the controller; after
  // kMaxAttempts such attempts the alert is parked (park).
  template <typename Fn>
  void guarded(const std::string& id, Fn&& fn);
  // Stores the alert as status "error" with the reason as its enrichment, which ends its
  // processing on every controller: it is not resumed into the same failure at each start.
  void park(const std::string& id, const std::string& reason, int attempts);
  Result<std::vector<AgentRecord>> agents();
  // Wraps a LiveQueries callback so that it runs, guarded, on the worker thread.
  template <typename Fn>
  LiveQueries::Done on_worker(const std::string& id, Fn fn);
  Status store_update(const AlertRecord& alert, const std::string& status, const char* column,
                      const nlohmann::json& value, const char* event);

  Store& store_;
  LiveQueries& queries_;
  const AssetCatalog& assets_;
  const Clock& clock_;
  AlertPipelineOptions options_;
  std::mutex mutex_;
  std::deque<std::string> queue_;
  // Ids queued or in flight: an alert taken over, or resumed while already queued, is not
  // queued twice.
  std::unordered_set<std::string> known_;
  std::vector<std::string> retry_;       // failed since the last tick
  std::map<std::string, int> failures_;  // failed attempts, per alert still failing
  std::map<std::string, std::string> faults_;  // the last exception, per alert still failing
  static constexpr int kMaxAttempts = 5;
  std::int64_t leases_renewed_at_ms_ = 0;  // on the worker
  std::size_t in_flight_ = 0;
  std::optional<std::vector<AgentRecord>> agents_cache_;
  std::uint64_t agents_generation_ = 0;
  std::function<void(const std::string&)> listener_;
  boost::asio::thread_pool worker_{1};
};

}  // namespace riposte::controller
