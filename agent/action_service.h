#pragma once

// The agent's side of dispatch. Verifies each ActionRequest (action_verifier.h) on the network
// thread, runs admitted actions on a small worker pool (several at once, bounded), and reports:
// progress while they run, the result when they end. Results go to the journal first and are
// sent from there, so a result produced while the controller is unreachable waits on disk and
// goes out on the next session; evidence files follow through the uploader.
// Public methods are called on the link's io thread.

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "agent/action_executor.h"
#include "agent/action_journal.h"
#include "agent/action_verifier.h"
#include "agent/evidence_uploader.h"
#include "agent/object_fetcher.h"

namespace riposte::agent {

struct ActionServiceOptions {
  std::size_t max_concurrent_actions = 4;
  std::uint64_t spool_limit_bytes = 8ULL << 30;
  UploaderOptions uploads;
  // How long a yara.scan waits for its rule set to arrive from the controller.
  std::chrono::milliseconds object_fetch_timeout{std::chrono::minutes(5)};
};

class ActionService {
 public:
  using Send = std::function<bool(proto::Envelope)>;

  ActionService(boost::asio::io_context& io, ActionVerifier& verifier, ActionJournal& journal,
                ActionExecutor& executor, const Clock& clock, ActionServiceOptions options);
  // Waits for running actions to end (their results are journaled).
  ~ActionService();

  // `send` queues on the live session and returns false when there is none.
  void set_sender(Send send);

  void submit(const proto::ActionRequest& request);
  void session_started();
  void session_ended();
  void result_acknowledged(const std::string& action_id);
  void evidence_acknowledged(const proto::EvidenceAck& ack);
  void object_chunk(const proto::ObjectChunk& chunk) { fetcher_.on_chunk(chunk); }

  // For the executor context, from worker threads: a rule set's bytes from the controller.
  Result<std::string> fetch_object(const std::string& sha256, std::uint64_t size);

  // For the executor context: bytes of evidence the spool may still take.
  std::uint64_t evidence_budget();
  // For the executor context: called from worker threads.
  void report_progress(const std::string& action_id, std::uint64_t done, std::uint64_t total,
                       const std::string& unit);

  std::size_t running() const { return running_; }

  // Any thread: waits up to `timeout` for the actions on the workers to end (their results are
  // then journaled); returns how many still run. A stopping agent calls it before giving up on
  // them: an action cut short stays `running` in the journal, which reports it failed ("the
  // agent stopped while this action was running") at the next start, never re-running it.
  std::size_t wait_for_workers(std::chrono::milliseconds timeout);
  // Any thread: fetches in progress fail now ("the agent is stopping"), later ones at once.
  void cancel_fetches() { fetcher_.cancel_all("the agent is stopping"); }

 private:
  void execute(proto::ActionSpec spec);  // on a worker thread
  void send(proto::Envelope envelope);

  boost::asio::io_context& io_;
  ActionVerifier& verifier_;
  ActionJournal& journal_;
  ActionExecutor& executor_;
  const Clock& clock_;
  ActionServiceOptions options_;
  Send send_;
  EvidenceUploader uploader_;
  ObjectFetcher fetcher_;
  std::atomic<std::size_t> running_{0};  // io thread's count: until the result is sent
  std::mutex workers_mutex_;
  std::condition_variable workers_changed_;
  std::size_t on_workers_ = 0;  // admitted and not yet journaled; under workers_mutex_
  boost::asio::thread_pool pool_;
};

}  // namespace riposte::agent
