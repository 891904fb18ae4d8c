#pragma once

// The controller's persistence, behind an interface: SQLite is the embedded default, and nothing
// outside the implementation knows SQL. Every method is safe to call from any thread.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/observables/observable.h"

namespace riposte::controller {

// Whether `error` is the database itself failing (an outage, a lost connection) rather than an
// answer such as "unknown enrollment token": the store reports every such failure as
// "database: ..." (controller/store/database.h).
inline bool is_database_failure(const Error& error) {
  return error.message.starts_with("database: ");
}

struct EnrollmentTokenRecord {
  std::string id;          // public handle, safe to log
  std::string token_hash;  // SHA-256 of the secret; the secret itself is never stored
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  int max_uses = 1;
  int uses = 0;
  std::string created_by;
  std::vector<std::string> labels;  // given to every agent enrolled with the token
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

// An address an agent held, and when: from the first report that listed it to the first that no
// longer did (0: it still holds it). Host resolution asks who held an alert's address at the
// alert's time, not only who holds it now (DHCP leases move, hosts are re-imaged).
struct AddressSpan {
  std::string ip;             // canonical form (observable.h)
  std::int64_t since_ms = 0;  // 0: held before the store kept address history (schema 15)
  std::int64_t until_ms = 0;  // 0: held now
};

struct AgentRecord {
  std::string id;
  AgentFactsRecord facts;
  // Filled by list_agents only: the addresses it held over the last 30 days, with when.
  std::vector<AddressSpan> address_history;
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
  // The controller holding its session (ControllerRecord::id) while connected; "" before schema
  // 12 or when never connected.
  std::string controller_id;
};

// A controller sharing the store with others (several controllers on one PostgreSQL database;
// with SQLite there is only ever one).
struct ControllerRecord {
  std::string id;             // DATA_DIR/controller-id, made once at first start
  std::string agent_gateway;  // host:port agents connect to
  std::string api;            // https://host:port
  std::int64_t started_at_ms = 0;
  std::int64_t last_seen_ms = 0;
  // Its key material: controllers sharing a store must share one CA and one action key, or
  // agents enrolled through one refuse the other (ControllerService checks at start).
  std::string ca_fingerprint;
  std::string action_key_fingerprint;
  // When it stopped gracefully (record_controller_stopped); 0 while it runs, or when it was
  // killed (its last_seen_ms then grows old).
  std::int64_t stopped_at_ms = 0;
};

// A web console session (controller/api/console_sessions.h), kept in the store so that every
// controller sharing it knows it: a console behind one address reaches any of them.
struct ConsoleSessionRecord {
  std::string secret_hash;  // SHA-256 hex of the cookie's secret; the secret itself is not kept
  std::string csrf_token;   // given to the console, repeated in X-CSRF-Token
  std::string token_hash;   // the operator token the session was opened with (SHA-256 hex)
  std::string operator_name;
  std::int64_t expires_at_ms = 0;
};

// Life of a response action on the controller. Terminal: succeeded, failed, refused, expired.
// `simulated`: signed and recorded by a playbook step in simulate mode, never sent to the agent.
enum class ActionState {
  queued,
  delivered,
  running,
  succeeded,
  failed,
  refused,
  expired,
  simulated
};
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

// An object an action's result named that the controller would not take
// (controller/dispatch/evidence_policy.h), and why.
struct RefusedEvidence {
  std::string sha256;  // as the agent sent it, at most 64 characters
  std::string name;    // at most 256 characters
  std::uint64_t size = 0;
  std::string reason;
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
  // Filled by find_action and by every list of actions (list_actions, case_actions,
  // run_actions); not by actions_to_deliver and last_network_action, which never show it.
  std::vector<EvidenceRecord> evidence;
  // The content object the spec names (a yara.scan's rule set), if any: the agent the action is
  // addressed to may fetch it while the action has not ended.
  std::string object_sha256;
  // Dispatched by a playbook action step in `auto` mode, without a person's approval: what the
  // rate limits on automation count (autonomy_policy.h).
  bool automatic = false;
};

// Bytes the controller keeps once however many actions name them, addressed by their SHA-256:
// today YARA rule sets (kind "yara-rules"), which a fan-out to thousands of agents would
// otherwise store and sign once per agent.
struct ContentObjectRecord {
  std::string sha256;  // lowercase hex of the bytes
  std::string kind;
  std::uint64_t size = 0;
  std::string name;  // as given when uploaded ("reversinglabs-all.yara"); informational
  std::string created_by;
  std::int64_t created_at_ms = 0;
};

// What an agent reported when an action ended.
struct ActionOutcome {
  ActionState state = ActionState::failed;  // succeeded, failed or refused
  std::string reason;
  std::string result;
  std::optional<std::int64_t> started_at_ms;
  std::int64_t finished_at_ms = 0;
  std::vector<EvidenceRecord> evidence;
  // Objects the result named that the controller refused (evidence_policy.h), with why: part of
  // the action's audit entry, never stored as evidence.
  std::vector<RefusedEvidence> evidence_refused;
};

// One agent's report that its action ended, for record_action_outcomes.
struct ActionOutcomeReport {
  std::string action_id;
  std::string agent_id;
  ActionOutcome outcome;
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
  std::string max_mode;  // an integration's ceiling (simulate, approve, auto); "" for a person
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
  // Integrations (role `ingest`): the highest autonomy mode their alerts may start; "" for people.
  std::string max_mode;
};

// An alert in Riposte's one model (see controller/alerts/normalizer.h), plus what the controller
// learned.
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
  // Who submitted it and the authority it carries (the source's ceiling on any run it starts):
  // an integration's own max mode, or the ceiling for alerts people submit. "" on alerts stored
  // before schema 9, which are treated as submitted by a person.
  std::string submitted_by;
  std::string submitter_role;
  std::string source_max_mode;
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
  std::string assignee;
  std::int64_t created_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  // Milestones, each set once: the first alert's validation decided, the case first marked
  // contained, first marked resolved or false positive. Time to validate/contain/resolve.
  std::optional<std::int64_t> validated_at_ms, contained_at_ms, resolved_at_ms;
  std::vector<std::string> alert_ids;  // filled by find_case
  int alert_count = 0;                 // filled by find_case and list_cases
};

// What a person or a playbook changes on a case; empty fields stay as they are.
struct CaseChange {
  std::string status, severity, assignee, note;
};

struct CaseNoteRecord {
  std::int64_t at_ms = 0;
  std::string author;
  std::string text;
};

// One run of a playbook over one alert (controller/playbooks/engine.h). The run row is the engine's
// whole memory: after a restart it continues from `step` and `attempt` alone.
struct PlaybookRunRecord {
  std::string id;
  std::string playbook;
  std::string playbook_version;
  std::string alert_id;
  std::string case_id;
  std::string started_by;  // the operator who started it, or "controller" for a trigger
  // Whom the run acts for: the operator who started it, or the alert's submitter for a run the
  // controller started. Never the one who approves its actions.
  std::string requested_by;
  bool simulate_only = false;  // every action step simulated (an analyst's run, a dry run)
  // running (the engine works on it), waiting (for actions, an approval or a timer),
  // succeeded, failed, escalated (a step failed with on_failure: escalate)
  std::string state = "running";
  std::string step;  // the current step's id; "" once finished
  int attempt = 1;
  std::string waiting_for;  // "", "actions", "approval", "timer"
  std::int64_t step_started_at_ms = 0;
  std::int64_t wake_at_ms = 0;  // when to look again (deadline, backoff, approval expiry)
  std::string context;          // JSON: inputs and step results expressions see
  std::string error;
  std::int64_t started_at_ms = 0;
  std::int64_t updated_at_ms = 0;
  std::optional<std::int64_t> finished_at_ms;
  // A cancel asked through a controller that does not hold the run's lease (request_run_cancel),
  // for the holder to carry out: JSON {"by", "reason", "at_ms"}; "" when none.
  std::string cancel_request;
};

// One step taken by a run: appended when the step ends (or is retried).
struct RunStepRecord {
  std::string run_id;
  int seq = 0;  // set by the store
  std::string step_id;
  std::string kind;
  int attempt = 1;
  std::string outcome;  // succeeded, failed, simulated, approved, denied, expired, timed_out, ...
  std::string mode;     // action steps: the effective mode
  std::string mode_reason;
  std::string detail;  // JSON: rendered inputs, results, action ids, the branch taken
  std::int64_t started_at_ms = 0;
  std::int64_t finished_at_ms = 0;
};

// A human gate: a playbook asks before an action (approve mode) or at an approve step.
struct ApprovalRecord {
  std::string id;
  std::string run_id;
  std::string step_id;
  int attempt = 1;
  std::string case_id;
  std::string requested_by;  // whom the run acts for (PlaybookRunRecord::requested_by)
  // Everyone who may not decide: the requester, the alert's submitter, the operator who started
  // the run. Four eyes means none of them.
  std::vector<std::string> not_deciders;
  std::string what;               // JSON: action kind, targets, parameters; or the gate's question
  std::string reason;             // why the playbook asks
  std::string impact;             // JSON: assets touched and their stakeholders
  std::string state = "pending";  // pending, approved, denied, expired, cancelled (run cancelled)
  std::string decided_by;
  std::string decision_reason;
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::optional<std::int64_t> decided_at_ms;
};

// What GET /metrics reports from the store (controller/api/metrics.h), read at scrape time.
// Counts of rows kept: "total" counters count what the store holds (nothing is deleted yet).
struct StoreMetrics {
  std::uint64_t agents_online = 0;
  std::uint64_t agents_offline = 0;  // enrolled, not revoked, not connected
  std::uint64_t agents_revoked = 0;
  // Not revoked, and whose latest succeeded network.quarantine / network.release was a quarantine.
  std::uint64_t agents_quarantined = 0;
  std::map<std::string, std::uint64_t> alerts_by_source;
  std::map<std::string, std::uint64_t> alerts_by_decision;  // confidence decision; "none" if unset
  std::map<std::pair<std::string, std::string>, std::uint64_t> actions_by_kind_state;
  // Ended actions with a start and an end, per kind: counts at or below each of
  // kActionDurationBounds (cumulative, as Prometheus buckets are), all of them, their sum.
  struct Durations {
    std::vector<std::uint64_t> at_or_below;
    std::uint64_t count = 0;
    double sum_s = 0;
  };
  std::map<std::string, Durations> action_durations;
  std::map<std::pair<std::string, std::string>, std::uint64_t> runs_by_playbook_state;
  std::uint64_t approvals_pending = 0;
  std::uint64_t evidence_bytes = 0;  // distinct stored objects
  std::uint64_t audit_entries = 0;
};
// Bucket bounds of riposte_action_duration_seconds, in seconds.
inline constexpr double kActionDurationBounds[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800};

// One page of a list: at most `limit` rows after skipping `offset` (the API's ?limit=&offset=).
// A bare number is the first page of that many rows.
struct Page {
  Page(int limit_, int offset_ = 0) : limit(limit_), offset(offset_) {}  // NOLINT: implicit
  int limit;
  int offset;
};

// Which agents find_agents returns; empty strings match any.
struct AgentFilter {
  std::string status;  // "online", "offline" (neither connected nor revoked) or "revoked"
  std::string label;   // has this label
  std::string host;    // part of the hostname
};

struct AgentPage {
  std::vector<AgentRecord> agents;  // ordered by hostname, then id; at most page.limit
  std::uint64_t total = 0;          // agents matching the filter, all pages
};

// Which cases list_cases returns; empty strings match any.
struct CaseFilter {
  std::string status;
  std::string severity;
  std::string host;       // the case's host name, exactly
  std::int64_t since_ms = 0;  // created at or after
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
  // One page of the agents matching `filter`, and how many match: the API's agent list, which
  // must not read the whole fleet for a page of a 50,000-agent one.
  virtual Result<AgentPage> find_agents(const AgentFilter& filter, Page page) = 0;
  // The newest succeeded network.quarantine or network.release of `agent_id` (what Riposte last
  // did to its network; the agent reports what the kernel enforces through network.status).
  virtual Result<std::optional<ActionRecord>> last_network_action(const std::string& agent_id) = 0;
  virtual Status record_agent_connected(const std::string& id, const AgentFactsRecord& facts,
                                        const std::string& remote_address, std::int64_t now_ms) = 0;
  virtual Status record_agent_facts(const std::string& id, const AgentFactsRecord& facts,
                                    std::int64_t now_ms) = 0;
  // Agents' heartbeats (agent id, unix ms) in one transaction: the gateway gathers them for
  // a few seconds rather than writing 1,700 a second for 50,000 agents. Never moves a time back.
  virtual Status record_agent_heartbeats(
      const std::vector<std::pair<std::string, std::int64_t>>& heartbeats) = 0;
  virtual Status record_agent_disconnected(const std::string& id, const std::string& reason,
                                           std::int64_t now_ms) = 0;
  // After a controller restart none of its sessions survives: clears the connected flag of the
  // agents this controller held (set_controller_id), and of those recorded before schema 12.
  virtual Status mark_all_agents_disconnected(const std::string& reason) = 0;
  // Which controller the session records below speak for: record_agent_connected names it, and
  // record_agent_disconnected changes only an agent it holds (the agent may have moved to another
  // controller before this one noticed its old session end). "" until set.
  virtual void set_controller_id(const std::string& id) = 0;
  // This controller is alive (called every few seconds; upserts `me` with last_seen_ms =
  // now_ms). Agents held by a controller last seen before `silent_before_ms` are marked
  // disconnected ("controller ID stopped"); returns how many.
  virtual Result<int> controller_heartbeat(const ControllerRecord& me, std::int64_t now_ms,
                                           std::int64_t silent_before_ms) = 0;
  virtual Result<std::vector<ControllerRecord>> list_controllers() = 0;
  // A controller stopping gracefully says so (its next heartbeat clears it).
  virtual Status record_controller_stopped(const std::string& id, std::int64_t now_ms) = 0;
  // Console sessions. Inserting drops the expired ones and, beyond `max_per_operator` of the same
  // operator, that operator's sessions that expire first: one operator signing in again and
  // again ends only their own sessions, never another's. find: nullopt for none or expired (an
  // expired one is dropped). delete: whether there was one.
  virtual Status insert_console_session(const ConsoleSessionRecord& session, std::int64_t now_ms,
                                        std::size_t max_per_operator) = 0;
  virtual Result<std::optional<ConsoleSessionRecord>> find_console_session(
      const std::string& secret_hash, std::int64_t now_ms) = 0;
  virtual Result<bool> delete_console_session(const std::string& secret_hash) = 0;
  // Another controller sharing the store queued actions for these agents: `callback` runs on a
  // thread of the store's own as the news arrives (PostgreSQL LISTEN/NOTIFY), so that the
  // controller holding an agent's session sends them at once. An empty list means news may have
  // been missed (the listening connection was re-opened): look at every agent held. Never called
  // where there is no other controller (SQLite). Set once, before the store is shared.
  using QueuedElsewhere = std::function<void(const std::vector<std::string>& agent_ids)>;
  virtual Status watch_queued_actions(QueuedElsewhere callback) = 0;
  // Errors if the agent is unknown; revoking twice keeps the first time.
  virtual Status revoke_agent(const std::string& id, std::int64_t now_ms) = 0;
  virtual Result<std::vector<std::string>> revoked_agent_ids() = 0;
  // Agents whose session another controller sharing the store recorded at or after `since_ms`
  // and holds now (the row names it): for an agent this controller also holds, that session is
  // the newer one (record_agent_connected is the last word on who holds an agent).
  virtual Result<std::vector<std::string>> agents_connected_elsewhere(std::int64_t since_ms) = 0;
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
  // Errors "no operator NAME", "operator NAME is already disabled", or "operator NAME is the last
  // enabled admin" (checked in the transaction that would disable it).
  virtual Status disable_operator(const std::string& name, const AuditEvent& audit,
                                  std::int64_t now_ms) = 0;

  // Response actions. Every change below appends its audit entry in the same transaction.
  // Inserts a fan-out batch at once; `audit[i]` describes `actions[i]`.
  virtual Status insert_actions(const std::vector<ActionRecord>& actions,
                                const std::vector<AuditEvent>& audit, std::int64_t now_ms) = 0;
  virtual Result<std::optional<ActionRecord>> find_action(const std::string& id) = 0;
  // Most recent first.
  virtual Result<std::vector<ActionRecord>> list_actions(Page page) = 0;
  // Queued or delivered-but-not-started actions of one agent, oldest first: what to (re)send when
  // it connects.
  virtual Result<std::vector<ActionRecord>> actions_to_deliver(const std::string& agent_id) = 0;
  // queued -> delivered, for many actions in one transaction (a fan-out's): the ids that were
  // still queued and are now delivered.
  virtual Result<std::vector<std::string>> mark_actions_delivered(
      const std::vector<std::string>& ids, std::int64_t now_ms) = 0;
  // queued/delivered -> running on the first report; later reports only update the progress.
  virtual Result<bool> record_action_progress(const std::string& id, const std::string& agent_id,
                                              std::uint64_t done, std::uint64_t total,
                                              const std::string& unit, std::int64_t now_ms) = 0;
  // Ends a non-terminal action of `agent_id`. False when unknown, of another agent, or already
  // ended (a result delivered twice is stored once).
  virtual Result<bool> record_action_outcome(const std::string& id, const std::string& agent_id,
                                             const ActionOutcome& outcome, std::int64_t now_ms) = 0;
  // record_action_outcome for many reports in one transaction (a group commit: results that
  // arrive while the previous group is written; a commit per result was half the controller's
  // time in a 10,000-agent fan-out). The i-th flag says whether the i-th report ended its
  // action. All of them are stored, or none (an error).
  virtual Result<std::vector<bool>> record_action_outcomes(
      const std::vector<ActionOutcomeReport>& reports, std::int64_t now_ms) = 0;
  // Queued actions past their expiry, and delivered ones past expiry plus `grace_ms` (the agent
  // never answered), become expired. Returns their ids.
  virtual Result<std::vector<std::string>> expire_actions(std::int64_t now_ms,
                                                          std::int64_t grace_ms) = 0;

  // Evidence: one row per (object, action that produced it).
  virtual Result<std::vector<EvidenceRecord>> find_evidence(const std::string& sha256) = 0;
  // The object's row for `action_id` (the action whose upload delivered it) is stored.
  virtual Status mark_evidence_stored(const std::string& sha256, const std::string& action_id,
                                      std::int64_t now_ms, const AuditEvent& audit) = 0;
  // Bytes of evidence the agent's results declared (accepted rows, stored or not) since `since_ms`:
  // what its quota counts (evidence_policy.h).
  virtual Result<std::uint64_t> evidence_bytes_declared(const std::string& agent_id,
                                                        std::int64_t since_ms) = 0;

  // Content objects. `put_object` stores `bytes` under meta.sha256 (the caller computed it)
  // unless an object with that hash is already stored; true when it was new, and only then is
  // `audit` appended, in the same transaction.
  virtual Result<bool> put_object(const ContentObjectRecord& meta, std::string_view bytes,
                                  const AuditEvent& audit, std::int64_t now_ms) = 0;
  virtual Result<std::optional<ContentObjectRecord>> find_object(const std::string& sha256) = 0;
  // Newest first; `kind` empty: every kind.
  virtual Result<std::vector<ContentObjectRecord>> list_objects(const std::string& kind,
                                                                int limit) = 0;
  // At most `max_bytes` of the object from `offset` (fewer at its end, none past it).
  virtual Result<std::string> read_object(const std::string& sha256, std::uint64_t offset,
                                          std::size_t max_bytes) = 0;
  // Whether an action addressed to `agent_id` that has not ended names the object: the only
  // objects an agent may fetch.
  virtual Result<bool> object_named_for_agent(const std::string& agent_id,
                                              const std::string& sha256) = 0;

  // Audit log (hash-chained, see audit_chain.h).
  virtual Status append_audit(const AuditEvent& event, std::int64_t now_ms) = 0;
  // Entries with seq > after_seq, ascending, at most `limit`.
  virtual Result<std::vector<AuditEntry>> audit_entries(std::int64_t after_seq, int limit) = 0;
  // Entries about one subject (an action, an evidence hash, an agent), ascending.
  // Entries with seq > after_seq, at most `limit` (paging: pass the last seq seen).
  virtual Result<std::vector<AuditEntry>> audit_entries_about(const std::string& subject, int limit,
                                                              std::int64_t after_seq = 0) = 0;

  // Alerts. Stores the batch in one transaction: an id already stored is a duplicate and left as
  // it was; every new alert joins the open case that holds an alert on the same host sharing an
  // observable within `case_window_ms` of its timestamp, or opens a new case. One audit entry.
  virtual Result<std::vector<AlertInsertOutcome>> insert_alerts(
      const std::vector<AlertRecord>& alerts, std::int64_t case_window_ms, const AuditEvent& audit,
      std::int64_t now_ms) = 0;
  virtual Result<std::optional<AlertRecord>> find_alert(const std::string& id) = 0;
  // Most recently received first; `status` empty for any.
  virtual Result<std::vector<AlertRecord>> list_alerts(const std::string& status, Page page) = 0;
  // Sets status and the named JSON column ("validation", "enrichment" or "confidence"). Storing
  // the enrichment, or a "not_relevant" validation, ends the alert's processing (see leases
  // below). A validation or enrichment is refused ("held by another controller") while another
  // controller holds the alert's unexpired lease: the one that took it over decides it.
  virtual Status update_alert(const std::string& id, const std::string& status,
                              const std::string& column, const std::string& json_text,
                              const AuditEvent& audit, std::int64_t now_ms) = 0;
  // Leases on alerts being processed (validation, then enrichment), for controllers sharing the
  // store: the controller that stores an alert holds it from intake (insert_alerts takes the
  // lease for set_controller_id's controller, kAlertLeaseMs long) until its processing ends,
  // renewing it meanwhile; after that the lease is only a record of who processed it. Alerts
  // stored before SQLite schema 14 / PostgreSQL 4 are being processed while "new" or
  // "validating".
  static constexpr std::int64_t kAlertLeaseMs = 30'000;
  // Ids of alerts whose processing has not ended and that no other controller holds (free, this
  // controller's, or whose lease expired), oldest first: what to take up at start.
  virtual Result<std::vector<std::string>> unfinished_alerts(std::int64_t now_ms) = 0;
  // Takes or extends the alert's lease to now + lease_ms when free, expired or already this
  // controller's; false otherwise (held elsewhere, or its processing has ended).
  virtual Result<bool> claim_alert(const std::string& id, std::int64_t now_ms,
                                   std::int64_t lease_ms) = 0;
  // Extends every lease this controller holds on an alert still being processed.
  virtual Status renew_alert_leases(std::int64_t now_ms, std::int64_t lease_ms) = 0;
  // Takes the lease (to now + lease_ms) of every alert still being processed whose lease another
  // controller let expire (it stopped), in one statement; returns their ids, oldest first.
  virtual Result<std::vector<std::string>> take_over_alerts(std::int64_t now_ms,
                                                            std::int64_t lease_ms) = 0;
  // Earlier alerts on `host_name`, and the newest of each case sharing one of `observables`;
  // newest first, not `except_id`, at most `limit`. Summary fields only (id, rule name,
  // severity, timestamp, host, status, case).
  virtual Result<std::vector<AlertRecord>> related_alerts(
      const std::string& host_name, const std::vector<Observable>& observables,
      const std::string& except_id, int limit) = 0;
  virtual Result<std::optional<CaseRecord>> find_case(const std::string& id) = 0;
  // Newest first.
  virtual Result<std::vector<CaseRecord>> list_cases(const CaseFilter& filter, Page page) = 0;
  // Applies `change` (a note is appended) and sets the milestones its status reaches. Errors
  // "no case ID" and on an unknown status. One audit entry about the case.
  virtual Status update_case(const std::string& id, const CaseChange& change,
                             const std::string& actor, const AuditEvent& audit,
                             std::int64_t now_ms) = 0;
  virtual Result<std::vector<CaseNoteRecord>> case_notes(const std::string& case_id) = 0;
  virtual Result<std::vector<ActionRecord>> case_actions(const std::string& case_id) = 0;

  // Playbook runs. Each change appends its audit entry in the same transaction.
  virtual Status insert_run(const PlaybookRunRecord& run, const AuditEvent& audit,
                            std::int64_t now_ms) = 0;
  // Stores the run's new position, and the step that just ended when given: one transaction,
  // so a crash leaves either the old position or the new one with its step record.
  virtual Status update_run(const PlaybookRunRecord& run, const RunStepRecord* ended_step,
                            const AuditEvent* audit, std::int64_t now_ms) = 0;
  virtual Result<std::optional<PlaybookRunRecord>> find_run(const std::string& id) = 0;
  // Newest first; `case_id` empty for any.
  virtual Result<std::vector<PlaybookRunRecord>> list_runs(const std::string& case_id,
                                                           Page page) = 0;
  // Runs not finished, oldest first: what to resume after a restart.
  virtual Result<std::vector<PlaybookRunRecord>> unfinished_runs() = 0;
  // Ids of waiting runs whose wake time (a wait, a backoff, a deadline) has come, and of runs with
  // a cancel request not yet carried out (not undoing) that this controller holds (or whose
  // lease expired).
  virtual Result<std::vector<std::string>> runs_due(std::int64_t now_ms) = 0;
  virtual Result<std::vector<RunStepRecord>> run_steps(const std::string& run_id) = 0;
  // Leases, for controllers sharing the store: a controller works on an unfinished run only while
  // it holds the run's lease (set_controller_id names the holder). claim_run takes or extends it
  // to now + lease_ms when free, expired or already this controller's; false otherwise (held
  // elsewhere, or the run has ended).
  virtual Result<bool> claim_run(const std::string& run_id, std::int64_t now_ms,
                                 std::int64_t lease_ms) = 0;
  // Extends every lease this controller holds on an unfinished run.
  virtual Status renew_run_leases(std::int64_t now_ms, std::int64_t lease_ms) = 0;
  // Unfinished runs whose lease another controller let expire (it stopped): to take over.
  virtual Result<std::vector<std::string>> runs_to_take_over(std::int64_t now_ms) = 0;
  // Makes a run waiting for actions or an approval due now, so the controller holding it looks at
  // it on its next tick: how an action's end seen by another controller reaches the run.
  virtual Status wake_run(const std::string& run_id, std::int64_t now_ms) = 0;
  // Records a cancel for the controller holding the run to carry out (the run's cancel_request),
  // with `audit`; false when the run has ended or a cancel is already asked for.
  virtual Result<bool> request_run_cancel(const std::string& run_id, const std::string& request,
                                          const AuditEvent& audit, std::int64_t now_ms) = 0;
  virtual Result<std::vector<ActionRecord>> run_actions(const std::string& run_id) = 0;

  // Approvals. An approval id for a (run, step, attempt) is inserted once: inserting it again
  // returns the stored one (a resumed run asks only once).
  virtual Result<ApprovalRecord> insert_approval(const ApprovalRecord& approval,
                                                 const AuditEvent& audit, std::int64_t now_ms) = 0;
  virtual Result<std::optional<ApprovalRecord>> find_approval(const std::string& id) = 0;
  // Newest first; `state` empty for any, `case_id` empty for any case.
  virtual Result<std::vector<ApprovalRecord>> list_approvals(const std::string& state,
                                                             const std::string& case_id,
                                                             Page page) = 0;
  // pending -> approved/denied by `by`, in one transaction with its audit entry. Refused (the
  // error says why, nothing changes) unless pending and unexpired at `now_ms`, and `by` is not
  // the requester.
  virtual Result<ApprovalRecord> decide_approval(const std::string& id, bool approve,
                                                 const std::string& by, const std::string& reason,
                                                 std::int64_t now_ms) = 0;
  // Pending approvals past their expiry become expired; returns them.
  virtual Result<std::vector<ApprovalRecord>> expire_approvals(std::int64_t now_ms) = 0;
  // A run is cancelled: its pending approvals become cancelled (decided by `by`, with `reason`),
  // each with an audit entry; returns them.
  virtual Result<std::vector<ApprovalRecord>> cancel_approvals(const std::string& run_id,
                                                               const std::string& by,
                                                               const std::string& reason,
                                                               std::int64_t now_ms) = 0;
  // Every run of `playbook` over `alert_id`, oldest first (a second run is refused while one
  // is unfinished).
  virtual Result<std::vector<PlaybookRunRecord>> runs_of_alert(const std::string& alert_id,
                                                               const std::string& playbook) = 0;
  // Automatic actions (ActionRecord::automatic) issued at or after `since_ms`, to `agent_id`
  // ("" any) from runs of `playbook` ("" any): what the rate limits on automation count.
  virtual Result<int> count_automatic_actions(std::int64_t since_ms, const std::string& agent_id,
                                              const std::string& playbook) = 0;
  // Held from counting automatic actions against the rate limits to recording the ones decided,
  // so that controllers sharing the store cannot each see room for the last one: on PostgreSQL a
  // session advisory lock (released with the object; a controller that dies releases it with its
  // connection), on SQLite, which one controller uses, nothing.
  class AutomationLock {
   public:
    virtual ~AutomationLock() = default;
  };
  virtual Result<std::unique_ptr<AutomationLock>> lock_automation() = 0;

  virtual Result<StoreMetrics> metrics() = 0;

  // Replaces an agent's labels; errors if the agent is unknown.
  virtual Status set_agent_labels(const std::string& id, const std::vector<std::string>& labels,
                                  const AuditEvent& audit, std::int64_t now_ms) = 0;
};

}  // namespace riposte::controller
