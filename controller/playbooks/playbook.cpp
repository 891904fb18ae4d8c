#include "controller/playbooks/playbook.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "common/duration.h"
#include "common/yaml_config.h"
#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"

namespace riposte::controller {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 7> kStepKinds = {"action", "query", "decide", "approve",
                                                        "notify", "case",  "wait"};
constexpr std::array<std::string_view, 3> kModes = {"simulate", "approve", "auto"};
// Query steps gather facts for decisions; they must never change the host.
const std::set<std::string_view> kReadOnlyActions{
    action_kind::kProcessList,        action_kind::kProcessTree, action_kind::kNetworkStatus,
    action_kind::kNetworkConnections, action_kind::kFileHash,    action_kind::kYaraScan,
    action_kind::kHostLogins,         action_kind::kHostFacts};
const std::set<std::string, std::less<>> kSeverities{"low", "medium", "high", "critical"};
const std::set<std::string, std::less<>> kSources{"ecs", "wazuh", "generic"};
const std::set<std::string, std::less<>> kValidation{"qualified", "not_relevant", "undetermined",
                                                     "unvalidated"};
const std::set<std::string, std::less<>> kObservableTypes{
    "ip", "domain", "url", "md5", "sha1", "sha256", "file_path", "process", "user"};
const std::set<std::string, std::less<>> kCaseStatuses{"new", "in_progress", "contained",
                                                       "resolved", "false_positive"};

std::string joined(const auto& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

// Loading context: the file name for messages, and helpers that turn YAML nodes into values or
// into "FILE:LINE: ..." errors. Every helper throws LoadError; load_playbook catches it once.
struct LoadError {
  std::string message;
};

class Loader {
 public:
  explicit Loader(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& at, std::string_view message) const {
    throw LoadError{fmt::format("{}:{}: {}", file_.string(), at.Mark().line + 1, message)};
  }

  void check_keys(const YAML::Node& map, const std::set<std::string, std::less<>>& known,
                  std::string_view where) const {
    if (!map.IsMap()) fail(map, fmt::format("{} must be a mapping", where));
    for (const auto& entry : map) {
      const auto key = entry.first.as<std::string>();
      if (!known.contains(key)) {
        fail(entry.first,
             fmt::format("{}: unknown key '{}' (known: {})", where, key, joined(known)));
      }
    }
  }

  std::string text(const YAML::Node& node, std::string_view what) const {
    if (!node.IsScalar()) fail(node, fmt::format("{} must be a string", what));
    return node.as<std::string>();
  }

  std::vector<std::string> list(const YAML::Node& node, std::string_view what,
                                const std::set<std::string, std::less<>>* allowed) const {
    if (!node.IsSequence()) fail(node, fmt::format("{} must be a list", what));
    std::vector<std::string> out;
    for (const auto& item : node) {
      auto value = text(item, what);
      if (allowed && !allowed->contains(value)) {
        fail(item, fmt::format("{}: '{}' is not one of {}", what, value, joined(*allowed)));
      }
      out.push_back(std::move(value));
    }
    return out;
  }

  std::int64_t duration(const YAML::Node& node, std::string_view what) const {
    auto ms = parse_duration_ms(text(node, what));
    if (!ms) fail(node, fmt::format("{}: {}", what, ms.error().message));
    return *ms;
  }

  Expression expression(const YAML::Node& node, std::string_view what) const {
    auto parsed = Expression::parse(text(node, what));
    if (!parsed) fail(node, fmt::format("{}: {}", what, parsed.error().message));
    return std::move(*parsed);
  }

  Template template_text(const YAML::Node& node, std::string_view what) const {
    auto parsed = Template::parse(text(node, what));
    if (!parsed) fail(node, fmt::format("{}: {}", what, parsed.error().message));
    return std::move(*parsed);
  }

  // A YAML value as JSON whose strings are templates, each checked with its own line.
  JsonTemplate json_template(const YAML::Node& node, const std::string& what) const {
    auto parsed = JsonTemplate::parse(json_value(node, what));
    if (!parsed) fail(node, fmt::format("{}: {}", what, parsed.error().message));
    return std::move(*parsed);
  }

  // A YAML value as JSON, every string checked as a template on the way.
  json json_value(const YAML::Node& node, const std::string& what) const {
    if (node.IsMap()) {
      json out = json::object();
      for (const auto& entry : node) {
        const auto key = entry.first.as<std::string>();
        out[key] = json_value(entry.second, what + "." + key);
      }
      return out;
    }
    if (node.IsSequence()) {
      json out = json::array();
      for (const auto& item : node) out.push_back(json_value(item, what));
      return out;
    }
    if (node.IsNull()) return nullptr;
    const auto raw = node.as<std::string>();
    if (node.Tag() == "?") {  // plain scalars: YAML's own booleans and numbers
      if (raw == "true" || raw == "false") return raw == "true";
      try {
        std::size_t used = 0;
        const auto integer = std::stoll(raw, &used);
        if (used == raw.size()) return integer;
        const auto real = std::stod(raw, &used);
        if (used == raw.size()) return real;
      } catch (const std::exception&) {
      }
    }
    (void)template_text(node, what);
    return raw;
  }

  const fs::path& file() const { return file_; }

 private:
  fs::path file_;
};

PlaybookTrigger load_trigger(const Loader& in, const YAML::Node& node) {
  in.check_keys(node,
                {"sources", "rules", "severity_at_least", "observable_types", "validation",
                 "confidence", "when"},
                "trigger");
  PlaybookTrigger trigger;
  if (node["sources"]) trigger.sources = in.list(node["sources"], "trigger.sources", &kSources);
  if (node["rules"]) trigger.rules = in.list(node["rules"], "trigger.rules", nullptr);
  if (node["observable_types"]) {
    trigger.observable_types =
        in.list(node["observable_types"], "trigger.observable_types", &kObservableTypes);
  }
  if (node["validation"])
    trigger.validation = in.list(node["validation"], "trigger.validation", &kValidation);
  if (const auto severity = node["severity_at_least"]) {
    trigger.severity_at_least = in.text(severity, "trigger.severity_at_least");
    if (!kSeverities.contains(trigger.severity_at_least)) {
      in.fail(severity, fmt::format("trigger.severity_at_least: '{}' is not one of {}",
                                    trigger.severity_at_least, joined(kSeverities)));
    }
  }
  if (const auto band = node["confidence"]) {
    in.check_keys(band, {"min", "max"}, "trigger.confidence");
    try {
      if (band["min"]) trigger.confidence_min = band["min"].as<double>();
      if (band["max"]) trigger.confidence_max = band["max"].as<double>();
    } catch (const YAML::Exception&) {
      in.fail(band, "trigger.confidence: min and max must be numbers");
    }
    if (trigger.confidence_min < 0 || trigger.confidence_max > 1 ||
        trigger.confidence_min > trigger.confidence_max) {
      in.fail(band, "trigger.confidence: need 0 <= min <= max <= 1");
    }
  }
  if (node["when"]) trigger.when = in.expression(node["when"], "trigger.when");
  return trigger;
}

// A step's parameters against the action catalog, as `riposte action run` checks them: a typo
// (`history_adress`) or a wrong type fails the load, not the run after a person approved it.
void check_parameters_written(const Loader& in, const YAML::Node& node, const std::string& kind,
                              const JsonTemplate& parameters, const std::string& where) {
  if (!action_catalog::is_known_kind(kind)) return;  // reported as an unknown action
  const auto deferred = [](const nlohmann::json& value) {
    if (!value.is_string()) return action_catalog::Deferred::no;
    auto parsed = Template::parse(value.get<std::string>());
    if (!parsed || !parsed->has_expression()) return action_catalog::Deferred::no;
    return parsed->is_single_expression() ? action_catalog::Deferred::any_value
                                          : action_catalog::Deferred::text;
  };
  if (auto s = action_catalog::check_parameters_written(kind, parameters.source(), deferred); !s)
    in.fail(node, fmt::format("{}: {}", where, s.error().message));
}

// `rules_file: NAME` of a yara.scan step: the rule set's text, read now (relative to the
// playbook's directory) so a missing or unreadable file is an error at load, not mid-incident.
void load_rules_file(const Loader& in, const YAML::Node& node, PlaybookStep& step,
                     const std::string& where) {
  if (step.action != action_kind::kYaraScan)
    in.fail(node, fmt::format("{}: rules_file is for yara.scan steps", where));
  if (step.parameters.source().contains("rules") ||
      step.parameters.source().contains("rules_sha256"))
    in.fail(node, fmt::format("{}: give rules_file or parameters.rules, not both", where));
  step.rules_file = in.text(node, "rules_file");
  // Beside the playbook: a playbook file must not turn any file of the controller (a key, a
  // password file) into a rule set every viewer can read back.
  const fs::path relative(step.rules_file);
  if (relative.is_absolute() ||
      std::any_of(relative.begin(), relative.end(), [](const fs::path& p) { return p == ".."; }))
    in.fail(node, fmt::format("{}: rules_file must be a path inside the playbook's directory "
                              "(no leading / and no ..), got '{}'",
                              where, step.rules_file));
  const fs::path path = in.file().parent_path() / step.rules_file;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) in.fail(node, fmt::format("{}: rules_file {}: {}", where, path.string(), ec.message()));
  if (size > kMaxRulesFileBytes)
    in.fail(node, fmt::format("{}: rules_file {} is {} bytes, over the {} MiB limit", where,
                              path.string(), size, kMaxRulesFileBytes >> 20));
  std::ifstream file(path, std::ios::binary);
  step.rules_text.assign(std::istreambuf_iterator<char>(file), {});
  if (!file.good() && !file.eof())
    in.fail(node, fmt::format("{}: cannot read rules_file {}", where, path.string()));
  if (step.rules_text.empty() || step.rules_text.find('\0') != std::string::npos)
    in.fail(node, fmt::format("{}: rules_file {} is empty or not text (NUL byte)", where,
                              path.string()));
}

PlaybookStep load_step(const Loader& in, const YAML::Node& node, std::size_t index) {
  if (!node.IsMap()) in.fail(node, fmt::format("step {} must be a mapping", index + 1));
  PlaybookStep step;
  step.line = node.Mark().line + 1;
  if (!node["id"]) in.fail(node, fmt::format("step {} has no id", index + 1));
  step.id = in.text(node["id"], "id");
  const bool plain_id = !step.id.empty() && std::all_of(step.id.begin(), step.id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
  if (!plain_id || step.id == "end" || step.id == "stop" || step.id == "escalate") {
    in.fail(node["id"], fmt::format("step id '{}' must be letters, digits, - and _ (and not "
                                    "end, stop or escalate)",
                                    step.id));
  }
  const auto where = fmt::format("step '{}'", step.id);
  if (!node["kind"]) in.fail(node, where + " has no kind");
  const auto kind = in.text(node["kind"], "kind");
  const auto found = std::find(kStepKinds.begin(), kStepKinds.end(), kind);
  if (found == kStepKinds.end()) {
    in.fail(node["kind"],
            fmt::format("{}: unknown kind '{}' (known: {})", where, kind, joined(kStepKinds)));
  }
  step.kind = static_cast<StepKind>(found - kStepKinds.begin());

  std::set<std::string, std::less<>> known{"id",      "kind",       "timeout", "retries",
                                           "backoff", "on_failure", "next"};
  std::vector<std::string> required;
  switch (step.kind) {
    case StepKind::action:
      known.insert({"mode", "undo"});
      [[fallthrough]];
    case StepKind::query:
      known.insert({"action", "target", "parameters", "rules_file"});
      required = {"action", "target"};
      break;
    case StepKind::decide:
      known.insert({"when", "then", "else"});
      required = {"when", "then"};
      break;
    case StepKind::approve:
      known.insert({"reason", "expires"});
      required = {"reason"};
      break;
    case StepKind::notify:
      known.insert({"url", "body"});
      required = {"url"};
      break;
    case StepKind::case_update:
      known.insert({"status", "severity", "assignee", "note"});
      break;
    case StepKind::wait:
      known.insert({"duration"});
      required = {"duration"};
      break;
  }
  in.check_keys(node, known, where);
  for (const auto& key : required) {
    if (!node[key]) in.fail(node, fmt::format("{} ({}) needs '{}'", where, kind, key));
  }

  if (node["timeout"]) step.timeout_ms = in.duration(node["timeout"], where + " timeout");
  if (node["backoff"]) step.backoff_ms = in.duration(node["backoff"], where + " backoff");
  if (const auto retries = node["retries"]) {
    try {
      step.retries = retries.as<int>();
    } catch (const YAML::Exception&) {
      in.fail(retries, where + " retries must be a whole number");
    }
    if (step.retries < 0 || step.retries > 10) in.fail(retries, where + " retries must be 0..10");
  }
  if (node["on_failure"]) step.on_failure = in.text(node["on_failure"], "on_failure");
  if (node["next"]) step.next = in.text(node["next"], "next");

  switch (step.kind) {
    case StepKind::action:
    case StepKind::query: {
      step.action = in.text(node["action"], "action");
      if (!action_catalog::is_known_kind(step.action)) {
        std::vector<std::string_view> kinds(action_kind::kAll.begin(), action_kind::kAll.end());
        in.fail(node["action"], fmt::format("{}: unknown action '{}' (known: {})", where,
                                            step.action, joined(kinds)));
      }
      if (step.kind == StepKind::query && !kReadOnlyActions.contains(step.action)) {
        in.fail(node["action"], fmt::format("{}: {} changes the host; a query only reads (use "
                                            "kind: action)",
                                            where, step.action));
      }
      step.target = in.template_text(node["target"], where + " target");
      if (node["parameters"]) {
        if (!node["parameters"].IsMap())
          in.fail(node["parameters"], where + " parameters must be a mapping");
        step.parameters = in.json_template(node["parameters"], where + " parameters");
        check_parameters_written(in, node["parameters"], step.action, step.parameters,
                                 where + " parameters");
      }
      if (const auto rules_file = node["rules_file"]) {
        load_rules_file(in, rules_file, step, where);
      }
      // As `riposte action run` refuses a scan without rules.
      if (step.action == action_kind::kYaraScan && step.rules_file.empty() &&
          !step.parameters.source().contains("rules") &&
          !step.parameters.source().contains("rules_sha256"))
        in.fail(node, fmt::format("{}: a yara.scan needs rules: rules_file (a file beside the "
                                  "playbook) or parameters.rules",
                                  where));
      if (const auto mode = node["mode"]) {
        const auto text = in.text(mode, "mode");
        const auto parsed = parse_autonomy_mode(text);
        if (!parsed) {
          in.fail(mode, fmt::format("{}: mode '{}' is not one of {}", where, text, joined(kModes)));
        }
        step.mode = *parsed;
      }
      if (const auto undo = node["undo"]) {
        if (!undo.IsMap() || !undo["action"])
          in.fail(undo, where + " undo must be a mapping with an action (and parameters)");
        in.check_keys(undo, {"action", "parameters"}, where + " undo");
        step.undo_action = in.text(undo["action"], "undo action");
        if (!action_catalog::is_known_kind(step.undo_action))
          in.fail(undo["action"],
                  fmt::format("{}: undo: unknown action '{}'", where, step.undo_action));
        if (const auto parameters = undo["parameters"]) {
          if (!parameters.IsMap()) in.fail(parameters, where + " undo parameters must be a mapping");
          step.undo_parameters = in.json_template(parameters, where + " undo parameters");
          check_parameters_written(in, parameters, step.undo_action, step.undo_parameters,
                                   where + " undo parameters");
        }
      }
      break;
    }
    case StepKind::decide:
      step.condition = in.expression(node["when"], where + " when");
      step.then_step = in.text(node["then"], "then");
      if (node["else"]) step.else_step = in.text(node["else"], "else");
      break;
    case StepKind::approve:
      step.reason = in.template_text(node["reason"], where + " reason");
      if (node["expires"]) step.expires_ms = in.duration(node["expires"], where + " expires");
      break;
    case StepKind::notify:
      step.url = in.text(node["url"], "url");
      // Webhook URLs often hold a secret token: `webhook:NAME` names one kept in controller.yaml
      // (playbooks.webhooks) instead of in the playbook file. Plain http:// is refused.
      if (!step.url.starts_with("https://") &&
          !(step.url.starts_with("webhook:") && step.url.size() > 8)) {
        in.fail(node["url"],
                fmt::format("{}: url must be https://... or webhook:NAME (a webhook named in "
                            "controller.yaml)",
                            where));
      }
      if (node["body"]) step.body = in.json_template(node["body"], where + " body");
      break;
    case StepKind::case_update:
      for (auto [key, target] : {std::pair{"status", &step.status},
                                 {"severity", &step.severity},
                                 {"assignee", &step.assignee}}) {
        if (node[key]) *target = in.text(node[key], key);
      }
      if (node["note"]) step.note = in.template_text(node["note"], where + " note");
      if (!step.status.empty() && !kCaseStatuses.contains(step.status)) {
        in.fail(node["status"], fmt::format("{}: status '{}' is not one of {}", where, step.status,
                                            joined(kCaseStatuses)));
      }
      if (!step.severity.empty() && !kSeverities.contains(step.severity)) {
        in.fail(node["severity"], fmt::format("{}: severity '{}' is not one of {}", where,
                                              step.severity, joined(kSeverities)));
      }
      if (step.status.empty() && step.severity.empty() && step.assignee.empty() &&
          step.note.empty()) {
        in.fail(node, where + " (case) needs at least one of status, severity, assignee, note");
      }
      break;
    case StepKind::wait:
      step.wait_ms = in.duration(node["duration"], where + " duration");
      break;
  }
  return step;
}

// Where a step can go next: its successors in the run graph.
std::vector<std::string> successors(const Playbook& playbook, std::size_t index) {
  const auto& step = playbook.steps[index];
  const std::string following =
      index + 1 < playbook.steps.size() ? playbook.steps[index + 1].id : "end";
  std::vector<std::string> out;
  if (step.kind == StepKind::decide) {
    out.push_back(step.then_step);
    out.push_back(step.else_step.empty() ? following : step.else_step);
  } else {
    out.push_back(step.next.empty() ? following : step.next);
  }
  if (step.on_failure != "stop" && step.on_failure != "escalate") out.push_back(step.on_failure);
  std::erase(out, "end");
  return out;
}

void check_graph(const Loader& in, const Playbook& playbook) {
  std::map<std::string, std::size_t, std::less<>> index;
  for (std::size_t i = 0; i < playbook.steps.size(); ++i) {
    const auto& step = playbook.steps[i];
    if (!index.emplace(step.id, i).second) {
      throw LoadError{
          fmt::format("{}:{}: step id '{}' is used twice", in.file().string(), step.line, step.id)};
    }
  }
  const auto line_error = [&](const PlaybookStep& step, std::string message) {
    return LoadError{
        fmt::format("{}:{}: step '{}': {}", in.file().string(), step.line, step.id, message)};
  };
  for (const auto& step : playbook.steps) {
    for (auto [key, target] : {std::pair{"then", &step.then_step},
                               {"else", &step.else_step},
                               {"next", &step.next},
                               {"on_failure", &step.on_failure}}) {
      const auto& id = *target;
      if (id.empty() || index.contains(id)) continue;
      if (id == "end" && std::string_view(key) != "on_failure") continue;
      if ((id == "stop" || id == "escalate") && std::string_view(key) == "on_failure") continue;
      throw line_error(step, fmt::format("{} names no step '{}'", key, id));
    }
  }
  // Reachability from the first step.
  std::vector<bool> seen(playbook.steps.size(), false);
  std::vector<std::size_t> todo{0};
  while (!todo.empty()) {
    const auto at = todo.back();
    todo.pop_back();
    if (seen[at]) continue;
    seen[at] = true;
    for (const auto& next : successors(playbook, at)) todo.push_back(index.at(next));
  }
  for (std::size_t i = 0; i < playbook.steps.size(); ++i) {
    if (!seen[i]) throw line_error(playbook.steps[i], "no step leads here (unreachable)");
  }
  // Cycles: a run must end. Depth-first, colouring steps on the current path.
  std::vector<int> colour(playbook.steps.size(), 0);  // 0 new, 1 on path, 2 done
  std::vector<std::size_t> path;
  std::function<void(std::size_t)> visit = [&](std::size_t at) {
    colour[at] = 1;
    path.push_back(at);
    for (const auto& next : successors(playbook, at)) {
      const auto to = index.at(next);
      if (colour[to] == 1) {
        std::string loop;
        for (auto it = std::find(path.begin(), path.end(), to); it != path.end(); ++it)
          loop += playbook.steps[*it].id + " -> ";
        throw line_error(playbook.steps[to],
                         fmt::format("steps form a cycle: {}{}", loop, playbook.steps[to].id));
      }
      if (colour[to] == 0) visit(to);
    }
    path.pop_back();
    colour[at] = 2;
  };
  visit(0);
}

}  // namespace

std::string_view step_kind_name(StepKind kind) { return kStepKinds[static_cast<int>(kind)]; }
std::string_view autonomy_mode_name(AutonomyMode mode) { return kModes[static_cast<int>(mode)]; }
std::optional<AutonomyMode> parse_autonomy_mode(std::string_view text) {
  const auto found = std::find(kModes.begin(), kModes.end(), text);
  if (found == kModes.end()) return std::nullopt;
  return static_cast<AutonomyMode>(found - kModes.begin());
}

const PlaybookStep* Playbook::find_step(std::string_view id) const {
  for (const auto& step : steps) {
    if (step.id == id) return &step;
  }
  return nullptr;
}

Result<Playbook> load_playbook(const fs::path& file) {
  Loader in(file);
  try {
    const YAML::Node root = YAML::LoadFile(file.string());
    if (!root.IsMap()) return Error{fmt::format("{}:1: a playbook is a mapping", file.string())};
    if (auto s = refuse_duplicate_keys(root, file); !s) return s.error();
    in.check_keys(root, {"name", "version", "description", "owner", "trigger", "inputs", "steps"},
                  "playbook");
    for (const char* key : {"name", "trigger", "steps"}) {
      if (!root[key]) in.fail(root, fmt::format("playbook needs '{}'", key));
    }
    Playbook playbook;
    playbook.file = file;
    playbook.name = in.text(root["name"], "name");
    if (root["version"]) playbook.version = in.text(root["version"], "version");
    if (root["description"]) playbook.description = in.text(root["description"], "description");
    if (root["owner"]) playbook.owner = in.text(root["owner"], "owner");
    playbook.trigger = load_trigger(in, root["trigger"]);
    if (const auto inputs = root["inputs"]) {
      if (!inputs.IsMap()) in.fail(inputs, "inputs must be a mapping of name: template");
      for (const auto& entry : inputs) {
        const auto name = entry.first.as<std::string>();
        playbook.inputs.emplace_back(name, in.template_text(entry.second, "input " + name));
      }
    }
    const auto steps = root["steps"];
    if (!steps.IsSequence() || steps.size() == 0) in.fail(steps, "steps must be a non-empty list");
    for (std::size_t i = 0; i < steps.size(); ++i)
      playbook.steps.push_back(load_step(in, steps[i], i));
    check_graph(in, playbook);
    return playbook;
  } catch (const LoadError& e) {
    return Error{e.message};
  } catch (const YAML::Exception& e) {
    // yaml-cpp's own messages carry "line N, column M".
    return Error{fmt::format("{}: {}", file.string(), e.what())};
  }
}

namespace {

// `names`: each playbook name and the file that holds it, across every directory loaded so far.
void load_into(const fs::path& dir, PlaybookDirectory& out,
               std::map<std::string, fs::path>& names) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(entry.path());
  }
  if (ec) {
    out.errors.push_back(fmt::format("{}: {}", dir.string(), ec.message()));
    return;
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    auto playbook = load_playbook(file);
    if (!playbook) {
      out.errors.push_back(playbook.error().message);
      continue;
    }
    if (auto [it, fresh] = names.emplace(playbook->name, file); !fresh) {
      out.errors.push_back(fmt::format("{}:1: playbook name '{}' is also used by {}", file.string(),
                                       playbook->name, it->second.string()));
      continue;
    }
    out.playbooks.push_back(std::move(*playbook));
  }
}

}  // namespace

PlaybookDirectory load_playbook_directory(const fs::path& dir) {
  return load_playbook_directories({dir});
}

PlaybookDirectory load_playbook_directories(const std::vector<fs::path>& dirs) {
  PlaybookDirectory out;
  std::map<std::string, fs::path> names;
  std::set<fs::path> seen;
  for (const auto& dir : dirs) {
    std::error_code ec;
    const auto canonical = fs::weakly_canonical(dir, ec);
    if (!seen.insert(ec ? dir : canonical).second) continue;
    load_into(dir, out, names);
  }
  return out;
}

}  // namespace riposte::controller
