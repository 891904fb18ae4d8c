#pragma once

// The store a benchmark measures: SQLite in a temporary directory, or PostgreSQL in a fresh
// database of the cluster scripts/postgres-cluster.sh runs the benchmarks beside
// (RIPOSTE_TEST_POSTGRES_URL). Benchmark argument: 0 SQLite, 1 PostgreSQL; `connections` is the
// PostgreSQL store's pool size.

#include <benchmark/benchmark.h>

#include <memory>
#include <optional>

#include "controller/store/postgres_store.h"
#include "controller/store/sqlite_store.h"
#include "tests/postgres_test_db.h"

namespace riposte::testing {

struct BenchStore {
  std::optional<PostgresTestDatabase> database;  // outlives the store's connection
  std::unique_ptr<controller::Store> store;

  // Null store (and the benchmark skipped with why) when PostgreSQL is asked for and absent.
  static std::unique_ptr<BenchStore> open(
      benchmark::State& state, int kind, const std::filesystem::path& dir,
      std::size_t connections = controller::kDefaultDatabaseConnections) {
    auto out = std::make_unique<BenchStore>();
    state.SetLabel(kind == 0 ? "sqlite" : "postgresql");
    if (kind == 0) {
      out->store = controller::SqliteStore::open(dir / "riposte.db").value();
      return out;
    }
    const char* cluster = std::getenv("RIPOSTE_TEST_POSTGRES_URL");
    if (cluster == nullptr || *cluster == '\0') {
      state.SkipWithError("no PostgreSQL: run under scripts/postgres-cluster.sh run");
      return nullptr;
    }
    out->database.emplace(cluster);
    if (out->database->url().empty()) {
      state.SkipWithError(out->database->error().c_str());
      return nullptr;
    }
    auto opened = controller::PostgresStore::open(out->database->url(), connections);
    if (!opened) {
      state.SkipWithError(opened.error().message.c_str());
      return nullptr;
    }
    out->store = std::move(*opened);
    return out;
  }
};

}  // namespace riposte::testing
