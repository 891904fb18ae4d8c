#pragma once

// Fetches content-addressed objects (YARA rule sets) from the controller over the agent's
// session: ObjectRequest for the next offset, one ObjectChunk back (at most 1 MiB), until the
// size the signed action gave is reached; then the bytes must hash to the SHA-256 it gave, or
// they are thrown away. Several actions waiting for the same object share one fetch. A session
// that ends mid-fetch resumes from the same offset on the next one.
//
// fetch() blocks its caller (an action's worker thread); the rest runs on the link's io thread.
// cancel_all() (any thread) releases every waiter, so a stopping agent never waits on a fetch.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "protocol/agent_channel.pb.h"

namespace riposte::agent {

class ObjectFetcher {
 public:
  using Send = std::function<bool(proto::Envelope)>;

  explicit ObjectFetcher(boost::asio::io_context& io) : io_(io) {}
  void set_sender(Send send) { send_ = std::move(send); }

  // The object's bytes, checked against `sha256` (64 lowercase hex) and `size`. Errors: the
  // controller refused it, the bytes did not match, `timeout` passed, or the agent is stopping.
  Result<std::string> fetch(const std::string& sha256, std::uint64_t size,
                            std::chrono::milliseconds timeout);

  // io thread.
  void session_started();
  void session_ended();
  void on_chunk(const proto::ObjectChunk& chunk);

  // Any thread: every waiting fetch fails with `why`; later fetches fail at once.
  void cancel_all(const std::string& why);

 private:
  struct Outcome {
    bool done = false;
    Result<std::string> bytes = Error{"not fetched yet"};
  };
  struct Pending {
    std::uint64_t size = 0;
    std::string data;
    bool requested = false;  // a request for the current offset is on its way
    std::vector<std::shared_ptr<Outcome>> waiters;
  };
  void request(const std::string& sha256, Pending& pending);  // io thread, under mutex_
  void finish(const std::string& sha256, Result<std::string> bytes);  // under mutex_

  boost::asio::io_context& io_;
  Send send_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Pending> pending_;  // by SHA-256
  bool connected_ = false;
  std::string cancelled_;  // non-empty once cancel_all() ran
};

}  // namespace riposte::agent
