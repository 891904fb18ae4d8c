// SqlStore, continued: cases, playbook runs and approvals. Split from sql_store.cpp so each file
// holds one part of the data model.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

#include "controller/store/sql_store.h"

namespace riposte::controller {

using sql::collect_rows;
using sql::Query;

namespace {

constexpr std::array<std::string_view, 5> kCaseStatuses = {"new", "in_progress", "contained",
                                                           "resolved", "false_positive"};
constexpr std::array<std::string_view, 4> kSeverities = {"low", "medium", "high", "critical"};

constexpr const char* kCaseColumns =
    "id, title, status, severity, host_name, assignee, created_at_ms, updated_at_ms, "
    "validated_at_ms, contained_at_ms, resolved_at_ms, "
    "(SELECT COUNT(*) FROM alerts WHERE alerts.case_id = cases.id)";

CaseRecord case_from_row(const Query& row) {
  CaseRecord c;
  c.id = row.text(0);
  c.title = row.text(1);
  c.status = row.text(2);
  c.severity = row.text(3);
  c.host_name = row.text(4);
  c.assignee = row.text(5);
  c.created_at_ms = row.integer(6);
  c.updated_at_ms = row.integer(7);
  c.validated_at_ms = row.optional_integer(8);
  c.contained_at_ms = row.optional_integer(9);
  c.resolved_at_ms = row.optional_integer(10);
  c.alert_count = static_cast<int>(row.integer(11));
  return c;
}

constexpr const char* kRunColumns =
    "id, playbook, playbook_version, alert_id, case_id, started_by, simulate_only, state, step, "
    "attempt, waiting_for, step_started_at_ms, wake_at_ms, context, error, started_at_ms, "
    "updated_at_ms, finished_at_ms, requested_by, cancel_request";

PlaybookRunRecord run_from_row(const Query& row) {
  PlaybookRunRecord r;
  r.id = row.text(0);
  r.playbook = row.text(1);
  r.playbook_version = row.text(2);
  r.alert_id = row.text(3);
  r.case_id = row.text(4);
  r.started_by = row.text(5);
  r.simulate_only = row.integer(6) != 0;
  r.state = row.text(7);
  r.step = row.text(8);
  r.attempt = static_cast<int>(row.integer(9));
  r.waiting_for = row.text(10);
  r.step_started_at_ms = row.integer(11);
  r.wake_at_ms = row.integer(12);
  r.context = row.text(13);
  r.error = row.text(14);
  r.started_at_ms = row.integer(15);
  r.updated_at_ms = row.integer(16);
  r.finished_at_ms = row.optional_integer(17);
  r.requested_by = row.text(18);
  r.cancel_request = row.text(19);
  return r;
}

constexpr const char* kApprovalColumns =
    "id, run_id, step_id, attempt, case_id, requested_by, what, reason, impact, state, "
    "decided_by, decision_reason, created_at_ms, expires_at_ms, decided_at_ms, not_deciders";

ApprovalRecord approval_from_row(const Query& row) {
  ApprovalRecord a;
  a.id = row.text(0);
  a.run_id = row.text(1);
  a.step_id = row.text(2);
  a.attempt = static_cast<int>(row.integer(3));
  a.case_id = row.text(4);
  a.requested_by = row.text(5);
  a.what = row.text(6);
  a.reason = row.text(7);
  a.impact = row.text(8);
  a.state = row.text(9);
  a.decided_by = row.text(10);
  a.decision_reason = row.text(11);
  a.created_at_ms = row.integer(12);
  a.expires_at_ms = row.integer(13);
  a.decided_at_ms = row.optional_integer(14);
  const auto names = nlohmann::json::parse(row.text(15), nullptr, /*allow_exceptions=*/false);
  if (names.is_array()) {
    for (const auto& n : names)
      if (n.is_string()) a.not_deciders.push_back(n.get<std::string>());
  }
  return a;
}

bool one_of(auto const& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

Result<std::optional<CaseRecord>> SqlStore::find_case(const std::string& id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM cases WHERE id = ?", kCaseColumns));
  q.bind(id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<CaseRecord>();
  if (rc != sql::kRow) return db->error("find case");
  auto c = case_from_row(q);
  Query alerts(*db, "SELECT id FROM alerts WHERE case_id = ? ORDER BY timestamp_ms");
  alerts.bind(id);
  while (alerts.step() == sql::kRow) c.alert_ids.push_back(alerts.text(0));
  return std::optional<CaseRecord>(std::move(c));
}

Result<std::vector<CaseRecord>> SqlStore::list_cases(const CaseFilter& f, Page page) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM cases WHERE (? = '' OR status = ?) AND "
                           "(? = '' OR severity = ?) AND (? = '' OR host_name = ?) AND "
                           "created_at_ms >= ? ORDER BY created_at_ms DESC, id LIMIT ? "
                           "OFFSET ?",
                           kCaseColumns));
  q.bind(f.status, f.status, f.severity, f.severity, f.host, f.host, f.since_ms, page.limit,
         page.offset);
  return collect_rows(*db, q, case_from_row, "list cases");
}

Status SqlStore::update_case(const std::string& id, const CaseChange& change,
                                const std::string& actor, const AuditEvent& audit,
                                std::int64_t now_ms) {
  if (!change.status.empty() && !one_of(kCaseStatuses, change.status)) {
    return Error{
        fmt::format("case status '{}' is not one of new, in_progress, contained, "
                    "resolved, false_positive",
                    change.status)};
  }
  if (!change.severity.empty() && !one_of(kSeverities, change.severity))
    return Error{
        fmt::format("severity '{}' is not one of low, medium, high, critical", change.severity)};
  if (change.note.size() > 64 * 1024) return Error{"a case note is at most 64 KiB"};
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    const bool contained = change.status == "contained";
    const bool closed = change.status == "resolved" || change.status == "false_positive";
    // A resolved case was contained by then, if it never said so.
    auto updated =
        Query(*db,
              "UPDATE cases SET status = CASE WHEN ? = '' THEN status ELSE ? END, "
              "severity = CASE WHEN ? = '' THEN severity ELSE ? END, "
              "assignee = CASE WHEN ? = '' THEN assignee ELSE ? END, updated_at_ms = ?, "
              "contained_at_ms = CASE WHEN (? OR ?) AND contained_at_ms IS NULL THEN ? ELSE "
              "contained_at_ms END, resolved_at_ms = CASE WHEN ? AND resolved_at_ms IS NULL "
              "THEN ? ELSE resolved_at_ms END WHERE id = ?")
            .bind(change.status, change.status, change.severity, change.severity, change.assignee,
                  change.assignee, now_ms, static_cast<int>(contained),
                  static_cast<int>(closed && change.status == "resolved"), now_ms,
                  static_cast<int>(closed), now_ms, id)
            .run();
    if (!updated) return updated;
    if (db->changes() == 0) return Error{fmt::format("no case {}", id)};
    if (!change.note.empty()) {
      auto noted = Query(*db,
                         "INSERT INTO case_notes (case_id, at_ms, author, text) VALUES (?, ?, "
                         "?, ?)")
                       .bind(id, now_ms, actor, change.note)
                       .run();
      if (!noted) return noted;
    }
    return append_audit_locked(*db, audit, now_ms);
  });
}

Result<std::vector<CaseNoteRecord>> SqlStore::case_notes(const std::string& case_id) {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT at_ms, author, text FROM case_notes WHERE case_id = ? ORDER BY at_ms, rowid");
  q.bind(case_id);
  return collect_rows(
      *db, q,
      [](const Query& r) {
        return CaseNoteRecord{r.integer(0), r.text(1), r.text(2)};
      },
      "list case notes");
}

Status SqlStore::insert_run(const PlaybookRunRecord& r, const AuditEvent& audit,
                               std::int64_t now_ms) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto inserted =
        Query(*db, fmt::format("INSERT INTO playbook_runs ({}) VALUES (?, ?, ?, ?, ?, ?, "
                               "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               kRunColumns))
            .bind(r.id, r.playbook, r.playbook_version, r.alert_id, r.case_id, r.started_by,
                  static_cast<int>(r.simulate_only), r.state, r.step, r.attempt, r.waiting_for,
                  r.step_started_at_ms, r.wake_at_ms, r.context, r.error, r.started_at_ms,
                  r.updated_at_ms, r.finished_at_ms, r.requested_by, r.cancel_request)
            .run();
    if (!inserted) return inserted;
    return append_audit_locked(*db, audit, now_ms);
  });
}

Status SqlStore::update_run(const PlaybookRunRecord& r, const RunStepRecord* ended,
                               const AuditEvent* audit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  return in_transaction(*db, [&]() -> Status {
    auto updated = Query(*db,
                         "UPDATE playbook_runs SET state = ?, step = ?, attempt = ?, "
                         "waiting_for = ?, step_started_at_ms = ?, wake_at_ms = ?, context = "
                         "?, error = ?, updated_at_ms = ?, finished_at_ms = ? WHERE id = ?")
                       .bind(r.state, r.step, r.attempt, r.waiting_for, r.step_started_at_ms,
                             r.wake_at_ms, r.context, r.error, now_ms, r.finished_at_ms, r.id)
                       .run();
    if (!updated) return updated;
    if (db->changes() == 0) return Error{fmt::format("no playbook run {}", r.id)};
    if (ended != nullptr) {
      const auto& s = *ended;
      auto appended =
          Query(*db,
                "INSERT INTO run_steps (run_id, seq, step_id, kind, attempt, outcome, mode, "
                "mode_reason, detail, started_at_ms, finished_at_ms) VALUES (?, (SELECT "
                "COALESCE(MAX(seq), 0) + 1 FROM run_steps WHERE run_id = ?), ?, ?, ?, ?, ?, "
                "?, ?, ?, ?)")
              .bind(r.id, r.id, s.step_id, s.kind, s.attempt, s.outcome, s.mode, s.mode_reason,
                    s.detail, s.started_at_ms, s.finished_at_ms)
              .run();
      if (!appended) return appended;
    }
    return audit != nullptr ? append_audit_locked(*db, *audit, now_ms) : ok_status();
  });
}

Result<std::optional<PlaybookRunRecord>> SqlStore::find_run(const std::string& id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM playbook_runs WHERE id = ?", kRunColumns));
  q.bind(id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<PlaybookRunRecord>();
  if (rc != sql::kRow) return db->error("find playbook run");
  return std::optional<PlaybookRunRecord>(run_from_row(q));
}

Result<std::vector<PlaybookRunRecord>> SqlStore::list_runs(const std::string& case_id,
                                                              Page page) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM playbook_runs WHERE ? = '' OR case_id = ? "
                           "ORDER BY started_at_ms DESC, id LIMIT ? OFFSET ?",
                           kRunColumns));
  q.bind(case_id, case_id, page.limit, page.offset);
  return collect_rows(*db, q, run_from_row, "list playbook runs");
}

Result<std::vector<PlaybookRunRecord>> SqlStore::unfinished_runs() {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM playbook_runs WHERE finished_at_ms IS NULL "
                           "ORDER BY started_at_ms, id",
                           kRunColumns));
  return collect_rows(*db, q, run_from_row, "list unfinished playbook runs");
}

Result<bool> SqlStore::claim_run(const std::string& run_id, std::int64_t now_ms,
                                 std::int64_t lease_ms) {
  return claim_lease("playbook_runs", "finished_at_ms IS NULL", run_id, now_ms, lease_ms);
}

Status SqlStore::renew_run_leases(std::int64_t now_ms, std::int64_t lease_ms) {
  return renew_leases("playbook_runs", "finished_at_ms IS NULL", now_ms, lease_ms);
}

Result<std::vector<std::string>> SqlStore::runs_to_take_over(std::int64_t now_ms) {
  return ids_for_this_controller(
      "SELECT id FROM playbook_runs WHERE finished_at_ms IS NULL AND lease_owner NOT IN (?, "
      "'') AND lease_until_ms < ? ORDER BY started_at_ms",
      now_ms, "list runs to take over");
}

Status SqlStore::wake_run(const std::string& run_id, std::int64_t now_ms) {
  auto db = pool_.acquire();
  // Never a backoff or a timer: those wait on purpose. A run waiting for actions or an approval
  // recomputes its deadline when looked at.
  return Query(*db,
               "UPDATE playbook_runs SET wake_at_ms = ? WHERE id = ? AND finished_at_ms IS NULL "
               "AND state = 'waiting' AND waiting_for IN ('actions', 'approval')")
      .bind(now_ms, run_id)
      .run();
}

Result<bool> SqlStore::request_run_cancel(const std::string& run_id, const std::string& request,
                                          const AuditEvent& audit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  bool recorded = false;
  auto s = in_transaction(*db, [&]() -> Status {
    auto updated = Query(*db,
                         "UPDATE playbook_runs SET cancel_request = ? WHERE id = ? AND "
                         "finished_at_ms IS NULL AND cancel_request = ''")
                       .bind(request, run_id)
                       .run();
    if (!updated) return updated;
    recorded = db->changes() > 0;
    return recorded ? append_audit_locked(*db, audit, now_ms) : ok_status();
  });
  if (!s) return s.error();
  return recorded;
}

Result<std::vector<std::string>> SqlStore::runs_due(std::int64_t now_ms) {
  const std::string me = controller_id();
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT id FROM playbook_runs WHERE finished_at_ms IS NULL AND ((state = 'waiting' AND "
          "wake_at_ms > 0 AND wake_at_ms <= ?1) OR (cancel_request != '' AND step NOT LIKE "
          "'undo:%' AND (lease_owner IN (?2, '') OR lease_until_ms < ?1))) ORDER BY wake_at_ms");
  q.bind(now_ms, me);
  return collect_rows(
      *db, q, [](const Query& r) { return r.text(0); }, "list due playbook runs");
}

Result<std::vector<RunStepRecord>> SqlStore::run_steps(const std::string& run_id) {
  auto db = pool_.acquire();
  Query q(*db,
          "SELECT run_id, seq, step_id, kind, attempt, outcome, mode, mode_reason, detail, "
          "started_at_ms, finished_at_ms FROM run_steps WHERE run_id = ? ORDER BY seq");
  q.bind(run_id);
  return collect_rows(
      *db, q,
      [](const Query& r) {
        RunStepRecord s;
        s.run_id = r.text(0);
        s.seq = static_cast<int>(r.integer(1));
        s.step_id = r.text(2);
        s.kind = r.text(3);
        s.attempt = static_cast<int>(r.integer(4));
        s.outcome = r.text(5);
        s.mode = r.text(6);
        s.mode_reason = r.text(7);
        s.detail = r.text(8);
        s.started_at_ms = r.integer(9);
        s.finished_at_ms = r.integer(10);
        return s;
      },
      "list run steps");
}

Result<ApprovalRecord> SqlStore::insert_approval(const ApprovalRecord& a,
                                                    const AuditEvent& audit, std::int64_t now_ms) {
  auto db = pool_.acquire();
  std::optional<ApprovalRecord> stored;
  auto s = in_transaction(*db, [&]() -> Status {
    Query existing(*db, fmt::format("SELECT {} FROM approvals WHERE id = ?", kApprovalColumns));
    existing.bind(a.id);
    if (existing.step() == sql::kRow) {
      stored = approval_from_row(existing);
      return ok_status();
    }
    auto inserted =
        Query(*db, fmt::format("INSERT INTO approvals ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                               "?, ?, ?, ?, ?, ?, ?, ?)",
                               kApprovalColumns))
            .bind(a.id, a.run_id, a.step_id, a.attempt, a.case_id, a.requested_by, a.what, a.reason,
                  a.impact, a.state, a.decided_by, a.decision_reason, a.created_at_ms,
                  a.expires_at_ms, a.decided_at_ms, nlohmann::json(a.not_deciders).dump())
            .run();
    if (!inserted) return inserted;
    stored = a;
    return append_audit_locked(*db, audit, now_ms);
  });
  if (!s) return s.error();
  return *stored;
}

Result<std::optional<ApprovalRecord>> SqlStore::find_approval(const std::string& id) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM approvals WHERE id = ?", kApprovalColumns));
  q.bind(id);
  const int rc = q.step();
  if (rc == sql::kDone) return std::optional<ApprovalRecord>();
  if (rc != sql::kRow) return db->error("find approval");
  return std::optional<ApprovalRecord>(approval_from_row(q));
}

Result<std::vector<ApprovalRecord>> SqlStore::list_approvals(const std::string& state,
                                                                const std::string& case_id,
                                                                Page page) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM approvals WHERE (? = '' OR state = ?) AND "
                           "(? = '' OR case_id = ?) ORDER BY created_at_ms DESC, id LIMIT ? "
                           "OFFSET ?",
                           kApprovalColumns));
  q.bind(state, state, case_id, case_id, page.limit, page.offset);
  return collect_rows(*db, q, approval_from_row, "list approvals");
}

Result<ApprovalRecord> SqlStore::decide_approval(const std::string& id, bool approve,
                                                    const std::string& by,
                                                    const std::string& reason,
                                                    std::int64_t now_ms) {
  auto db = pool_.acquire();
  std::optional<ApprovalRecord> decided;
  auto s = in_transaction(*db, [&]() -> Status {
    Query q(*db, fmt::format("SELECT {} FROM approvals WHERE id = ?", kApprovalColumns));
    q.bind(id);
    const int found = q.step();
    if (found == sql::kDone) return Error{fmt::format("no approval {}", id)};
    if (found != sql::kRow) return db->error("find the approval");
    auto a = approval_from_row(q);
    if (a.state != "pending") {
      return Error{fmt::format("approval {} is already {}{}", id, a.state,
                               a.decided_by.empty() ? "" : " by " + a.decided_by)};
    }
    if (a.expires_at_ms <= now_ms) return Error{fmt::format("approval {} has expired", id)};
    // Two people for every approved action: whoever the run acts for (its starter, the alert's
    // submitter) cannot wave it through.
    if (by == a.requested_by || one_of(a.not_deciders, by)) {
      return Error{fmt::format(
          "{} asked for this run (started it or submitted its alert) and cannot also approve or "
          "deny it; another operator must",
          by)};
    }
    a.state = approve ? "approved" : "denied";
    a.decided_by = by;
    a.decision_reason = reason;
    a.decided_at_ms = now_ms;
    auto updated = Query(*db,
                         "UPDATE approvals SET state = ?, decided_by = ?, decision_reason = ?, "
                         "decided_at_ms = ? WHERE id = ? AND state = 'pending'")
                       .bind(a.state, by, reason, now_ms, id)
                       .run();
    if (!updated) return updated;
    auto audited = append_audit_locked(
        *db,
        {by, approve ? "approval.approved" : "approval.denied", a.case_id,
         nlohmann::json{
             {"approval_id", id}, {"run_id", a.run_id}, {"step", a.step_id}, {"reason", reason}}
             .dump()},
        now_ms);
    if (!audited) return audited;
    decided = std::move(a);
    return ok_status();
  });
  if (!s) return s.error();
  return *decided;
}

Result<std::vector<ApprovalRecord>> SqlStore::cancel_approvals(const std::string& run_id,
                                                                  const std::string& by,
                                                                  const std::string& reason,
                                                                  std::int64_t now_ms) {
  auto db = pool_.acquire();
  std::vector<ApprovalRecord> cancelled;
  auto s = in_transaction(*db, [&]() -> Status {
    Query q(*db, fmt::format("SELECT {} FROM approvals WHERE run_id = ? AND state = "
                             "'pending' ORDER BY created_at_ms",
                             kApprovalColumns));
    q.bind(run_id);
    auto pending = collect_rows(*db, q, approval_from_row, "find pending approvals of a run");
    if (!pending) return pending.error();
    for (auto& a : *pending) {
      auto updated = Query(*db,
                           "UPDATE approvals SET state = 'cancelled', decided_by = ?, "
                           "decision_reason = ?, decided_at_ms = ? WHERE id = ?")
                         .bind(by, reason, now_ms, a.id)
                         .run();
      if (!updated) return updated;
      auto audited = append_audit_locked(
          *db,
          {by, "approval.cancelled", a.case_id,
           nlohmann::json{
               {"approval_id", a.id}, {"run_id", a.run_id}, {"step", a.step_id}, {"reason", reason}}
               .dump()},
          now_ms);
      if (!audited) return audited;
      a.state = "cancelled";
      a.decided_by = by;
      a.decision_reason = reason;
      a.decided_at_ms = now_ms;
      cancelled.push_back(std::move(a));
    }
    return ok_status();
  });
  if (!s) return s.error();
  return cancelled;
}

Result<std::vector<PlaybookRunRecord>> SqlStore::runs_of_alert(const std::string& alert_id,
                                                                  const std::string& playbook) {
  auto db = pool_.acquire();
  Query q(*db, fmt::format("SELECT {} FROM playbook_runs WHERE alert_id = ? AND "
                           "playbook = ? ORDER BY started_at_ms, id",
                           kRunColumns));
  q.bind(alert_id, playbook);
  return collect_rows(*db, q, run_from_row, "list runs of an alert");
}

namespace {

// The advisory lock key that serializes automatic-action decisions ("RIPOSTER" as a number).
constexpr std::int64_t kAutomationLock = 0x524950'4f535452;

class NoAutomationLock final : public Store::AutomationLock {};

// Holds one connection of the pool, the advisory lock's session, until destroyed.
class AdvisoryAutomationLock final : public Store::AutomationLock {
 public:
  explicit AdvisoryAutomationLock(ConnectionPool::Lease db) : db_(std::move(db)) {}
  ~AdvisoryAutomationLock() override {
    Query unlock(*db_, "SELECT pg_advisory_unlock(?)");
    if (unlock.bind(kAutomationLock).step() != sql::kRow)
      spdlog::error("store: cannot release the automation lock; its connection is closed");
  }

 private:
  ConnectionPool::Lease db_;
};

}  // namespace

Result<std::unique_ptr<Store::AutomationLock>> SqlStore::lock_automation() {
  auto db = pool_.acquire();
  // SQLite: one controller, whose engine decides on one thread; and its pool may be one
  // connection, which a held lease would take from everyone else.
  if (db->dialect() != sql::Dialect::postgresql)
    return std::unique_ptr<AutomationLock>(std::make_unique<NoAutomationLock>());
  Query lock(*db, "SELECT pg_advisory_lock(?)");
  if (lock.bind(kAutomationLock).step() != sql::kRow) return db->error("take the automation lock");
  return std::unique_ptr<AutomationLock>(std::make_unique<AdvisoryAutomationLock>(std::move(db)));
}

Result<int> SqlStore::count_automatic_actions(std::int64_t since_ms, const std::string& agent_id,
                                                 const std::string& playbook) {
  auto db = pool_.acquire();
  // Few actions are automatic, and the partial index holds only those, by issue time.
  Query q(*db,
          "SELECT COUNT(*) FROM actions a WHERE a.automatic = 1 AND a.issued_at_ms >= ? AND "
          "(? = '' OR a.agent_id = ?) AND (? = '' OR EXISTS (SELECT 1 FROM playbook_runs r "
          "WHERE r.id = a.playbook_run_id AND r.playbook = ?))");
  q.bind(since_ms, agent_id, agent_id, playbook, playbook);
  if (q.step() != sql::kRow) return db->error("count automatic actions");
  return static_cast<int>(q.integer(0));
}

Result<std::vector<ApprovalRecord>> SqlStore::expire_approvals(std::int64_t now_ms) {
  auto db = pool_.acquire();
  std::vector<ApprovalRecord> expired;
  auto s = in_transaction(*db, [&]() -> Status {
    Query q(*db, fmt::format("SELECT {} FROM approvals WHERE state = 'pending' AND expires_at_ms "
                             "<= ? ORDER BY expires_at_ms",
                             kApprovalColumns));
    q.bind(now_ms);
    auto due = collect_rows(*db, q, approval_from_row, "find expired approvals");
    if (!due) return due.error();
    for (auto& a : *due) {
      auto updated =
          Query(*db, "UPDATE approvals SET state = 'expired' WHERE id = ?").bind(a.id).run();
      if (!updated) return updated;
      auto audited = append_audit_locked(
          *db,
          {"controller", "approval.expired", a.case_id,
           nlohmann::json{{"approval_id", a.id}, {"run_id", a.run_id}, {"step", a.step_id}}.dump()},
          now_ms);
      if (!audited) return audited;
      a.state = "expired";
      expired.push_back(std::move(a));
    }
    return ok_status();
  });
  if (!s) return s.error();
  return expired;
}

}  // namespace riposte::controller
