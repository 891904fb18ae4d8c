#include "agent/evidence_uploader.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace riposte::agent {

EvidenceUploader::EvidenceUploader(ActionJournal& journal, UploaderOptions options)
    : journal_(journal), options_(options), buffer_(options.chunk_bytes) {}

EvidenceUploader::~EvidenceUploader() {
  for (auto& [sha, a] : active_)
    if (a.fd >= 0) ::close(a.fd);
}

void EvidenceUploader::session_started() {
  connected_ = true;
  auto pending = journal_.pending_uploads();
  if (!pending) {
    spdlog::error("agent: cannot read the evidence spool: {}", pending.error().message);
    return;
  }
  for (const auto& u : *pending) add(u);
}

void EvidenceUploader::session_ended() {
  connected_ = false;
  for (auto& [sha, a] : active_) {
    if (a.fd >= 0) ::close(a.fd);
  }
  active_.clear();
}

void EvidenceUploader::add(const PendingUpload& upload) {
  if (!connected_) return;  // session_started() picks it up from the journal
  const auto& sha = upload.evidence.sha256();
  auto& a = active_[sha];
  for (const auto& h : a.holders)
    if (h.action_id == upload.action_id) return;
  a.holders.push_back(upload);
  if (a.fd < 0) {
    a.fd = ::open(upload.path.c_str(), O_RDONLY | O_CLOEXEC);
    a.size = upload.evidence.size();
    if (a.fd < 0) {
      spdlog::error("agent: evidence {} of action {} is gone from the spool ({}): {}; dropping it",
                    sha, upload.action_id, upload.path.string(), std::strerror(errno));
      finish(sha, false);
      return;
    }
  }
  if (!a.offered) offer(a);
}

void EvidenceUploader::offer(Active& a) {
  proto::Envelope envelope;
  auto* offer = envelope.mutable_evidence_offer();
  offer->set_action_id(a.holders.front().action_id);
  *offer->mutable_evidence() = a.holders.front().evidence;
  a.offered = send_ && send_(std::move(envelope));
}

void EvidenceUploader::on_ack(const proto::EvidenceAck& ack) {
  auto it = active_.find(ack.sha256());
  if (it == active_.end()) return;  // from an earlier session, or already finished
  auto& a = it->second;
  if (!ack.error().empty()) {
    spdlog::error("agent: controller refused evidence {} (action {}): {}", ack.sha256(),
                  a.holders.front().action_id, ack.error());
    // Kept on disk for an operator to retrieve by hand, but no longer offered.
    finish(ack.sha256(), false);
    return;
  }
  if (ack.complete()) {
    // The controller links the object to every action that declared it; one upload serves all.
    spdlog::info("agent: evidence {} ({} bytes) delivered", ack.sha256(), a.size);
    finish(ack.sha256(), true);
    return;
  }
  a.acked = ack.offset();
  if (!a.streaming) {
    // The answer to our offer: resume from what the controller holds. Later acks trail `next`
    // by up to a window; within one session nothing is lost, so they never rewind it.
    a.streaming = true;
    a.next = a.acked;
  }
  if (a.next < a.acked) a.next = a.acked;
  pump(it->first, a);
}

void EvidenceUploader::pump(const std::string& sha, Active& a) {
  const std::uint64_t window = options_.window_chunks * options_.chunk_bytes;
  while (a.next < a.size && a.next - a.acked < window) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(options_.chunk_bytes, a.size - a.next));
    const ssize_t n = ::pread(a.fd, buffer_.data(), want, static_cast<off_t>(a.next));
    if (n != static_cast<ssize_t>(want)) {
      spdlog::error("agent: cannot read spooled evidence {}: {}", sha,
                    n < 0 ? std::strerror(errno) : "file shorter than recorded");
      finish(sha, false);
      return;
    }
    proto::Envelope envelope;
    auto* chunk = envelope.mutable_evidence_chunk();
    chunk->set_action_id(a.holders.front().action_id);
    chunk->set_sha256(sha);
    chunk->set_offset(a.next);
    chunk->set_data(buffer_.data(), want);
    if (!send_ || !send_(std::move(envelope))) return;  // session gone; resumes on the next
    a.next += want;
  }
}

void EvidenceUploader::finish(const std::string& sha, bool delete_files) {
  auto it = active_.find(sha);
  if (it == active_.end()) return;
  auto& a = it->second;
  if (a.fd >= 0) ::close(a.fd);
  for (const auto& h : a.holders) {
    if (auto s = journal_.remove_upload(sha, h.action_id); !s)
      spdlog::error("agent: cannot update the evidence spool: {}", s.error().message);
    if (delete_files) {
      std::error_code ignored;
      std::filesystem::remove(h.path, ignored);
    }
  }
  active_.erase(it);
}

}  // namespace riposte::agent
