#include "controller/store/connection_pool.h"

#include <spdlog/spdlog.h>

namespace riposte::controller {

ConnectionPool::ConnectionPool(std::unique_ptr<sql::Database> first, std::size_t size,
                               Connect connect)
    : size_(std::max<std::size_t>(size, 1)), connect_(std::move(connect)) {
  idle_.push_back(first.get());
  all_.push_back(std::move(first));
}

ConnectionPool::Lease ConnectionPool::acquire() {
  std::unique_lock lock(mutex_);
  if (idle_.empty() && connect_ && all_.size() + opening_ < size_) {
    ++opening_;
    lock.unlock();  // connecting takes a round trip or more: others may return meanwhile
    auto opened = connect_();
    lock.lock();
    --opening_;
    if (opened) {
      warned_ = false;
      all_.push_back(std::move(*opened));
      return Lease(this, all_.back().get());
    }
    if (!warned_) {
      spdlog::warn("store: cannot open another database connection ({}); working with {}",
                   opened.error().message, all_.size());
      warned_ = true;
    }
  }
  returned_.wait(lock, [&] { return !idle_.empty(); });
  sql::Database* db = idle_.back();
  idle_.pop_back();
  return Lease(this, db);
}

void ConnectionPool::give_back(sql::Database* db) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(db);
  }
  returned_.notify_one();
}

std::size_t ConnectionPool::open_connections() {
  std::lock_guard lock(mutex_);
  return all_.size();
}

}  // namespace riposte::controller
