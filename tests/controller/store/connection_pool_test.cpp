// The store's connection pool (controller/store/connection_pool.h): on its own with stand-in
// connections, and on PostgreSQL, where a slow call must not hold up the controller's others.

#include "controller/store/connection_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "controller/store/postgres_store.h"
#include "tests/postgres_test_db.h"

namespace riposte::controller {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A connection that does nothing: the pool's bookkeeping is what is under test.
class StandIn final : public sql::Database {
 public:
  sql::Dialect dialect() const override { return sql::Dialect::postgresql; }
  std::unique_ptr<sql::Cursor> prepare(const std::string&) override { return nullptr; }
  Status exec(const std::string&) override { return ok_status(); }
  Status begin() override { return ok_status(); }
  std::int64_t changes() const override { return 0; }
  std::string last_error() const override { return {}; }
};

TEST(ConnectionPool, OpensMoreOnlyWhileAllAreLentAndNeverBeyondItsSize) {
  int opened = 0;
  ConnectionPool pool(std::make_unique<StandIn>(), 3,
                      [&]() -> Result<std::unique_ptr<sql::Database>> {
                        ++opened;
                        return std::unique_ptr<sql::Database>(std::make_unique<StandIn>());
                      });
  { auto a = pool.acquire(); }
  {
    auto b = pool.acquire();  // the first one, given back: nothing new opened
  }
  EXPECT_EQ(opened, 0);
  auto a = pool.acquire();
  auto b = pool.acquire();
  auto c = pool.acquire();
  EXPECT_EQ(opened, 2);
  EXPECT_NE(&*a, &*b);
  EXPECT_NE(&*b, &*c);
  EXPECT_EQ(pool.open_connections(), 3u);
  // A fourth caller waits for one of the three.
  auto fourth = std::async(std::launch::async, [&] { return &*pool.acquire(); });
  EXPECT_EQ(fourth.wait_for(200ms), std::future_status::timeout);
  sql::Database* given_back = &*b;
  { auto gone = std::move(b); }
  EXPECT_EQ(fourth.get(), given_back);
  EXPECT_EQ(opened, 2);
}

// The server refusing more connections (max_connections reached, say) must not fail a call:
// it waits for one of those already open.
TEST(ConnectionPool, AConnectionThatCannotBeOpenedMeansWaitingNotFailing) {
  int attempts = 0;
  ConnectionPool pool(std::make_unique<StandIn>(), 4,
                      [&]() -> Result<std::unique_ptr<sql::Database>> {
                        ++attempts;
                        return Error{"FATAL: sorry, too many clients already"};
                      });
  auto held = std::make_optional(pool.acquire());
  sql::Database* only = &**held;
  auto waiting = std::async(std::launch::async, [&] { return &*pool.acquire(); });
  EXPECT_EQ(waiting.wait_for(200ms), std::future_status::timeout);
  held.reset();
  EXPECT_EQ(waiting.get(), only);
  EXPECT_GE(attempts, 1);
  EXPECT_EQ(pool.open_connections(), 1u);
}

// A long statement (a large intake batch, a report's queries) holds one connection; the
// heartbeats and results the gateway writes meanwhile go through another. With one connection,
// the same call waits: the control that shows the test measures the pool.
TEST(PostgresStorePool, ASlowCallDoesNotHoldUpTheOthers) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  testing::PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();
  for (const std::size_t connections : {std::size_t{1}, std::size_t{4}}) {
    SCOPED_TRACE(connections);
    auto store = PostgresStore::open(database.url(), connections).value();
    std::promise<void> holding;
    std::thread slow([&] {
      auto db = store->connection();
      holding.set_value();
      ASSERT_TRUE(db->exec("SELECT pg_sleep(1.5)"));
    });
    holding.get_future().wait();
    const auto start = Clock::now();
    ASSERT_TRUE(store->find_agent("nobody"));
    const auto waited = Clock::now() - start;
    slow.join();
    if (connections == 1)
      EXPECT_GT(waited, 1s) << "one connection, yet the call did not wait for the slow one";
    else
      EXPECT_LT(waited, 1s) << "the call waited for another call's connection";
  }
}

// Many threads at once: every call answered, never more connections than configured.
TEST(PostgresStorePool, ConcurrentCallsStayWithinThePoolsSize) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  testing::PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();
  auto store = PostgresStore::open(database.url(), 3).value();
  std::atomic<int> failures{0};
  std::atomic<std::int64_t> most_connections{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        if (!store->append_audit({"test", "pool.check", std::to_string(t), "{}"}, 1000 + i))
          ++failures;
        auto db = store->connection();
        sql::Query q(*db,
                     "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()");
        if (q.step() != sql::kRow) {
          ++failures;
          continue;
        }
        std::int64_t seen = q.integer(0), before = most_connections.load();
        while (seen > before && !most_connections.compare_exchange_weak(before, seen)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(most_connections.load(), 3);
  EXPECT_GE(most_connections.load(), 2) << "eight threads never needed a second connection";
  // Appends from many connections at once still make one chain.
  const auto entries = store->audit_entries(0, 1000).value();
  ASSERT_EQ(entries.size(), 200u);
  for (std::size_t i = 1; i < entries.size(); ++i)
    EXPECT_EQ(entries[i].prev_hash, entries[i - 1].hash);
}

TEST(PostgresStorePool, ASizeOutsideOneTo64IsRefused) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  testing::PostgresTestDatabase database(*cluster);
  for (const std::size_t size : {std::size_t{0}, std::size_t{65}}) {
    auto store = PostgresStore::open(database.url(), size);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find("1 to 64"), std::string::npos) << store.error().message;
  }
}

}  // namespace
}  // namespace riposte::controller
