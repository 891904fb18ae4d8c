#pragma once

// Streams spooled evidence to the controller over the agent's session. For each object it sends
// an EvidenceOffer; the controller answers with the offset it already holds, and the uploader
// sends chunks from there, keeping at most `window` chunks unacknowledged. After a disconnect or a
// restart on either side, the next offer resumes from the controller's offset. The local file is
// deleted only when the controller says the object is complete (stored, SHA-256 checked).
// Single-threaded: call everything on the link's io thread.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/action_journal.h"

namespace riposte::agent {

struct UploaderOptions {
  std::size_t chunk_bytes = 1 << 20;
  std::size_t window_chunks = 16;
};

class EvidenceUploader {
 public:
  // Queues a message on the live session; false when there is none.
  using Send = std::function<bool(proto::Envelope)>;

  EvidenceUploader(ActionJournal& journal, UploaderOptions options = {});
  ~EvidenceUploader();
  void set_sender(Send send) { send_ = std::move(send); }

  // A session was established: offer everything in the spool.
  void session_started();
  // The session ended: in-flight state is dropped; the next session starts with offers again.
  void session_ended();
  // An action produced evidence (already recorded in the journal).
  void add(const PendingUpload& upload);
  void on_ack(const proto::EvidenceAck& ack);

  std::size_t active_uploads() const { return active_.size(); }

 private:
  struct Active {
    std::vector<PendingUpload> holders;  // same object produced by more than one action
    int fd = -1;
    std::uint64_t size = 0;
    std::uint64_t next = 0;   // next offset to send
    std::uint64_t acked = 0;  // controller holds [0, acked)
    bool offered = false;
    bool streaming = false;  // the controller answered the offer
  };
  void offer(Active& upload);
  void pump(const std::string& sha, Active& upload);
  void finish(const std::string& sha, bool delete_files);

  ActionJournal& journal_;
  UploaderOptions options_;
  Send send_;
  bool connected_ = false;
  std::map<std::string, Active> active_;  // by SHA-256
  std::vector<std::uint8_t> buffer_;
};

}  // namespace riposte::agent
