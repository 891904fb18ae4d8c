#include "agent/evidence_file.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "protocol/crypto.h"

namespace riposte::agent {

Result<std::unique_ptr<EvidenceFile>> EvidenceFile::create(const std::filesystem::path& path) {
  auto file = platform::FileSink::create(path, /*direct_io=*/true);
  if (!file) return file.error();
  std::unique_ptr<EvidenceFile> evidence(new EvidenceFile(std::move(*file)));
  if (!evidence->sha_.ready()) return Error{"cannot start SHA-256: " + crypto::openssl_error()};
  return evidence;
}

EvidenceFile::EvidenceFile(std::unique_ptr<platform::FileSink> file)
    : file_(std::move(file)),
      buffers_(kBuffers),
      hasher_([this] { hash_loop(); }),
      writer_([this] { write_loop(); }) {
  // Buffers are allocated on first use: a small collected file needs one, not kBuffers MiB.
  for (std::size_t i = kBuffers; i-- > 0;) free_.push_back(i);
}

EvidenceFile::~EvidenceFile() { stop_workers(); }

void EvidenceFile::stop_workers() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  changed_.notify_all();
  if (hasher_.joinable()) hasher_.join();
  if (writer_.joinable()) writer_.join();
}

bool EvidenceFile::take_buffer(std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [&] { return !free_.empty(); });
  const std::size_t index = free_.back();
  free_.pop_back();
  Buffer& buffer = buffers_[index];
  if (buffer.data == nullptr) {
    void* memory = std::aligned_alloc(platform::FileSink::kDirectAlignment, kBufferSize);
    if (memory == nullptr) {
      free_.push_back(index);
      return false;
    }
    memory_.emplace_back(static_cast<std::uint8_t*>(memory));
    buffer.data = memory_.back().get();
  }
  buffer.size = 0;
  current_ = index;
  return true;
}

void EvidenceFile::submit(std::unique_lock<std::mutex>&) {
  if (!current_) return;
  const std::size_t index = *current_;
  current_.reset();
  if (buffers_[index].size == 0) {
    free_.push_back(index);
    return;
  }
  buffers_[index].users = 2;
  to_hash_.push_back(index);
  to_write_.push_back(index);
  changed_.notify_all();
}

void EvidenceFile::release(std::size_t index) {
  std::lock_guard lock(mutex_);
  if (--buffers_[index].users == 0) free_.push_back(index);
  changed_.notify_all();
}

std::span<std::uint8_t> EvidenceFile::lend(std::size_t size) {
  std::unique_lock lock(mutex_);
  if (write_error_ || (!current_ && !take_buffer(lock))) return {};
  Buffer& buffer = buffers_[*current_];
  return {buffer.data + buffer.size, std::min(size, kBufferSize - buffer.size)};
}

Status EvidenceFile::write(std::span<const std::uint8_t> bytes) {
  std::unique_lock lock(mutex_);
  while (!bytes.empty()) {
    if (write_error_) return *write_error_;
    if (!current_ && !take_buffer(lock)) return Error{"out of memory for evidence buffers"};
    Buffer& buffer = buffers_[*current_];
    if (bytes.data() == buffer.data + buffer.size) {  // filled in place through lend()
      const std::size_t n = std::min(bytes.size(), kBufferSize - buffer.size);
      buffer.size += n;
      bytes = bytes.subspan(n);
      if (buffer.size == kBufferSize) submit(lock);
      continue;
    }
    // The copy runs outside the lock: the current buffer belongs to the producer alone.
    const std::size_t n = std::min(bytes.size(), kBufferSize - buffer.size);
    lock.unlock();
    std::memcpy(buffer.data + buffer.size, bytes.data(), n);
    lock.lock();
    buffer.size += n;
    bytes = bytes.subspan(n);
    if (buffer.size == kBufferSize) submit(lock);
  }
  return write_error_ ? Status{*write_error_} : ok_status();
}

void EvidenceFile::hash_loop() {
  for (;;) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !to_hash_.empty() || closing_; });
    if (to_hash_.empty()) return;
    const std::size_t index = to_hash_.front();
    to_hash_.pop_front();
    const Buffer buffer = buffers_[index];
    lock.unlock();
    (void)sha_.write({buffer.data, buffer.size});  // cannot fail once started
    release(index);
  }
}

void EvidenceFile::write_loop() {
  std::vector<std::size_t> batch;
  std::vector<std::span<const std::uint8_t>> pieces;
  for (;;) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !to_write_.empty() || closing_; });
    if (to_write_.empty()) return;
    // Every buffer queued so far goes down in one call: when the disk is the slower side, the
    // writer catches up with larger writes instead of falling further behind.
    batch.assign(to_write_.begin(), to_write_.end());
    to_write_.clear();
    pieces.clear();
    for (const std::size_t index : batch)
      pieces.emplace_back(buffers_[index].data, buffers_[index].size);
    const bool failed = write_error_.has_value();
    lock.unlock();
    // After a failure the rest is not written, but buffers still flow so nobody waits forever.
    if (!failed) {
      if (auto s = file_->write(pieces); !s) {
        std::lock_guard relock(mutex_);
        write_error_ = s.error();
      }
    }
    for (const std::size_t index : batch) release(index);
  }
}

Result<std::string> EvidenceFile::finish() {
  {
    std::unique_lock lock(mutex_);
    submit(lock);
  }
  stop_workers();
  if (write_error_) return *write_error_;
  if (auto s = file_->finish(); !s) return s.error();
  return sha_.hex_digest();
}

}  // namespace riposte::agent
