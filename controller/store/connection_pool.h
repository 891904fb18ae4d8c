#pragma once

// Connections to one database, lent one at a time to the store's calls (sql_store.h).
//
// SQLite runs with a pool of one: it has one writer at a time anyway, and the store's calls are
// short. PostgreSQL runs several, so a slow call (a large intake batch, a case report's queries)
// does not hold up the agent gateway's heartbeats and results behind it, and calls from the
// API, the gateway and the engine overlap their round trips to the server. Connections beyond
// the first are opened when every open one is lent out and the pool is below its size; one that
// cannot be opened is logged and the caller waits for a lent one instead, so a call never fails
// for want of a connection while the first one works.

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/result.h"
#include "controller/store/database.h"

namespace riposte::controller {

class ConnectionPool {
 public:
  using Connect = std::function<Result<std::unique_ptr<sql::Database>>()>;

  // `first` is open and ready; `connect` opens another like it (may be empty when size is 1).
  ConnectionPool(std::unique_ptr<sql::Database> first, std::size_t size, Connect connect);

  // One connection, the caller's alone until the Lease is destroyed. Not reentrant: a holder
  // that asks again may wait forever once the pool is exhausted.
  class Lease {
   public:
    Lease(Lease&& other) noexcept : pool_(other.pool_), db_(other.db_) { other.pool_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->give_back(db_);
    }
    sql::Database& operator*() const { return *db_; }
    sql::Database* operator->() const { return db_; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, sql::Database* db) : pool_(pool), db_(db) {}
    ConnectionPool* pool_;
    sql::Database* db_;
  };

  // Waits for a free connection, opening one more if the pool may grow.
  Lease acquire();

  // Connections open now (at most the pool's size).
  std::size_t open_connections();

 private:
  void give_back(sql::Database* db);

  const std::size_t size_;
  const Connect connect_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<sql::Database>> all_;  // every open connection
  std::vector<sql::Database*> idle_;
  std::size_t opening_ = 0;  // connections being opened outside the lock
  bool warned_ = false;      // a failed extra connection is logged once until one succeeds
};

}  // namespace riposte::controller
