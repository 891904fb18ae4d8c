#include "agent/object_fetcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "protocol/crypto.h"

namespace riposte::agent {

Result<std::string> ObjectFetcher::fetch(const std::string& sha256, std::uint64_t size,
                                         std::chrono::milliseconds timeout) {
  auto outcome = std::make_shared<Outcome>();
  {
    std::lock_guard lock(mutex_);
    if (!cancelled_.empty()) return Error{cancelled_};
    auto& pending = pending_[sha256];
    if (pending.waiters.empty() && pending.data.empty()) pending.size = size;
    if (pending.size != size)
      return Error{fmt::format("object {} is fetched with size {} already, not {}", sha256,
                               pending.size, size)};
    pending.waiters.push_back(outcome);
  }
  // The first request goes out from the io thread, where the session lives.
  boost::asio::post(io_, [this, sha256] {
    std::lock_guard lock(mutex_);
    if (auto it = pending_.find(sha256); it != pending_.end()) request(sha256, it->second);
  });
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return outcome->done; })) {
    auto it = pending_.find(sha256);
    if (it != pending_.end()) std::erase(it->second.waiters, outcome);
    return Error{fmt::format("rule set {} did not arrive from the controller within {} s", sha256,
                             std::chrono::duration_cast<std::chrono::seconds>(timeout).count())};
  }
  return std::move(outcome->bytes);
}

void ObjectFetcher::request(const std::string& sha256, Pending& pending) {
  if (!connected_ || pending.requested || !send_) return;
  proto::Envelope envelope;
  auto* r = envelope.mutable_object_request();
  r->set_sha256(sha256);
  r->set_offset(pending.data.size());
  pending.requested = send_(std::move(envelope));
}

void ObjectFetcher::session_started() {
  std::lock_guard lock(mutex_);
  connected_ = true;
  for (auto& [sha, pending] : pending_) request(sha, pending);
}

void ObjectFetcher::session_ended() {
  std::lock_guard lock(mutex_);
  connected_ = false;
  // Requests in flight died with the session; what arrived stays, and the next session resumes.
  for (auto& [sha, pending] : pending_) pending.requested = false;
}

void ObjectFetcher::on_chunk(const proto::ObjectChunk& chunk) {
  std::lock_guard lock(mutex_);
  auto it = pending_.find(chunk.sha256());
  if (it == pending_.end()) return;  // nobody waits any more
  auto& pending = it->second;
  pending.requested = false;
  if (!chunk.error().empty()) {
    finish(chunk.sha256(),
           Error{fmt::format("the controller will not send rule set {}: {}", chunk.sha256(),
                             chunk.error().substr(0, 200))});
    return;
  }
  if (chunk.offset() != pending.data.size()) return;  // a stale answer; ours is on its way
  if (chunk.size() != pending.size) {
    finish(chunk.sha256(),
           Error{fmt::format("the controller holds {} bytes of rule set {}, the action says {}",
                             chunk.size(), chunk.sha256(), pending.size)});
    return;
  }
  if (chunk.data().empty() && pending.data.size() < pending.size) {
    finish(chunk.sha256(), Error{fmt::format("the controller sent no bytes of rule set {} at "
                                             "offset {}",
                                             chunk.sha256(), chunk.offset())});
    return;
  }
  if (chunk.data().size() > pending.size - pending.data.size()) {
    finish(chunk.sha256(), Error{fmt::format("rule set {} grew past its signed size of {} bytes",
                                             chunk.sha256(), pending.size)});
    return;
  }
  pending.data += chunk.data();
  if (pending.data.size() < pending.size) {
    request(chunk.sha256(), pending);
    return;
  }
  // The hash is what the controller signed: bytes that do not match it are not the rules.
  const auto actual = crypto::sha256_hex(pending.data);
  if (actual != chunk.sha256()) {
    spdlog::error("agent: rule set {} arrived with SHA-256 {}; discarded", chunk.sha256(), actual);
    finish(chunk.sha256(), Error{fmt::format("rule set {} arrived with a different SHA-256 ({}); "
                                             "discarded",
                                             chunk.sha256(), actual)});
    return;
  }
  spdlog::info("agent: rule set {} ({} bytes) fetched from the controller", chunk.sha256(),
               pending.size);
  finish(chunk.sha256(), std::move(pending.data));
}

void ObjectFetcher::finish(const std::string& sha256, Result<std::string> bytes) {
  auto it = pending_.find(sha256);
  if (it == pending_.end()) return;
  for (auto& waiter : it->second.waiters) {
    waiter->done = true;
    waiter->bytes = bytes;
  }
  pending_.erase(it);
  changed_.notify_all();
}

void ObjectFetcher::cancel_all(const std::string& why) {
  std::lock_guard lock(mutex_);
  cancelled_ = why;
  while (!pending_.empty()) finish(pending_.begin()->first, Error{why});
}

}  // namespace riposte::agent
