#include "controller/store/store_copy.h"

#include <fmt/format.h>

#include <algorithm>

#include "controller/store/audit_chain.h"

namespace riposte::controller {

namespace {

// Parents before the rows that refer to them (actions -> agents, evidence -> actions, alerts ->
// cases, ...). Tables where order is meaning are read in that order: the target's identity
// `rowid` is given in insertion order.
struct TableOrder {
  const char* table;
  const char* order_by;
};
constexpr TableOrder kTables[] = {
    {"enrollment_tokens", "id"},
    {"agents", "id"},
    {"agent_addresses", "agent_id, ip, since_ms"},
    {"api_tokens", "id"},
    {"operators", "name"},
    {"actions", "rowid"},
    {"evidence", "rowid"},
    {"audit_log", "seq"},
    {"cases", "rowid"},
    {"alerts", "rowid"},
    {"observable_cases", "type, value, host_name"},
    {"case_notes", "rowid"},
    {"playbook_runs", "rowid"},
    {"run_steps", "run_id, seq"},
    {"approvals", "rowid"},
    {"content_objects", "rowid"},
    {"controllers", "id"},
    {"console_sessions", "secret_hash"},
};

struct Column {
  std::string name;
  bool binary = false;
};

// The target's columns (without the identity `rowid`, which PostgreSQL numbers itself).
Result<std::vector<Column>> target_columns(sql::Database& db, const std::string& table) {
  sql::Query q(db,
               "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
               "? AND table_schema = current_schema() AND column_name != 'rowid' ORDER BY "
               "ordinal_position");
  q.bind(table);
  auto columns = sql::collect_rows(
      db, q, [](const sql::Query& row) { return Column{row.text(0), row.text(1) == "bytea"}; },
      "read the columns of " + table);
  if (columns && columns->empty()) return Error{fmt::format("the target has no table {}", table)};
  return columns;
}

Result<std::uint64_t> count_rows(sql::Database& db, const std::string& table) {
  sql::Query q(db, fmt::format("SELECT COUNT(*) FROM {}", table));
  if (q.step() != sql::kRow) return db.error("count " + table);
  return static_cast<std::uint64_t>(q.integer(0));
}

}  // namespace

Result<StoreCopyReport> copy_store(SqliteStore& from, PostgresStore& to,
                                   const std::function<void(const TableCopied&)>& progress) {
  // A broken chain is refused before anything is written (and before this function holds the
  // source's one connection, which the check needs): copied, it would look like the new
  // database broke it.
  auto source_chain = verify_audit_chain(from);
  if (!source_chain) return source_chain.error();
  if (source_chain->first_broken_seq) {
    return Error{fmt::format(
        "the source's audit chain is broken at entry {}: {} (nothing was copied; `riposte audit "
        "verify` on the source controller says more)",
        *source_chain->first_broken_seq, source_chain->problem)};
  }
  const auto source_connection = from.connection();
  const auto target_connection = to.connection();
  sql::Database& source = *source_connection;
  sql::Database& target = *target_connection;
  // A table added to the schema and not to kTables would be left behind without a word.
  {
    sql::Query q(target,
                 "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                 "current_schema() AND table_name != 'schema_migrations' ORDER BY table_name");
    auto tables = sql::collect_rows(
        target, q, [](const sql::Query& row) { return row.text(0); }, "list the tables");
    if (!tables) return tables.error();
    for (const auto& name : *tables) {
      if (std::none_of(std::begin(kTables), std::end(kTables),
                       [&](const TableOrder& t) { return name == t.table; }))
        return Error{fmt::format("migrate does not know how to copy table {}", name)};
    }
  }
  for (const auto& t : kTables) {
    auto rows = count_rows(target, t.table);
    if (!rows) return rows.error();
    if (*rows != 0) {
      return Error{fmt::format(
          "the target database is not empty ({} rows in {}): migrate only into a new database",
          *rows, t.table)};
    }
  }
  StoreCopyReport report;
  if (auto s = target.begin(); !s) return s.error();
  auto copy_all = [&]() -> Status {
    for (const auto& t : kTables) {
      auto columns = target_columns(target, t.table);
      if (!columns) return columns.error();
      std::string names, placeholders;
      for (const auto& c : *columns) {
        names += (names.empty() ? "" : ", ") + c.name;
        placeholders += placeholders.empty() ? "?" : ", ?";
      }
      sql::Query read(source,
                      fmt::format("SELECT {} FROM {} ORDER BY {}", names, t.table, t.order_by));
      const std::string insert =
          fmt::format("INSERT INTO {} ({}) VALUES ({})", t.table, names, placeholders);
      TableCopied copied{t.table, 0};
      int rc;
      while ((rc = read.step()) == sql::kRow) {
        auto cursor = target.prepare(insert);
        for (std::size_t i = 0; i < columns->size(); ++i) {
          const int column = static_cast<int>(i);
          if (read.is_null(column))
            cursor->bind_null(column + 1);
          else if ((*columns)[i].binary)
            cursor->bind_blob(column + 1, read.blob(column));
          else
            cursor->bind_text(column + 1, read.text(column));
        }
        if (cursor->step() == sql::kError) return target.error("copy a row of " + copied.table);
        if (++copied.rows % 10'000 == 0 && progress) progress(copied);
      }
      if (rc != sql::kDone) return source.error("read " + copied.table);
      if (progress) progress(copied);
      report.tables.push_back(copied);
    }
    return ok_status();
  };
  // Counted inside the transaction (this connection sees its own rows), so a mismatch still
  // leaves the target empty.
  auto counted = [&]() -> Status {
    for (const auto& copied : report.tables) {
      auto there = count_rows(target, copied.table);
      if (!there) return there.error();
      if (*there != copied.rows)
        return Error{fmt::format("{}: copied {} rows, the target holds {}", copied.table,
                                 copied.rows, *there)};
    }
    return ok_status();
  };
  auto copied = copy_all();
  if (copied) copied = counted();
  if (!copied) {
    (void)target.exec("ROLLBACK");
    return Error{copied.error().message + " (nothing was copied)"};
  }
  if (auto s = target.exec("COMMIT"); !s)
    return Error{s.error().message + " (nothing was copied)"};

  auto verified = verify_audit_chain(to);
  if (!verified) return verified.error();
  if (verified->first_broken_seq) {
    return Error{fmt::format(
        "the copied audit chain does not verify in the target at entry {}: {} (the rows are "
        "copied: drop the target database before trying again)",
        *verified->first_broken_seq, verified->problem)};
  }
  report.audit_entries = verified->entries;
  report.audit_head_hash = verified->head_hash;
  return report;
}

}  // namespace riposte::controller
