#pragma once

// `riposte-controller migrate`: a single-box deployment's SQLite store copied into an empty
// PostgreSQL store, row for row, so that everything reads back the same and the audit chain still
// verifies (its entries are copied, never re-hashed).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "controller/store/postgres_store.h"
#include "controller/store/sqlite_store.h"

namespace riposte::controller {

struct TableCopied {
  std::string table;
  std::uint64_t rows = 0;
};

struct StoreCopyReport {
  std::vector<TableCopied> tables;
  std::int64_t audit_entries = 0;  // verified in the target after the copy
  std::string audit_head_hash;
};

// Copies every table of `from` (migrated to the latest schema) into `to`, in one transaction on
// `to`: all of it or nothing. Refuses a target that holds any row already (it would mix two
// deployments' histories and break the chain). `progress` is called after each table and every
// 10,000 rows. Then verifies the target's audit chain and counts each table on both sides.
// Neither store may be in use by a controller meanwhile.
Result<StoreCopyReport> copy_store(SqliteStore& from, PostgresStore& to,
                                   const std::function<void(const TableCopied&)>& progress = {});

}  // namespace riposte::controller
