#include "agent/action_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

namespace riposte::agent {

namespace asio = boost::asio;

ActionService::ActionService(asio::io_context& io, ActionVerifier& verifier, ActionJournal& journal,
                             ActionExecutor& executor, const Clock& clock,
                             ActionServiceOptions options)
    : io_(io),
      verifier_(verifier),
      journal_(journal),
      executor_(executor),
      clock_(clock),
      options_(options),
      uploader_(journal, options.uploads),
      fetcher_(io),
      pool_(std::max<std::size_t>(1, options.max_concurrent_actions)) {}

ActionService::~ActionService() {
  // A scan waiting for its rules must not hold the agent's stop for minutes.
  fetcher_.cancel_all("the agent is stopping");
  pool_.join();
}

void ActionService::set_sender(Send send) {
  send_ = send;
  uploader_.set_sender(send);
  fetcher_.set_sender(std::move(send));
}

Result<std::string> ActionService::fetch_object(const std::string& sha256, std::uint64_t size) {
  return fetcher_.fetch(sha256, size, options_.object_fetch_timeout);
}

void ActionService::send(proto::Envelope envelope) {
  if (send_) (void)send_(std::move(envelope));
}

void ActionService::submit(const proto::ActionRequest& request) {
  auto verdict = verifier_.verify(request);
  if (auto* refused = std::get_if<proto::ActionResult>(&verdict)) {
    spdlog::warn("agent: refused action {}: {}", refused->action_id(), refused->message());
    // Only an admitted id (recorded in the journal) gets a durable result; refusals before that
    // carry an id nobody vouched for and are answered once.
    if (refused->refusal() == proto::ActionResult::REFUSAL_KIND_NOT_ALLOWED) {
      if (auto s = journal_.finish(*refused, {}); !s)
        spdlog::error("agent: cannot journal refusal: {}", s.error().message);
    }
    proto::Envelope envelope;
    *envelope.mutable_action_result() = std::move(*refused);
    send(std::move(envelope));
    return;
  }
  auto spec = std::get<proto::ActionSpec>(std::move(verdict));
  spdlog::info("agent: action {} ({}) accepted, requested by {}{}", spec.action_id(), spec.kind(),
               spec.requester(), spec.approver().empty() ? "" : ", approved by " + spec.approver());
  // Tells the controller it is running (and that it arrived).
  proto::Envelope started;
  started.mutable_action_progress()->set_action_id(spec.action_id());
  send(std::move(started));
  ++running_;
  {
    std::lock_guard lock(workers_mutex_);
    ++on_workers_;
  }
  asio::post(pool_, [this, spec = std::move(spec)]() mutable { execute(std::move(spec)); });
}

void ActionService::execute(proto::ActionSpec spec) {
  auto result = executor_.execute(spec.action_id(), spec.kind(), spec.parameters());
  std::vector<PendingUpload> uploads;
  for (const auto& e : result.evidence()) {
    uploads.push_back({spec.action_id(), e, executor_.evidence_dir() / e.name()});
  }
  if (auto s = journal_.finish(result, uploads); !s) {
    // Still sent: the controller learns the outcome even if the spool is failing.
    spdlog::error("agent: cannot journal result of {}: {}", spec.action_id(), s.error().message);
  }
  spdlog::info("agent: action {} ({}) ended: {}{}", spec.action_id(), spec.kind(),
               proto::ActionResult::Status_Name(result.status()),
               result.message().empty() ? "" : " — " + result.message());
  {
    std::lock_guard lock(workers_mutex_);
    --on_workers_;
  }
  workers_changed_.notify_all();
  asio::post(io_, [this, result = std::move(result), uploads = std::move(uploads)]() mutable {
    --running_;
    proto::Envelope envelope;
    *envelope.mutable_action_result() = std::move(result);
    send(std::move(envelope));
    for (const auto& u : uploads) uploader_.add(u);  // offers go after the result that names them
  });
}

std::size_t ActionService::wait_for_workers(std::chrono::milliseconds timeout) {
  std::unique_lock lock(workers_mutex_);
  workers_changed_.wait_for(lock, timeout, [&] { return on_workers_ == 0; });
  return on_workers_;
}

void ActionService::session_started() {
  auto results = journal_.unacknowledged_results();
  if (!results) {
    spdlog::error("agent: cannot read spooled results: {}", results.error().message);
  } else {
    if (!results->empty())
      spdlog::info("agent: sending {} result(s) kept while disconnected", results->size());
    for (auto& r : *results) {
      proto::Envelope envelope;
      *envelope.mutable_action_result() = std::move(r);
      send(std::move(envelope));
    }
  }
  uploader_.session_started();
  fetcher_.session_started();
}

void ActionService::session_ended() {
  uploader_.session_ended();
  fetcher_.session_ended();
}

void ActionService::result_acknowledged(const std::string& action_id) {
  if (auto s = journal_.acknowledge(action_id); !s)
    spdlog::error("agent: cannot record acknowledgement of {}: {}", action_id, s.error().message);
}

void ActionService::evidence_acknowledged(const proto::EvidenceAck& ack) { uploader_.on_ack(ack); }

std::uint64_t ActionService::evidence_budget() {
  auto used = journal_.spool_bytes();
  if (!used) return 0;  // cannot tell: write nothing rather than fill the disk
  return *used >= options_.spool_limit_bytes ? 0 : options_.spool_limit_bytes - *used;
}

void ActionService::report_progress(const std::string& action_id, std::uint64_t done,
                                    std::uint64_t total, const std::string& unit) {
  proto::Envelope envelope;
  auto* p = envelope.mutable_action_progress();
  p->set_action_id(action_id);
  p->set_done(done);
  p->set_total(total);
  p->set_unit(unit);
  asio::post(io_, [this, envelope = std::move(envelope)]() mutable { send(std::move(envelope)); });
}

}  // namespace riposte::agent
