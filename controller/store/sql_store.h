#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "controller/store/connection_pool.h"
#include "controller/store/database.h"
#include "controller/store/store.h"

namespace riposte::controller {

// One step of a database's schema history. Append only: a released migration is never edited,
// so every database, however old, reaches the same schema by applying the missing steps in order.
struct SchemaMigration {
  int version;
  const char* description;
  const char* sql;
};

// The Store on a SQL database, written once for every database it runs on (database.h): SQLite
// (sqlite_store.h) and PostgreSQL (postgres_store.h) differ in their schema's DDL and how they
// connect, not in what a query answers. Each call borrows one connection of a pool
// (connection_pool.h) for its whole length, transaction included: one for SQLite, several for
// PostgreSQL, where concurrent calls are isolated by the database as those of two controllers
// are.
class SqlStore : public Store {
 public:
  // The PostgreSQL notification channel of queued actions; payload "CONTROLLER_ID AGENT,AGENT,..".
  static constexpr const char* kQueuedActionsChannel = "riposte_actions_queued";

  ~SqlStore() override;

  int schema_version() override;
  Status insert_enrollment_token(const EnrollmentTokenRecord& token) override;
  Result<EnrollmentTokenRecord> consume_enrollment_token(const std::string& token_hash,
                                                         std::int64_t now_ms) override;
  Status insert_agent(const AgentRecord& agent) override;
  Result<std::optional<AgentRecord>> find_agent(const std::string& id) override;
  Result<std::vector<AgentRecord>> list_agents() override;
  Result<AgentPage> find_agents(const AgentFilter& filter, Page page) override;
  Result<std::optional<ActionRecord>> last_network_action(const std::string& agent_id) override;
  Status record_agent_connected(const std::string& id, const AgentFactsRecord& facts,
                                const std::string& remote_address, std::int64_t now_ms) override;
  Status record_agent_facts(const std::string& id, const AgentFactsRecord& facts,
                            std::int64_t now_ms) override;
  Status record_agent_heartbeats(
      const std::vector<std::pair<std::string, std::int64_t>>& heartbeats) override;
  Status record_agent_disconnected(const std::string& id, const std::string& reason,
                                   std::int64_t now_ms) override;
  Status mark_all_agents_disconnected(const std::string& reason) override;
  void set_controller_id(const std::string& id) override;
  // SQLite has no other writer: nothing to watch. PostgresStore listens.
  Status watch_queued_actions(QueuedElsewhere callback) override;
  Result<int> controller_heartbeat(const ControllerRecord& me, std::int64_t now_ms,
                                   std::int64_t silent_before_ms) override;
  Result<std::vector<ControllerRecord>> list_controllers() override;
  Status record_controller_stopped(const std::string& id, std::int64_t now_ms) override;
  Status insert_console_session(const ConsoleSessionRecord& session, std::int64_t now_ms,
                                std::size_t max_per_operator) override;
  Result<std::optional<ConsoleSessionRecord>> find_console_session(const std::string& secret_hash,
                                                                   std::int64_t now_ms) override;
  Result<bool> delete_console_session(const std::string& secret_hash) override;
  Status revoke_agent(const std::string& id, std::int64_t now_ms) override;
  Result<std::vector<std::string>> revoked_agent_ids() override;
  Result<std::vector<std::string>> agents_connected_elsewhere(std::int64_t since_ms) override;
  Status insert_api_token(const ApiTokenRecord& token) override;
  Result<std::optional<ApiTokenRecord>> find_api_token(const std::string& token_hash) override;
  Result<int> count_api_tokens() override;
  Status insert_operator(const OperatorRecord& op, const ApiTokenRecord& token,
                         const AuditEvent& audit, std::int64_t now_ms) override;
  Result<std::vector<OperatorRecord>> list_operators() override;
  Status disable_operator(const std::string& name, const AuditEvent& audit,
                          std::int64_t now_ms) override;
  Status insert_actions(const std::vector<ActionRecord>& actions,
                        const std::vector<AuditEvent>& audit, std::int64_t now_ms) override;
  Result<std::optional<ActionRecord>> find_action(const std::string& id) override;
  Result<std::vector<ActionRecord>> list_actions(Page page) override;
  Result<std::vector<ActionRecord>> actions_to_deliver(const std::string& agent_id) override;
  Result<std::vector<std::string>> mark_actions_delivered(const std::vector<std::string>& ids,
                                                          std::int64_t now_ms) override;
  Result<bool> record_action_progress(const std::string& id, const std::string& agent_id,
                                      std::uint64_t done, std::uint64_t total,
                                      const std::string& unit, std::int64_t now_ms) override;
  Result<bool> record_action_outcome(const std::string& id, const std::string& agent_id,
                                     const ActionOutcome& outcome, std::int64_t now_ms) override;
  Result<std::vector<bool>> record_action_outcomes(const std::vector<ActionOutcomeReport>& reports,
                                                   std::int64_t now_ms) override;
  Result<std::vector<std::string>> expire_actions(std::int64_t now_ms,
                                                  std::int64_t grace_ms) override;
  Result<std::vector<EvidenceRecord>> find_evidence(const std::string& sha256) override;
  Status mark_evidence_stored(const std::string& sha256, const std::string& action_id,
                              std::int64_t now_ms, const AuditEvent& audit) override;
  Result<std::uint64_t> evidence_bytes_declared(const std::string& agent_id,
                                                std::int64_t since_ms) override;
  Result<StoreMetrics> metrics() override;
  Result<bool> put_object(const ContentObjectRecord& meta, std::string_view bytes,
                          const AuditEvent& audit, std::int64_t now_ms) override;
  Result<std::optional<ContentObjectRecord>> find_object(const std::string& sha256) override;
  Result<std::vector<ContentObjectRecord>> list_objects(const std::string& kind,
                                                        int limit) override;
  // The slice through SQL's substr(); SqlStore reads its pages through incremental blob I/O.
  Result<std::string> read_object(const std::string& sha256, std::uint64_t offset,
                                  std::size_t max_bytes) override;
  Result<bool> object_named_for_agent(const std::string& agent_id,
                                      const std::string& sha256) override;
  Status append_audit(const AuditEvent& event, std::int64_t now_ms) override;
  Result<std::vector<AuditEntry>> audit_entries(std::int64_t after_seq, int limit) override;
  Result<std::vector<AlertInsertOutcome>> insert_alerts(const std::vector<AlertRecord>& alerts,
                                                        std::int64_t case_window_ms,
                                                        const AuditEvent& audit,
                                                        std::int64_t now_ms) override;
  Result<std::optional<AlertRecord>> find_alert(const std::string& id) override;
  Result<std::vector<AlertRecord>> list_alerts(const std::string& status, Page page) override;
  Status update_alert(const std::string& id, const std::string& status, const std::string& column,
                      const std::string& json_text, const AuditEvent& audit,
                      std::int64_t now_ms) override;
  Result<std::vector<std::string>> unfinished_alerts(std::int64_t now_ms) override;
  Result<bool> claim_alert(const std::string& id, std::int64_t now_ms,
                           std::int64_t lease_ms) override;
  Status renew_alert_leases(std::int64_t now_ms, std::int64_t lease_ms) override;
  Result<std::vector<std::string>> take_over_alerts(std::int64_t now_ms,
                                                    std::int64_t lease_ms) override;
  Result<std::vector<AlertRecord>> related_alerts(const std::string& host_name,
                                                  const std::vector<Observable>& observables,
                                                  const std::string& except_id, int limit) override;
  Result<std::optional<CaseRecord>> find_case(const std::string& id) override;
  Result<std::vector<CaseRecord>> list_cases(const CaseFilter& filter, Page page) override;
  Status update_case(const std::string& id, const CaseChange& change, const std::string& actor,
                     const AuditEvent& audit, std::int64_t now_ms) override;
  Result<std::vector<CaseNoteRecord>> case_notes(const std::string& case_id) override;
  Result<std::vector<ActionRecord>> case_actions(const std::string& case_id) override;
  Status insert_run(const PlaybookRunRecord& run, const AuditEvent& audit,
                    std::int64_t now_ms) override;
  Status update_run(const PlaybookRunRecord& run, const RunStepRecord* ended_step,
                    const AuditEvent* audit, std::int64_t now_ms) override;
  Result<std::optional<PlaybookRunRecord>> find_run(const std::string& id) override;
  Result<std::vector<PlaybookRunRecord>> list_runs(const std::string& case_id, Page page) override;
  Result<std::vector<PlaybookRunRecord>> unfinished_runs() override;
  Result<std::vector<std::string>> runs_due(std::int64_t now_ms) override;
  Result<std::vector<RunStepRecord>> run_steps(const std::string& run_id) override;
  Result<bool> claim_run(const std::string& run_id, std::int64_t now_ms,
                         std::int64_t lease_ms) override;
  Status renew_run_leases(std::int64_t now_ms, std::int64_t lease_ms) override;
  Result<std::vector<std::string>> runs_to_take_over(std::int64_t now_ms) override;
  Status wake_run(const std::string& run_id, std::int64_t now_ms) override;
  Result<bool> request_run_cancel(const std::string& run_id, const std::string& request,
                                  const AuditEvent& audit, std::int64_t now_ms) override;
  Result<std::vector<ActionRecord>> run_actions(const std::string& run_id) override;
  Result<ApprovalRecord> insert_approval(const ApprovalRecord& approval, const AuditEvent& audit,
                                         std::int64_t now_ms) override;
  Result<std::optional<ApprovalRecord>> find_approval(const std::string& id) override;
  Result<std::vector<ApprovalRecord>> list_approvals(const std::string& state,
                                                     const std::string& case_id,
                                                     Page page) override;
  Result<ApprovalRecord> decide_approval(const std::string& id, bool approve, const std::string& by,
                                         const std::string& reason, std::int64_t now_ms) override;
  Result<std::vector<ApprovalRecord>> expire_approvals(std::int64_t now_ms) override;
  Result<std::vector<ApprovalRecord>> cancel_approvals(const std::string& run_id,
                                                       const std::string& by,
                                                       const std::string& reason,
                                                       std::int64_t now_ms) override;
  Result<std::vector<PlaybookRunRecord>> runs_of_alert(const std::string& alert_id,
                                                       const std::string& playbook) override;
  Result<std::unique_ptr<AutomationLock>> lock_automation() override;
  Result<int> count_automatic_actions(std::int64_t since_ms, const std::string& agent_id,
                                      const std::string& playbook) override;
  std::uint64_t agents_generation() const override { return agents_generation_.load(); }
  Status set_agent_labels(const std::string& id, const std::vector<std::string>& labels,
                          const AuditEvent& audit, std::int64_t now_ms) override;
  Result<std::vector<AuditEntry>> audit_entries_about(const std::string& subject, int limit,
                                                      std::int64_t after_seq = 0) override;

  // A connection of its own, for whole-table copies (store_copy.h).
  ConnectionPool::Lease connection() { return pool_.acquire(); }

 protected:
  // `db` is open; `connect` opens more like it, up to `connections` (SQLite: 1, no connect).
  SqlStore(std::unique_ptr<sql::Database> db, std::size_t connections,
           ConnectionPool::Connect connect);
  std::string controller_id();
  // Applies the steps of `history` above the stored version, up to `target_version`, each in
  // its own transaction; refuses a database a newer controller has migrated.
  Status migrate(std::span<const SchemaMigration> history, int target_version);

  ConnectionPool pool_;

 private:
  // The *_locked helpers run on the caller's connection `db`, inside its transaction where one
  // is named.
  // Runs `body` inside a write transaction on `db`, rolling back on error. With
  // `retry_conflicts`, a transaction the database failed for a conflict with a concurrent one
  // (a deadlock between two controllers or two pool connections) is run again, up to 3 times:
  // only for bodies that leave nothing outside the database changed, or reset it when they start.
  Status in_transaction(sql::Database& db, const std::function<Status()>& body,
                        bool retry_conflicts = false);
  // One api_tokens row, inside the caller's transaction where it matters.
  Status insert_token_locked(sql::Database& db, const ApiTokenRecord& token);
  Status append_audit_locked(sql::Database& db, const AuditEvent& event, std::int64_t now_ms);
  // On PostgreSQL: tells the other controllers (kQueuedActionsChannel) which agents have new
  // queued actions, at commit.
  Status notify_queued_locked(sql::Database& db, const std::vector<ActionRecord>& actions);
  // One report of record_action_outcome(s), inside the caller's transaction: the action's row
  // and its evidence rows. Returns the audit entry to append once every row of the transaction
  // is written, or nullopt when nothing changed.
  //
  // Multi-row transactions write their rows in id order and their audit entries last: on
  // PostgreSQL the audit append takes a lock held to commit, so a transaction holding it must
  // wait for no row, and two transactions must not take rows in opposite orders (either would
  // deadlock with a concurrent controller or pool connection).
  Result<std::optional<AuditEvent>> record_outcome_rows(sql::Database& db,
                                                        const ActionOutcomeReport& report,
                                                        std::int64_t now_ms);
  // The ids `sql` selects (one text column), its parameters being this controller's id then `ms`.
  Result<std::vector<std::string>> ids_for_this_controller(const std::string& sql, std::int64_t ms,
                                                           const char* what);
  // Leases on rows of `table` (playbook_runs, alerts) while `unfinished` (an SQL condition, never
  // caller text) holds: claim_run / claim_alert and the renewals.
  Result<bool> claim_lease(const char* table, const char* unfinished, const std::string& id,
                           std::int64_t now_ms, std::int64_t lease_ms);
  Status renew_leases(const char* table, const char* unfinished, std::int64_t now_ms,
                      std::int64_t lease_ms);
  // Actions whose `column` (case_id or playbook_run_id) is `value`, oldest first.
  Result<std::vector<ActionRecord>> actions_filed_under(const char* column,
                                                        const std::string& value);

  std::atomic<std::uint64_t> agents_generation_{0};
  std::mutex intake_mutex_;  // insert_alerts: one batch of this controller at a time
  std::mutex id_mutex_;
  std::string controller_id_;  // under id_mutex_
};

}  // namespace riposte::controller
