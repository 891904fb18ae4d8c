#pragma once

// The controller's persistence, behind an interface: SQLite is the embedded default, and nothing
// outside the implementation knows SQL. Every method is safe to call from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "controller/observable.h"
#include "protocol/result.h"

namespace riposte::controller {

struct EnrollmentTokenRecord {
  std::string id;          // public handle, safe to log
  std::string token_hash;  // SHA-256 of the secret; the secret itself is never stored
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  int max_uses = 1;
  int uses = 0;
  std::string created_by;
};

struct AgentFactsRecord {
  std::string hostname;
  std::string os_name;
  std::string os_version;
  std::string kernel;
  std::string arch;
  std::string agent_version;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> mac_addresses;
  std::vector<std::string> capabilities;
  std::uint32_t protocol_version = 0;
};

struct AgentRecord {
  std::string id;
  AgentFactsRecord facts;
  std::string cert_serial;
  std::string cert_fingerprint;
  std::int64_t enrolled_at_ms = 0;
  std::optional<std::int64_t> revoked_at_ms;
  bool connected = false;
  std::optional<std::int64_t> connected_since_ms;
  std::optional<std::int64_t> last_heartbeat_ms;
  std::optional<std::int64_t> last_seen_ms;
  std::string remote_address;
  std::string last_disconnect_reason;
  std::vector<std::string> labels;  // set by operators; actions can target a label
};

// Life of a response action on the controller. Terminal: succeeded, failed, refused, expired.
enum class ActionState { queued, delivered, running, succeeded, failed, refused, expired };
std::string_view to_string(ActionState state);
std::optional<ActionState> action_state_from(std::string_view text);
bool is_terminal(ActionState state);

struct EvidenceRecord {
  std::string sha256;
  std::string action_id;
  std::string agent_id;
  std::string name;
  std::uint64_t size = 0;
  bool stored = false;  // all bytes received and the SHA-256 checked
  std::int64_t offered_at_ms = 0;
  std::optional<std::int64_t> stored_at_ms;
};

struct ActionRecord {
  std::string id;
  std::string agent_id;
  std::string kind;
  std::string batch_id;   // shared by the actions of one fan-out request
  std::string spec;       // the signed ActionSpec bytes
  std::string signature;  // Ed25519 over `spec`
  std::string requester;
  std::string approver;
  std::string case_id;
  std::string playbook_run_id;
  ActionState state = ActionState::queued;
  std::string reason;  // why it failed, was refused or expired
  std::int64_t issued_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::optional<std::int64_t> delivered_at_ms;
  std::optional<std::int64_t> started_at_ms;
  std::optional<std::int64_t> finished_at_ms;
  std::string result;  // serialized result message of `kind`
  std::uint64_t progress_done = 0;
  std::uint64_t progress_total = 0;
  std::string progress_unit;
  std::vector<EvidenceRecord> evidence;  // filled by find_action
};

// What an agent reported when an action ended.
struct ActionOutcome {
  ActionState state = ActionState::failed;  // succeeded, failed or refused
  std::string reason;
  std::string result;
  std::optional<std::int64_t> started_at_ms;
  std::int64_t finished_at_ms = 0;
  std::vector<EvidenceRecord> evidence;
};

// One audit log entry to append; the store adds sequence, time and the hash chain.
struct AuditEvent {
  std::string actor;    // operator name, "agent:<id>", or "controller"
  std::string event;    // e.g. "action.created", "evidence.downloaded"
  std::string subject;  // the action id, evidence hash, agent id, ...
  std::string details;  // JSON object text
};

struct AuditEntry {
  std::int64_t seq = 0;
  std::int64_t at_ms = 0;
  std::string actor;
  std::string event;
  std::string subject;
  std::string details;
  std::string prev_hash;
  std::string hash;
};

struct ApiTokenRecord {
  std::string id;
  std::string name;  // the operator the token belongs to
  std::string role;  // viewer, analyst, responder or admin: the operator's role when read back
  std::string token_hash;
  std::int64_t created_at_ms = 0;
  std::optional<std::int64_t> operator_disabled_at_ms;  // read back only
};

// A named person (or integration) with a role; approvals and audit entries name them.
struct OperatorRecord {
  std::string name;
  std::string role;
  std::int64_t created_at_ms = 0;
  std::string created_by;
  std::optional<std::int64_t> disabled_at_ms;
  std::string disabled_by;
  int tokens = 0;  // read back only
};

// An alert in Riposte's one model (see alert_normalizer.h), plus what the controller learned.
struct AlertRecord {
  std::string id;         // unique; the source's own id when it is a plain token
  std::string source;     // "ecs", "wazuh" or "generic"
  std::string source_id;  // the id as the source wrote it ("" when it gave none)
  std::string rule_id;
  std::string rule_name;
  std::string severity;  // low, medium, high, critical
  std::int64_t timestamp_ms = 0;
  std::string host_name;
  std::vector<std::string> host_ips;
  std::string user_name;
  std::vector<Observable> observables;
  std::vector<std::string> notes;  // what normalization dropped and why
  std::string raw;                 // the document as received (JSON text)

  // Set by the controller.
  std::string case_id;
  // new -> validating -> qualified | not_relevant | undetermined, or unvalidated when no
  // validation rule applies.
  std::string status = "new";
  std::string assets;      // JSON array: the asset entries the alert's host matched
  std::string confidence;  // JSON object: score, decision, which feeds confirmed what
  std::string validation;  // JSON object: rule, outcome, evidence
  std::string
      enrichment;  // JSON object: assets, people, process, logins, network, history, missing
  std::int64_t received_at_ms = 0;
  std::int64_t updated_at_ms = 0;
};

struct AlertInsertOutcome {
  std::string id;
  std::string case_id;
  bool duplicate = false;  // an alert with this id was already stored; nothing changed
};

struct CaseRecord {
  std::string id;
  std::string title;
  std::string status;  // new, in_progress, contained, resolved, false_positive
  std::string severity;
  std::string host_name;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::vector<std::string> alert_ids;  // filled by find_case
};

class Store {
 public:
  virtual ~Store() = default;

  virtual int schema_version() = 0;

  // Enrollment tokens.
  virtual Status insert_enrollment_token(const EnrollmentTokenRecord& token) = 0;
  // In one transaction: finds the token by hash, refuses it if unknown, expired or used up, and
  // otherwise counts one use. The error message says which.
  virtual Result<EnrollmentTokenRecord> consume_enrollment_token(const std::string& token_hash,
                                                                 std::int64_t now_ms) = 0;

  // Agents.
  virtual Status insert_agent(const AgentRecord& agent) = 0;
  virtual Result<std::optional<AgentRecord>> find_agent(const std::string& id) = 0;
  virtual Result<std::vector<AgentRecord>> list_agents() = 0;
  virtual Status record_agent_connected(const std::string& id, const AgentFactsRecord& facts,
                                        const std::string& remote_address, std::int64_t now_ms) = 0;
  virtual Status record_agent_facts(const std::string& id, const AgentFactsRecord& facts,
                                    std::int64_t now_ms) = 0;
  virtual Status record_agent_heartbeat(const std::string& id, std::int64_t now_ms) = 0;
  virtual Status record_agent_disconnected(const std::string& id, const std::string& reason,
                                           std::int64_t now_ms) = 0;
  // After a controller restart no session survives; clears every connected flag.
  virtual Status mark_all_agents_disconnected(const std::string& reason) = 0;
  // Errors if the agent is unknown; revoking twice keeps the first time.
  virtual Status revoke_agent(const std::string& id, std::int64_t now_ms) = 0;
  virtual Result<std::vector<std::string>> revoked_agent_ids() = 0;
  // Changes whenever any agent record may have changed (enrolled, connected, disconnected,
  // facts, labels, revoked), so a cached list_agents() knows when to re-read.
  virtual std::uint64_t agents_generation() const = 0;

  // Operator API tokens. Inserting a token for a name with no operator creates the operator with
  // the token's role (init's first admin).
  virtual Status insert_api_token(const ApiTokenRecord& token) = 0;
  virtual Result<std::optional<ApiTokenRecord>> find_api_token(const std::string& token_hash) = 0;
  virtual Result<int> count_api_tokens() = 0;
  // Operators. Creating one with an existing name errors with "operator NAME exists"; its first
  // token and the audit entry go in the same transaction.
  virtual Status insert_operator(const OperatorRecord& op, const ApiTokenRecord& token,
                                 const AuditEvent& audit, std::int64_t now_ms) = 0;
  virtual Result<std::vector<OperatorRecord>> list_operators() = 0;
  // Errors "no operator NAME" or "operator NAME is already disabled".
  virtual Status disable_operator(const std::string& name, const AuditEvent& audit,
                                  std::int64_t now_ms) = 0;

  // Response actions. Every change below appends its audit entry in the same transaction.
  // Inserts a fan-out batch at once; `audit[i]` describes `actions[i]`.
  virtual Status insert_actions(const std::vector<ActionRecord>& actions,
                                const std::vector<AuditEvent>& audit, std::int64_t now_ms) = 0;
  virtual Result<std::optional<ActionRecord>> find_action(const std::string& id) = 0;
  // Most recent first.
  virtual Result<std::vector<ActionRecord>> list_actions(int limit) = 0;
  // Queued or delivered-but-not-started actions of one agent, oldest first: what to (re)send when
  // it connects.
  virtual Result<std::vector<ActionRecord>> actions_to_deliver(const std::string& agent_id) = 0;
  // queued -> delivered. False when the action was no longer queued.
  virtual Result<bool> mark_action_delivered(const std::string& id, std::int64_t now_ms) = 0;
  // queued/delivered -> running on the first report; later reports only update the progress.
  virtual Result<bool> record_action_progress(const std::string& id, const std::string& agent_id,
                                              std::uint64_t done, std::uint64_t total,
                                              const std::string& unit, std::int64_t now_ms) = 0;
  // Ends a non-terminal action of `agent_id`. False when unknown, of another agent, or already
  // ended (a result delivered twice is stored once).
  virtual Result<bool> record_action_outcome(const std::string& id, const std::string& agent_id,
                                             const ActionOutcome& outcome, std::int64_t now_ms) = 0;
  // Queued actions past their expiry, and delivered ones past expiry plus `grace_ms` (the agent
  // never answered), become expired. Returns their ids.
  virtual Result<std::vector<std::string>> expire_actions(std::int64_t now_ms,
                                                          std::int64_t grace_ms) = 0;

  // Evidence: one row per (object, action that produced it).
  virtual Result<std::vector<EvidenceRecord>> find_evidence(const std::string& sha256) = 0;
  virtual Status mark_evidence_stored(const std::string& sha256, std::int64_t now_ms,
                                      const AuditEvent& audit) = 0;

  // Audit log (hash-chained, see audit_chain.h).
  virtual Status append_audit(const AuditEvent& event, std::int64_t now_ms) = 0;
  // Entries with seq > after_seq, ascending, at most `limit`.
  virtual Result<std::vector<AuditEntry>> audit_entries(std::int64_t after_seq, int limit) = 0;
  // Entries about one subject (an action, an evidence hash, an agent), ascending.
  virtual Result<std::vector<AuditEntry>> audit_entries_about(const std::string& subject,
                                                              int limit) = 0;

  // Alerts. Stores the batch in one transaction: an id already stored is a duplicate and left as
  // it was; every new alert joins the open case that holds an alert on the same host sharing an
  // observable within `case_window_ms` of its timestamp, or opens a new case. One audit entry.
  virtual Result<std::vector<AlertInsertOutcome>> insert_alerts(
      const std::vector<AlertRecord>& alerts, std::int64_t case_window_ms, const AuditEvent& audit,
      std::int64_t now_ms) = 0;
  virtual Result<std::optional<AlertRecord>> find_alert(const std::string& id) = 0;
  // Most recently received first; `status` empty for any.
  virtual Result<std::vector<AlertRecord>> list_alerts(const std::string& status, int limit) = 0;
  // Sets status and the named JSON column ("validation", "enrichment" or "confidence").
  virtual Status update_alert(const std::string& id, const std::string& status,
                              const std::string& column, const std::string& json_text,
                              const AuditEvent& audit, std::int64_t now_ms) = 0;
  // Earlier alerts on `host_name`, and the newest of each case sharing one of `observables`;
  // newest first, not `except_id`, at most `limit`. Summary fields only (id, rule name,
  // severity, timestamp, host, status, case).
  virtual Result<std::vector<AlertRecord>> related_alerts(
      const std::string& host_name, const std::vector<Observable>& observables,
      const std::string& except_id, int limit) = 0;
  virtual Result<std::optional<CaseRecord>> find_case(const std::string& id) = 0;

  // Replaces an agent's labels; errors if the agent is unknown.
  virtual Status set_agent_labels(const std::string& id, const std::vector<std::string>& labels,
                                  const AuditEvent& audit, std::int64_t now_ms) = 0;
};

}  // namespace riposte::controller
