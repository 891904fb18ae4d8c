#include "controller/dispatch/evidence_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "common/secure_file.h"
#include "common/utf8.h"
#include "controller/dispatch/evidence_policy.h"
#include "protocol/crypto.h"
#include "protocol/framing.h"

namespace riposte::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

proto::EvidenceAck ack_of(const std::string& sha, std::uint64_t offset, bool complete = false,
                          std::string error = "") {
  proto::EvidenceAck ack;
  // Echo at most a hash's length: an agent's 2 MB "sha256" must not come back 2 MB per ack.
  ack.set_sha256(utf8_prefix(sha, 64));
  ack.set_offset(offset);
  ack.set_complete(complete);
  ack.set_error(std::move(error));
  return ack;
}

}  // namespace

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct EvidenceStore::Upload {
  ~Upload() {
    if (fd >= 0) ::close(fd);
    if (direct_fd >= 0) ::close(direct_fd);
  }
  int fd = -1;
  int direct_fd = -1;  // O_DIRECT, for block-aligned writes; -1 where the filesystem has none
  std::uint64_t received = 0;  // bytes hashed and queued for writing
  std::uint64_t written = 0;   // bytes on disk
  std::uint64_t size = 0;
  int pending = 0;      // queued write jobs
  bool broken = false;  // a write failed; dropped once nothing is pending
  std::string action_id;
  std::string agent_id;
  crypto::Sha256 sha;
  std::optional<std::uint64_t> audited_offset;  // the resume offset last audited
  int audited_offers = 0;
};

EvidenceStore::EvidenceStore(fs::path dir, Store& store, const Clock& clock)
    : dir_(std::move(dir)), store_(store), clock_(clock), writer_([this] { write_loop(); }) {}

EvidenceStore::~EvidenceStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  writer_.join();
}

Status EvidenceStore::open() {
  if (auto s = ensure_private_directory(dir_); !s) return s;
  return ensure_private_directory(dir_ / ".partial");
}

fs::path EvidenceStore::object_path(const std::string& sha256) const { return dir_ / sha256; }

proto::EvidenceAck EvidenceStore::offer(const std::string& agent_id,
                                        const proto::EvidenceOffer& offer) {
  const auto& ref = offer.evidence();
  const std::string& sha = ref.sha256();
  if (!is_sha256_hex(sha)) return ack_of(sha, 0, false, "evidence id is not a SHA-256 hash");
  if (ref.size() > kMaxEvidenceObjectBytes)
    return ack_of(sha, 0, false, "evidence object too large");

  // Only objects an action of this agent declared in its result are accepted.
  auto rows = store_.find_evidence(sha);
  if (!rows) return ack_of(sha, 0, false, "controller store error");
  const EvidenceRecord* declared = nullptr;
  for (const auto& r : *rows) {
    if (r.agent_id == agent_id && r.action_id == offer.action_id() && r.size == ref.size())
      declared = &r;
  }
  if (declared == nullptr) {
    std::lock_guard lock(mutex_);
    const auto refused = refusals_.find(agent_id + "/" + offer.action_id() + "/" + sha);
    return ack_of(sha, 0, false,
                  refused != refusals_.end()
                      ? "refused when the action's result named it: " + refused->second
                      : "no result of this agent's action declared this evidence");
  }

  std::unique_lock lock(mutex_);
  std::error_code ec;
  // Already held, and this agent delivered it before (an earlier action of its own, or a
  // finished upload whose ack was lost): nothing to send. Knowing a hash is no proof of holding
  // the bytes, so an object only other agents delivered is uploaded again, and its hash checked.
  const bool delivered_before =
      std::any_of(rows->begin(), rows->end(),
                  [&](const EvidenceRecord& r) { return r.agent_id == agent_id && r.stored; });
  if (delivered_before && fs::exists(object_path(sha), ec) &&
      fs::file_size(object_path(sha), ec) == ref.size() && !ec) {
    if (!declared->stored) {
      (void)store_.mark_evidence_stored(
          sha, offer.action_id(), clock_.now_unix_ms(),
          {"agent:" + agent_id, "evidence.stored", sha,
           json{{"action_id", offer.action_id()}, {"size", ref.size()}, {"deduplicated", true}}
               .dump()});
    }
    return ack_of(sha, ref.size(), true);
  }
  // Chunks of an earlier session may still be queued: resume after they are on disk.
  changed_.wait(lock, [&] {
    auto it = uploads_.find(sha);
    return it == uploads_.end() || it->second->pending == 0;
  });
  if (auto it = uploads_.find(sha); it != uploads_.end() && it->second->broken) uploads_.erase(it);
  auto& slot = uploads_[sha];
  if (!slot) {
    auto upload = std::make_unique<Upload>();
    const auto partial = dir_ / ".partial" / sha;
    upload->fd = ::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (upload->fd < 0) {
      uploads_.erase(sha);
      return ack_of(sha, 0, false,
                    fmt::format("cannot open partial file: {}", std::strerror(errno)));
    }
    // New evidence is written once and read rarely: bypassing the page cache avoids both the
    // copy into it and, on virtual machines, faulting in fresh memory for it.
    upload->direct_fd = ::open(partial.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    // Resume: hash what is already on disk so the digest covers the whole object at the end.
    std::vector<char> buffer(1 << 20);
    std::uint64_t have = 0;
    for (;;) {
      const ssize_t n = ::read(upload->fd, buffer.data(), buffer.size());
      if (n <= 0) break;
      if (have + static_cast<std::uint64_t>(n) > ref.size()) break;
      upload->sha.update(buffer.data(), static_cast<std::size_t>(n));
      have += static_cast<std::uint64_t>(n);
    }
    if (::ftruncate(upload->fd, static_cast<off_t>(have)) != 0) {
      uploads_.erase(sha);
      return ack_of(sha, 0, false, "cannot prepare partial file");
    }
    upload->written = have;
    slot = std::move(upload);
  }
  slot->received = slot->written;
  slot->size = ref.size();
  slot->action_id = offer.action_id();
  slot->agent_id = agent_id;
  // An offer is audited (and its resume logged) when it says something new: the upload starts
  // here, or resumes from another offset than the last one audited; and at most
  // kMaxAuditedOffers times per upload. The same offer repeated (an agent reconnecting, or one
  // flooding: 6,000 in 20 s made as many entries) adds nothing, and offers alternating with
  // one-byte chunks (a new offset each time) stop being recorded after a few.
  // A new slot has audited nothing yet (audited_offset empty), so its first offer is recorded.
  if (slot->audited_offset != slot->written && slot->audited_offers < kMaxAuditedOffers) {
    ++slot->audited_offers;
    slot->audited_offset = slot->written;
    if (slot->written > 0)
      spdlog::info("evidence: {} resumes at {} of {} bytes", sha, slot->written, ref.size());
    (void)store_.append_audit({"agent:" + agent_id, "evidence.offered", sha,
                               json{{"action_id", offer.action_id()},
                                    {"size", ref.size()},
                                    {"name", ref.name()},
                                    {"resume_offset", slot->written}}
                                   .dump(-1, ' ', false, json::error_handler_t::replace)},
                              clock_.now_unix_ms());
  }
  if (slot->written == slot->size) return finish(sha, *slot);
  return ack_of(sha, slot->written);
}

void EvidenceStore::remember_refusal(const std::string& agent_id, const std::string& action_id,
                                     const std::string& sha256, const std::string& reason) {
  std::lock_guard lock(mutex_);
  auto key = agent_id + "/" + action_id + "/" + sha256;
  if (refusals_.insert_or_assign(key, reason).second) refusal_order_.push_back(std::move(key));
  while (refusal_order_.size() > kRememberedRefusals) {
    refusals_.erase(refusal_order_.front());
    refusal_order_.pop_front();
  }
}

void EvidenceStore::append(const std::string& agent_id, proto::EvidenceChunk&& chunk,
                           AckHandler done) {
  const std::string sha = chunk.sha256();
  {
    std::lock_guard lock(mutex_);
    auto it = uploads_.find(sha);
    if (it == uploads_.end() || it->second->agent_id != agent_id || it->second->broken) {
      done(ack_of(sha, 0, false, "no upload of this object was offered on this session"));
      return;
    }
    auto& upload = *it->second;
    if (chunk.offset() != upload.received) {
      done(ack_of(sha, upload.written));  // resume from what is on disk
      return;
    }
    if (upload.received + chunk.data().size() > upload.size) {
      upload.broken = true;
      done(ack_of(sha, upload.written, false, "chunk runs past the offered size"));
      return;
    }
    // Hashed here, in arrival order, while the writer thread writes earlier chunks.
    upload.sha.update(chunk.data().data(), chunk.data().size());
    upload.received += chunk.data().size();
    ++upload.pending;
    WriteJob job{sha, {}, chunk.offset(), std::move(done)};
    job.data.swap(*chunk.mutable_data());
    jobs_.push_back(std::move(job));
  }
  changed_.notify_all();
}

void EvidenceStore::write_loop() {
  // Chunks are at most one frame; an aligned copy of one is what O_DIRECT writes from.
  constexpr std::size_t staging_size = kDefaultMaxFrameSize;
  std::unique_ptr<char, decltype(&std::free)> staging(
      static_cast<char*>(std::aligned_alloc(4096, staging_size)), &std::free);
  for (;;) {
    WriteJob job;
    int fd = -1;
    int direct_fd = -1;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left to write
      job = std::move(jobs_.front());
      jobs_.pop_front();
      auto it = uploads_.find(job.sha256);
      if (it != uploads_.end() && !it->second->broken) {
        fd = it->second->fd;
        direct_fd = it->second->direct_fd;
      }
    }
    // The upload (and its fds) stays while a job of it is pending.
    const char* bytes = job.data.data();
    constexpr std::size_t kBlock = 4096;
    if (direct_fd >= 0 && job.offset % kBlock == 0 && job.data.size() % kBlock == 0 &&
        job.data.size() <= staging_size) {
      std::memcpy(staging.get(), job.data.data(), job.data.size());  // O_DIRECT needs alignment
      bytes = staging.get();
      fd = direct_fd;
    }
    std::size_t done_bytes = 0;
    bool failed = fd < 0;
    while (!failed && done_bytes < job.data.size()) {
      const ssize_t n = ::pwrite(fd, bytes + done_bytes, job.data.size() - done_bytes,
                                 static_cast<off_t>(job.offset + done_bytes));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        spdlog::error("evidence: {}: write failed: {}", job.sha256, std::strerror(errno));
        failed = true;
        break;
      }
      done_bytes += static_cast<std::size_t>(n);
    }
    // Start writeback of what has arrived so far without waiting for it: the fsync before the
    // object is declared stored then only has the tail left to flush.
    constexpr std::uint64_t kWritebackStep = 32 << 20;
    const std::uint64_t end = job.offset + done_bytes;
    if (!failed && fd != direct_fd && end / kWritebackStep != job.offset / kWritebackStep) {
      ::sync_file_range(fd,
                        static_cast<off_t>(end / kWritebackStep * kWritebackStep - kWritebackStep),
                        static_cast<off_t>(kWritebackStep), SYNC_FILE_RANGE_WRITE);
    }
    proto::EvidenceAck ack;
    {
      std::lock_guard lock(mutex_);
      auto it = uploads_.find(job.sha256);
      if (it == uploads_.end()) {
        ack = ack_of(job.sha256, 0, false, "upload was abandoned");
      } else {
        auto& upload = *it->second;
        --upload.pending;
        if (failed || upload.broken) {
          upload.broken = true;
          // What reached the disk is the resume point after ftruncate on the next offer.
          ack = ack_of(job.sha256, upload.written, false,
                       "controller cannot write evidence (disk full?)");
          if (upload.pending == 0) uploads_.erase(it);
        } else {
          upload.written = end;
          ack = upload.written == upload.size && upload.pending == 0
                    ? finish(job.sha256, upload)
                    : ack_of(job.sha256, upload.written);
        }
      }
    }
    changed_.notify_all();
    job.done(std::move(ack));
  }
}

proto::EvidenceAck EvidenceStore::finish(const std::string& sha, Upload& upload) {
  // Caller holds mutex_; `upload` is uploads_[sha] and is erased here.
  const auto digest = upload.sha.hex_digest();
  const auto size = upload.size;
  const auto action_id = upload.action_id;
  const auto agent_id = upload.agent_id;
  const auto partial = dir_ / ".partial" / sha;
  const bool synced = ::fsync(upload.fd) == 0;
  uploads_.erase(sha);
  if (digest != sha) {
    std::error_code ignored;
    fs::remove(partial, ignored);
    spdlog::error("evidence: upload from agent {} does not match its hash (got {}, want {})",
                  agent_id, digest, sha);
    (void)store_.append_audit({"agent:" + agent_id, "evidence.rejected", sha,
                               json{{"action_id", action_id}, {"computed_sha256", digest}}.dump()},
                              clock_.now_unix_ms());
    return ack_of(sha, 0, false, "SHA-256 of the received bytes does not match");
  }
  std::error_code ec;
  fs::rename(partial, object_path(sha), ec);
  if (!synced || ec) return ack_of(sha, size, false, "controller cannot store evidence");
  if (const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  if (auto s = store_.mark_evidence_stored(
          sha, action_id, clock_.now_unix_ms(),
          {"agent:" + agent_id, "evidence.stored", sha,
           json{{"action_id", action_id}, {"size", size}, {"sha256_checked", true}}.dump()});
      !s) {
    spdlog::error("evidence: {}: cannot record: {}", sha, s.error().message);
  }
  spdlog::info("evidence: stored {} ({} bytes) from agent {} for action {}", sha, size, agent_id,
               action_id);
  return ack_of(sha, size, true);
}

Result<fs::path> EvidenceStore::verified_path(const std::string& sha256) {
  if (!is_sha256_hex(sha256)) return Error{"evidence id must be a lowercase SHA-256 hex string"};
  const auto path = object_path(sha256);
  std::error_code ec;
  if (!fs::exists(path, ec)) return Error{fmt::format("no stored evidence {}", sha256)};
  auto digest = crypto::sha256_file(path.string());
  if (!digest) return digest.error();
  if (*digest != sha256) {
    (void)store_.append_audit(
        {"controller", "evidence.corrupt", sha256, json{{"computed_sha256", *digest}}.dump()},
        clock_.now_unix_ms());
    return Error{fmt::format("stored evidence {} no longer matches its hash", sha256)};
  }
  return path;
}

}  // namespace riposte::controller
