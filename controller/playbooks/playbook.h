#pragma once

// Playbooks as files: YAML in a playbooks directory, loaded and checked before anything runs.
// Every error names the file and line and what is wrong: an unknown key or step kind, a bad
// expression (with its column), a missing parameter, a step nothing leads to, a cycle. The same
// check runs offline in `riposte playbooks validate DIR`.
//
//   name: malicious-ip            version: 1     description: ...     owner: soc
//   trigger:                       # every condition given must hold
//     sources: [ecs, wazuh]        rules: ["C2 beacon"]     severity_at_least: medium
//     observable_types: [ip]       validation: [qualified]  confidence: {min: 0.5, max: 1}
//     when: "alert.host.name != ''"
//   inputs: {ip: "{{ observables[0].value }}"}
//   steps:                         # run in order unless next/then/else/on_failure say otherwise
//     - {id: check, kind: query, action: network.connections, target: all,
//        parameters: {history_address: "{{ inputs.ip }}"}}
//     - {id: gate, kind: decide, when: "validation.status == 'qualified'", then: kill, else: close}
//     - {id: kill, kind: action, action: process.kill, mode: approve, target: "{{ ... }}", ...}
//     - {id: close, kind: case, status: false_positive, note: "..."}
//
// A yara.scan step may name its rules as a file beside the playbook: `rules_file: rules.yar`.
// An action step may say how to undo it (compensation) when the run does not succeed after it:
//     - {id: suspend, kind: action, action: process.suspend, ...,
//        undo: {action: process.resume, parameters: {target: {pid: "{{ inputs.pid }}"}}}}
//
// Step kinds: action (an agent action, with `mode` simulate|approve|auto), query (an agent action
// whose result feeds decisions; never changes the host), decide, approve (a human gate), notify
// (HTTP webhook with a JSON body template), case (status, severity, assignee, note), wait.
// Common keys: id, kind, timeout, retries, backoff, on_failure (a step id, `stop` or `escalate`),
// next (a step id or `end`).

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/playbooks/expression.h"

namespace riposte::controller {

enum class StepKind { action, query, decide, approve, notify, case_update, wait };
enum class AutonomyMode { simulate, approve, automatic };

std::string_view step_kind_name(StepKind kind);
std::string_view autonomy_mode_name(AutonomyMode mode);
std::optional<AutonomyMode> parse_autonomy_mode(std::string_view text);

struct PlaybookStep {
  std::string id;
  StepKind kind = StepKind::action;
  int line = 0;
  // action, query
  std::string action;  // the action kind, e.g. process.kill
  Template target;     // `host` (the alert's host), `all`, an agent id or a hostname
  JsonTemplate parameters;
  AutonomyMode mode = AutonomyMode::simulate;  // action only; query never acts
  // yara.scan: `rules_file` (relative to the playbook's directory) and its text, read at load;
  // each run stores it as a rule set (once, by hash) and names it by rules_sha256.
  std::string rules_file;
  std::string rules_text;
  // action: how to undo this step if the run does not succeed after it (a later step fails or is
  // denied, the run is cancelled): `undo: {action: process.resume, parameters: {...}}`, sent to
  // the agents this step acted on, newest step first. "" for none.
  std::string undo_action;
  JsonTemplate undo_parameters;
  // decide
  std::optional<Expression> condition;
  std::string then_step, else_step;
  // approve
  Template reason;
  std::int64_t expires_ms = 4 * 3'600'000;
  // notify
  std::string url;  // https://... or webhook:NAME (controller.yaml playbooks.webhooks)
  JsonTemplate body;
  // case
  std::string status, severity, assignee;
  Template note;
  // wait
  std::int64_t wait_ms = 0;
  // every step
  std::int64_t timeout_ms = 300'000;
  int retries = 0;
  std::int64_t backoff_ms = 5'000;
  std::string on_failure = "escalate";  // step id, "stop" or "escalate"
  std::string next;                     // "" = the following step, "end", or a step id
};

struct PlaybookTrigger {
  std::vector<std::string> sources, rules, observable_types, validation;
  std::string severity_at_least;
  double confidence_min = 0.0, confidence_max = 1.0;
  std::optional<Expression> when;
};

struct Playbook {
  std::filesystem::path file;
  std::string name, version, description, owner;
  PlaybookTrigger trigger;
  std::vector<std::pair<std::string, Template>> inputs;
  std::vector<PlaybookStep> steps;
  const PlaybookStep* find_step(std::string_view id) const;
};

// The largest rules_file a step may name (the controller's default rule-set limit).
inline constexpr std::uint64_t kMaxRulesFileBytes = 64u * 1024 * 1024;

// One file. Errors read "FILE:LINE: what is wrong".
Result<Playbook> load_playbook(const std::filesystem::path& file);

struct PlaybookDirectory {
  std::vector<Playbook> playbooks;
  std::vector<std::string> errors;  // one per file that failed, and duplicate names
};
// Every *.yaml and *.yml in `dir`, in name order.
PlaybookDirectory load_playbook_directory(const std::filesystem::path& dir);
// Every playbook of several directories (the shipped ones and a team's own), in the order given,
// each directory once (by its canonical path); a name used in two directories is an error, as in
// one.
PlaybookDirectory load_playbook_directories(const std::vector<std::filesystem::path>& dirs);

}  // namespace riposte::controller
