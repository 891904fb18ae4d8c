#include "controller/alerts/pipeline.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "common/utc_time.h"

namespace riposte::controller {

namespace asio = boost::asio;
using nlohmann::json;

namespace {
constexpr const char* kRequester = "controller:alert-pipeline";
}

AlertPipeline::AlertPipeline(Store& store, LiveQueries& queries, const AssetCatalog& assets,
                             const Clock& clock, AlertPipelineOptions options)
    : store_(store), queries_(queries), assets_(assets), clock_(clock), options_(options) {}

AlertPipeline::~AlertPipeline() {
  worker_.stop();
  worker_.join();
}

template <typename Fn>
void AlertPipeline::guarded(const std::string& id, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::error("alert {}: processing failed on an internal error: {}", id, e.what());
    {
      std::lock_guard lock(mutex_);
      faults_[id] = e.what();
    }
    finished(id, Outcome::failed);
  }
}

template <typename Fn>
LiveQueries::Done AlertPipeline::on_worker(const std::string& id, Fn fn) {
  // Answers arrive on an io thread; the work on them belongs on the worker.
  auto shared = std::make_shared<Fn>(std::move(fn));
  return [this, id, shared](std::vector<LiveAnswer> answers) {
    asio::post(worker_, [this, id, shared, answers = std::move(answers)]() mutable {
      guarded(id, [&] { (*shared)(std::move(answers)); });
    });
  };
}

void AlertPipeline::park(const std::string& id, const std::string& reason, int attempts) {
  const json record{{"outcome", "error"},
                    {"reason", fmt::format("processing failed {} times on an internal error: {}",
                                           attempts, reason)},
                    {"parked_at", format_utc_ms(clock_.now_unix_ms())}};
  auto s = store_.update_alert(
      id, "error", "enrichment", record.dump(-1, ' ', false, json::error_handler_t::replace),
      {kRequester, "alert.parked", id, json{{"status", "error"}, {"attempts", attempts}}.dump()},
      clock_.now_unix_ms());
  if (!s) {
    spdlog::error("alert {}: cannot park it: {}", id, s.error().message);
    return;
  }
  spdlog::error("alert {}: parked after {} failed attempts: {}", id, attempts, reason);
}

void AlertPipeline::enqueue(const std::vector<std::string>& alert_ids) {
  {
    std::lock_guard lock(mutex_);
    for (const auto& id : alert_ids) {
      if (known_.insert(id).second) queue_.push_back(id);
    }
  }
  pump();
}

Status AlertPipeline::resume() {
  auto ids = store_.unfinished_alerts(clock_.now_unix_ms());
  if (!ids) return ids.error();
  if (!ids->empty()) spdlog::info("alerts: resuming {} unfinished alert(s)", ids->size());
  enqueue(*ids);
  return ok_status();
}

void AlertPipeline::tick() {
  asio::post(worker_, [this] {
    const auto now = clock_.now_unix_ms();
    if (now - leases_renewed_at_ms_ < kLeaseRenewMs) return;
    leases_renewed_at_ms_ = now;
    if (auto s = store_.renew_alert_leases(now, Store::kAlertLeaseMs); !s)
      spdlog::error("alerts: cannot renew alert leases: {}", s.error().message);
    std::vector<std::string> again;
    {
      std::lock_guard lock(mutex_);
      again.swap(retry_);
    }
    if (!again.empty()) {
      spdlog::info("alerts: trying {} alert(s) again after an error", again.size());
      enqueue(again);
    }
    auto orphaned = store_.take_over_alerts(now, Store::kAlertLeaseMs);
    if (!orphaned) {
      spdlog::error("alerts: cannot take over alerts: {}", orphaned.error().message);
      return;
    }
    if (orphaned->empty()) return;
    spdlog::warn("alerts: taking over {} alert(s) whose controller's lease expired",
                 orphaned->size());
    enqueue(*orphaned);
  });
}

void AlertPipeline::pump() {
  std::vector<std::string> starting;
  {
    std::lock_guard lock(mutex_);
    while (in_flight_ < options_.max_in_flight && !queue_.empty()) {
      starting.push_back(std::move(queue_.front()));
      queue_.pop_front();
      ++in_flight_;
    }
  }
  for (auto& id : starting)
    asio::post(worker_, [this, id = std::move(id)] { guarded(id, [&] { start(id); }); });
}

void AlertPipeline::finished(const std::string& id, Outcome outcome) {
  std::optional<std::string> parking;  // the fault an alert failed on every time
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    known_.erase(id);
    // Its lease stays this controller's (renewed): no other controller would take it up. An
    // alert failing every time is left after kMaxAttempts (a restart takes it up again).
    if (outcome == Outcome::done) {
      failures_.erase(id);
      faults_.erase(id);
    } else if (++failures_[id] <= kMaxAttempts) {
      retry_.push_back(id);
    } else {
      failures_.erase(id);
      const auto fault = faults_.find(id);
      if (fault != faults_.end()) {
        parking = fault->second;
        faults_.erase(fault);
      } else {
        // The store failing: no fault of the alert's, so a restart tries it again.
        spdlog::error(
            "alert {}: left unfinished after {} failed attempts; a restart of the "
            "controller takes it up again",
            id, kMaxAttempts);
      }
    }
  }
  if (parking) park(id, *parking, kMaxAttempts + 1);
  pump();
}

Status AlertPipeline::store_update(const AlertRecord& alert, const std::string& status,
                                   const char* column, const json& value, const char* event) {
  auto s = store_.update_alert(
      alert.id, status, column, value.dump(),
      {kRequester, event, alert.id, json{{"status", status}, {"case_id", alert.case_id}}.dump()},
      clock_.now_unix_ms());
  if (!s) spdlog::error("alert {}: cannot store {}: {}", alert.id, column, s.error().message);
  return s;
}

Result<std::vector<AgentRecord>> AlertPipeline::agents() {
  // Every step of every alert needs the fleet; at intake rates re-reading it each time would cost
  // more than the alert. The store's generation says when the copy is stale.
  std::lock_guard lock(mutex_);
  const auto generation = store_.agents_generation();
  if (!agents_cache_ || generation != agents_generation_) {
    auto fresh = store_.list_agents();
    if (!fresh) return fresh.error();
    agents_cache_ = std::move(*fresh);
    agents_generation_ = generation;
  }
  return *agents_cache_;
}

void AlertPipeline::start(const std::string& id) {
  // Held by another controller (it took the alert over, or stored it and is working on it), or
  // already processed: not this controller's to do.
  auto claimed = store_.claim_alert(id, clock_.now_unix_ms(), Store::kAlertLeaseMs);
  if (!claimed) {
    spdlog::error("alert {}: cannot claim it: {}", id, claimed.error().message);
    return finished(id, Outcome::failed);
  }
  if (!*claimed) {
    spdlog::info("alert {}: processed by another controller, or already processed", id);
    return finished(id);
  }
  auto found = store_.find_alert(id);
  if (!found || !*found) {
    spdlog::error("alert {}: cannot load it: {}", id, found ? "not found" : found.error().message);
    return finished(id, found ? Outcome::done : Outcome::failed);
  }
  AlertRecord alert = std::move(**found);
  // Validated already (by a controller that stopped before the enrichment, or before an error):
  // asking the agents again could only contradict the stored verdict.
  if (alert.status == "qualified" || alert.status == "unvalidated" ||
      alert.status == "undetermined")
    return enrich(std::move(alert));
  auto agents = this->agents();
  if (!agents) {
    spdlog::error("alert {}: cannot list agents: {}", id, agents.error().message);
    return finished(id, Outcome::failed);
  }
  auto plan = plan_ip_validation(alert, *agents, options_.lookback_days);
  if (plan.ips.empty()) {
    // No rule applies: nothing says it is irrelevant, so it goes on to enrichment.
    const json record{{"rule", nullptr},
                      {"outcome", "unvalidated"},
                      {"reason", "no validation rule applies (no outside IP address observed)"}};
    if (!store_update(alert, "unvalidated", "validation", record, "alert.validated"))
      return finished(alert.id, Outcome::failed);
    alert.status = "unvalidated";
    alert.validation = record.dump();
    return enrich(std::move(alert));
  }
  // Nobody to ask (no agent online): decide at once, without a "validating" step in between.
  if (plan.queries.empty()) return validated(std::move(alert), plan, {});
  json pending{{"rule", "malicious_ip"},
               {"outcome", "validating"},
               {"ips", plan.ips},
               {"asked_at", format_utc_ms(clock_.now_unix_ms())},
               {"not_asked", plan.not_asked}};
  if (!store_update(alert, "validating", "validation", pending, "alert.validation_started"))
    return finished(alert.id, Outcome::failed);
  spdlog::info("alert {}: validating {} against {} agent(s)", alert.id, fmt::join(plan.ips, ", "),
               plan.queries.size() / plan.ips.size());
  auto queries = plan.queries;
  const auto case_id = alert.case_id;
  const auto alert_id = alert.id;  // alert is moved into the callback
  queries_.ask(std::move(queries), kRequester, case_id, options_.timeout_ms,
               on_worker(alert_id, [this, alert = std::move(alert), plan = std::move(plan)](
                                       std::vector<LiveAnswer> answers) mutable {
                 validated(std::move(alert), plan, std::move(answers));
               }));
}

void AlertPipeline::validated(AlertRecord alert, const ValidationPlan& plan,
                              std::vector<LiveAnswer> answers) {
  auto agents = this->agents();
  auto outcome = decide_ip_validation(plan, answers, agents ? *agents : std::vector<AgentRecord>{},
                                      options_.lookback_days);
  outcome.record["decided_at"] = format_utc_ms(clock_.now_unix_ms());
  spdlog::info("alert {}: {}: {}", alert.id, outcome.status,
               outcome.record["reason"].get<std::string>());
  if (!store_update(alert, outcome.status, "validation", outcome.record, "alert.validated"))
    return finished(alert.id, Outcome::failed);
  if (outcome.status == "not_relevant") {
    if (listener_) listener_(alert.id);
    return finished(alert.id);
  }
  alert.status = outcome.status;
  alert.validation = outcome.record.dump();
  enrich(std::move(alert));
}

void AlertPipeline::enrich(AlertRecord alert) {
  auto agents = this->agents();
  if (!agents) {
    spdlog::error("alert {}: cannot list agents: {}", alert.id, agents.error().message);
    return finished(alert.id, Outcome::failed);
  }
  auto plan = std::make_shared<EnrichmentPlan>(plan_enrichment(alert, *agents));
  auto alert_ptr = std::make_shared<AlertRecord>(std::move(alert));
  auto complete = [this, plan, alert_ptr](std::vector<LiveAnswer> answers) {
    auto history =
        store_.related_alerts(alert_ptr->host_name, alert_ptr->observables, alert_ptr->id, 20);
    auto record = build_enrichment(*alert_ptr, *plan, answers, *assets_.current(),
                                   history ? *history : std::vector<AlertRecord>{});
    record["enriched_at"] = format_utc_ms(clock_.now_unix_ms());
    if (!store_update(*alert_ptr, alert_ptr->status, "enrichment", record, "alert.enriched"))
      return finished(alert_ptr->id, Outcome::failed);
    if (listener_) listener_(alert_ptr->id);
    finished(alert_ptr->id);
  };
  if (plan->queries.empty()) return complete({});
  auto done = on_worker(alert_ptr->id, complete);
  queries_.ask(plan->queries, kRequester, alert_ptr->case_id, options_.timeout_ms,
               [this, alert_ptr, done](std::vector<LiveAnswer> first) mutable {
                 // On an io thread, outside the worker's guard: a fault planning the second
                 // question is logged, and the enrichment goes on with the first answers.
                 std::vector<LiveQuery> second;
                 try {
                   second = plan_executable_hash(*alert_ptr, first);
                 } catch (const std::exception& e) {
                   spdlog::error("alert {}: cannot plan the executable hash: {}", alert_ptr->id,
                                 e.what());
                 }
                 if (second.empty()) return done(std::move(first));
                 queries_.ask(
                     std::move(second), kRequester, alert_ptr->case_id, options_.timeout_ms,
                     [first = std::move(first), done](std::vector<LiveAnswer> more) mutable {
                       first.insert(first.end(), more.begin(), more.end());
                       done(std::move(first));
                     });
               });
}

}  // namespace riposte::controller
