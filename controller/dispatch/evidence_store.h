#pragma once

// Evidence on the controller: objects uploaded by agents, stored content-addressed as
// DATA_DIR/evidence/<sha256>. An upload in progress lives in evidence/.partial/<sha256>; its size
// on disk is the resume point, so an upload interrupted by either side (or a controller restart)
// continues from the last byte written. The SHA-256 is computed as bytes arrive (rebuilt from the
// partial file after a restart) and checked before the object takes its final name.
//
// Chain of custody: offers, completion and downloads are audit entries (actor, time, size, hash,
// action, agent); the evidence rows say which action on which agent produced each object.
//
// Pipelining: a session's strand hashes each chunk as it arrives and hands it to one writer
// thread, which writes it and then acknowledges it (an ack means "on disk at this offset"), so
// receiving, hashing and writing proceed at the same time.

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "controller/store/store.h"
#include "protocol/agent_channel.pb.h"

namespace riposte::controller {

class EvidenceStore {
 public:
  EvidenceStore(std::filesystem::path dir, Store& store, const Clock& clock);
  ~EvidenceStore();

  // Creates the directories (0700).
  Status open();

  // The agent offers an object one of its actions produced: answers how much the controller holds
  // (the agent streams from there), that it is complete, or why it is refused.
  proto::EvidenceAck offer(const std::string& agent_id, const proto::EvidenceOffer& offer);
  // An object of this agent the dispatcher refused when its action's result named it
  // (evidence_policy.h): an offer of it is answered with `reason`. The most recent
  // kRememberedRefusals are kept; an older one (or one from before a restart) is answered with
  // a general reason.
  void remember_refusal(const std::string& agent_id, const std::string& action_id,
                        const std::string& sha256, const std::string& reason);
  static constexpr std::size_t kRememberedRefusals = 1024;

  // Takes a chunk at its offset; `done` is called (on the writer thread) with the new offset once
  // it is written, with where to resume if the offset did not match, and with `complete` once
  // the whole object is stored and its hash checked.
  using AckHandler = std::function<void(proto::EvidenceAck)>;
  void append(const std::string& agent_id, proto::EvidenceChunk&& chunk, AckHandler done);

  // The stored object's path after re-checking its SHA-256; an error if it is missing or does not
  // match (then it is also audited).
  Result<std::filesystem::path> verified_path(const std::string& sha256);

  std::filesystem::path object_path(const std::string& sha256) const;

 private:
  // Offers of one upload recorded in the audit log, at most (see offer()).
  static constexpr int kMaxAuditedOffers = 16;
  struct Upload;
  struct WriteJob {
    std::string sha256;
    std::string data;
    std::uint64_t offset = 0;
    AckHandler done;
  };
  void write_loop();
  // Caller holds mutex_; erases the upload.
  proto::EvidenceAck finish(const std::string& sha256, Upload& upload);

  std::filesystem::path dir_;
  Store& store_;
  const Clock& clock_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::unique_ptr<Upload>> uploads_;
  std::map<std::string, std::string> refusals_;  // "agent/action/sha256" -> reason
  std::deque<std::string> refusal_order_;        // oldest first
  std::deque<WriteJob> jobs_;
  bool stopping_ = false;
  std::thread writer_;
};

bool is_sha256_hex(std::string_view text);

}  // namespace riposte::controller
