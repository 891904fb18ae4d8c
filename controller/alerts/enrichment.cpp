#include "controller/alerts/enrichment.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <set>

#include "common/utc_time.h"
#include "controller/alerts/host_resolution.h"
#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"

namespace riposte::controller {

using nlohmann::json;
namespace ak = action_kind;

namespace {

// Logins within this long of the alert count as "during" it.
constexpr std::int64_t kDuringWindowMs = 15 * 60 * 1000;

// How far the agent's idea of a process's start may be from the alert's and still be one
// process: the agent derives it from the boot time (whole seconds, moved by clock steps since
// boot) plus clock ticks, the alert's sensor read the same host's clock.
constexpr std::int64_t kStartToleranceMs = 3000;

const Observable* alert_process(const AlertRecord& alert) {
  for (const auto& o : alert.observables)
    if (o.type == observable_type::kProcess) return &o;
  return nullptr;
}

std::optional<std::string> process_pid(const AlertRecord& alert) {
  if (const auto* o = alert_process(alert)) return o->value;
  return std::nullopt;
}

// The listing's entry for the alert's pid: the process with that pid, or the one that pid is a
// thread of (the agent marks it with `thread_id` when asked with {pid}).
const json* find_process(const json& processes, const std::string& pid) {
  for (const auto& p : processes)
    if (std::to_string(p.value("pid", 0)) == pid) return &p;
  for (const auto& p : processes)
    if (p.value("thread_id", 0) != 0 && std::to_string(p.value("thread_id", 0)) == pid) return &p;
  return nullptr;
}

// Why the live process `entry` is not the alert's process, or nullopt when it may be: it started
// at another time than the alert's process.start says, or (without one) after the alert itself.
std::optional<std::string> not_the_alerts_process(const AlertRecord& alert, const json& entry) {
  const auto live = action_catalog::json_int64(entry, "start_time_unix_ms");
  const auto* o = alert_process(alert);
  // A start time that does not read as one proves nothing: judged as if the alert gave none.
  const auto start = o != nullptr ? parse_rfc3339_ms(o->start) : std::nullopt;
  if (start) {
    if (std::llabs(live - *start) > kStartToleranceMs)
      return fmt::format(
          "pid {} was reused: the alert's process started at {}, the live process with that pid "
          "at {} (tolerance {} s); it is not the alert's process",
          o->value, o->start, format_utc_ms(live), kStartToleranceMs / 1000);
    return std::nullopt;
  }
  if (alert.timestamp_ms > 0 && live > alert.timestamp_ms + kStartToleranceMs)
    return fmt::format(
        "pid {} was reused: the live process with that pid started at {}, after the alert ({}); "
        "it is not the alert's process",
        o ? o->value : "?", format_utc_ms(live), format_utc_ms(alert.timestamp_ms));
  return std::nullopt;
}

// {pid} for process.list when the pid fits its int32 field, else {} (nothing will match).
json pid_parameter(const std::string& pid) {
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(pid.data(), pid.data() + pid.size(), n);
  if (ec != std::errc() || end != pid.data() + pid.size() || n <= 0 || n > INT32_MAX)
    return json::object();
  return json{{"pid", n}};
}

// What proves the live process is the alert's: the pid, and the start time that matched.
json identity_of(const AlertRecord& alert, const json& entry) {
  const auto* o = alert_process(alert);
  json identity{
      {"pid", entry.value("pid", 0)},
      {"start_ticks", entry.value("start_ticks", json(0))},
      {"start_time", format_utc_ms(action_catalog::json_int64(entry, "start_time_unix_ms"))}};
  if (o != nullptr && parse_rfc3339_ms(o->start)) {
    identity["proven_by"] = fmt::format("pid {} and the alert's start time {}", o->value, o->start);
  } else {
    identity["proven_by"] = fmt::format(
        "pid {} alive since before the alert (the alert gives no start time)", o ? o->value : "?");
  }
  if (o != nullptr && !o->entity_id.empty()) identity["entity_id"] = o->entity_id;
  if (entry.value("thread_id", 0) != 0)
    identity["thread"] =
        fmt::format("the alert's pid {} is thread {} of process {}", entry.value("thread_id", 0),
                    entry.value("thread_id", 0), entry.value("pid", 0));
  return identity;
}

const LiveAnswer* find_answer(const std::vector<LiveAnswer>& answers, const std::string& agent_id,
                              std::string_view kind) {
  for (const auto& a : answers)
    if (a.query.agent_id == agent_id && a.query.kind == kind) return &a;
  return nullptr;
}

json process_summary(const json& entry) {
  return json{
      {"pid", entry.value("pid", 0)},
      {"ppid", entry.value("ppid", 0)},
      {"name", entry.value("name", "")},
      {"exe", entry.value("exe", "")},
      {"exe_deleted", entry.value("exe_deleted", false)},
      {"mount_namespace", entry.value("mount_namespace", "")},
      {"cmdline", entry.value("cmdline", "")},
      // An interpreter's script file as its command line names it ("" when none).
      {"script", entry.value("script", "")},
      {"script_proof", entry.value("script_proof", "")},
      {"user", entry.value("user", "")},
      // With the pid, what process actions need to be sure they act on this process and not
      // on a later one that reused its pid.
      {"start_ticks", entry.value("start_ticks", json(0))},
      {"start_time", format_utc_ms(action_catalog::json_int64(entry, "start_time_unix_ms"))}};
}

}  // namespace

EnrichmentPlan plan_enrichment(const AlertRecord& alert, const std::vector<AgentRecord>& agents) {
  EnrichmentPlan plan;
  plan.host = resolve_alert_host(alert, agents);
  std::set<std::string> impacted;
  if (plan.host.resolved()) impacted.insert(plan.host.agent->id);
  const auto is_alert_host = [&](const AgentRecord& agent) {
    return plan.host.resolved() && plan.host.agent->id == agent.id;
  };
  const auto validation =
      json::parse(alert.validation.empty() ? "{}" : alert.validation, nullptr, false);
  if (validation.is_object()) {
    for (const auto& h : validation.value("hosts", json::array()))
      impacted.insert(h.value("agent_id", ""));
  }
  if (plan.host.status != "no host" && !plan.host.resolved()) {
    plan.missing.push_back({{"what", "host"},
                            {"host", alert.host_name},
                            {"ip", alert.host_ips},
                            {"why", plan.host.why}});
  }
  const auto pid = process_pid(alert);
  for (const auto& agent : agents) {
    if (!impacted.contains(agent.id)) continue;
    plan.hosts.push_back(agent);
    if (!agent.connected) {
      for (const char* what : {"logins", "network", "process"}) {
        if (std::string_view(what) == "process" && !(pid && is_alert_host(agent))) continue;
        plan.missing.push_back({{"what", what},
                                {"agent_id", agent.id},
                                {"hostname", agent.facts.hostname},
                                {"why", "agent offline"}});
      }
      continue;
    }
    plan.queries.push_back({agent.id, std::string(ak::kHostLogins), json{{"recent_limit", 50}}});
    plan.queries.push_back({agent.id, std::string(ak::kNetworkConnections), json::object()});
    if (pid && is_alert_host(agent))
      // With the pid: a thread id comes back as the process it belongs to.
      plan.queries.push_back({agent.id, std::string(ak::kProcessList), pid_parameter(*pid)});
  }
  return plan;
}

std::vector<LiveQuery> plan_executable_hash(const AlertRecord& alert,
                                            const std::vector<LiveAnswer>& first_round) {
  const auto pid = process_pid(alert);
  if (!pid) return {};
  for (const auto& answer : first_round) {
    if (answer.query.kind != ak::kProcessList || !answer.answered()) continue;
    {
      const auto processes = answer.result.value("processes", json::array());
      const auto* found = find_process(processes, *pid);
      if (found == nullptr || not_the_alerts_process(alert, *found)) return {};
      const auto& p = *found;
      if (p.value("exe", "").empty()) return {};  // a kernel thread, or not readable
      // The running image through /proc/PID/exe, not the path: a deleted binary or one in a
      // container's mount namespace would otherwise be hashed as the host's file of that name.
      const json ref{{"pid", p.value("pid", 0)}, {"start_ticks", p.value("start_ticks", json(0))}};
      std::vector<LiveQuery> out{
          {answer.query.agent_id, std::string(ak::kFileHash), json{{"process", ref}}}};
      // An interpreter's evidence is its script: `bash /tmp/x.sh` is /tmp/x.sh, not bash.
      if (!p.value("script", "").empty())
        out.push_back({answer.query.agent_id, std::string(ak::kFileHash),
                       json{{"process", ref}, {"script", true}}});
      return out;
    }
  }
  return {};
}

json build_enrichment(const AlertRecord& alert, const EnrichmentPlan& plan,
                      const std::vector<LiveAnswer>& answers, const AssetMap& assets,
                      const std::vector<AlertRecord>& history) {
  json missing = plan.missing;
  json impacted = json::array();
  json people = json::array();
  json logins = {{"before", json::array()}, {"during", json::array()}, {"after", json::array()}};
  json network = json::array();
  json process = nullptr;
  std::set<std::string> people_seen;

  for (const auto& answer : answers) {
    if (!answer.answered()) {
      missing.push_back({{"what", answer.query.kind},
                         {"agent_id", answer.query.agent_id},
                         {"why", answer.reason.empty() ? answer.state : answer.reason},
                         {"action_id", answer.action_id}});
    }
  }
  for (const auto& host : plan.hosts) {
    json linked = json::array();
    for (const auto* e : assets.match(host.facts.hostname, host.id, host.facts.ip_addresses))
      linked.push_back(asset_json(*e));
    if (linked.empty()) {
      missing.push_back({{"what", "asset"},
                         {"agent_id", host.id},
                         {"hostname", host.facts.hostname},
                         {"why", "no asset map entry covers this host"}});
    }
    impacted.push_back({{"agent_id", host.id},
                        {"hostname", host.facts.hostname},
                        {"ip_addresses", host.facts.ip_addresses},
                        {"online", host.connected},
                        {"assets", linked}});

    if (const auto* a = find_answer(answers, host.id, ak::kHostLogins); a && a->answered()) {
      for (const auto& l : a->result.value("current", json::array())) {
        const auto user = l.value("user", "");
        if (!user.empty() && people_seen.insert(host.id + "/" + user).second)
          people.push_back(
              {{"user", user},
               {"hostname", host.facts.hostname},
               {"terminal", l.value("terminal", "")},
               {"from", l.value("host", "")},
               {"since", format_utc_ms(action_catalog::json_int64(l, "time_unix_ms"))}});
      }
      auto classify = [&](const json& l) {
        const auto at = action_catalog::json_int64(l, "time_unix_ms");
        json entry{{"user", l.value("user", "")},         {"hostname", host.facts.hostname},
                   {"terminal", l.value("terminal", "")}, {"from", l.value("host", "")},
                   {"time", format_utc_ms(at)},           {"active", l.value("active", false)}};
        const char* band = at > alert.timestamp_ms + kDuringWindowMs    ? "after"
                           : at >= alert.timestamp_ms - kDuringWindowMs ? "during"
                           : l.value("active", false)                   ? "during"
                                                                        : "before";
        logins[band].push_back(std::move(entry));
      };
      for (const auto& l : a->result.value("recent", json::array())) classify(l);
    }
    if (const auto* a = find_answer(answers, host.id, ak::kNetworkConnections);
        a && a->answered()) {
      json current = json::array();
      for (const auto& c : a->result.value("current", json::array())) {
        if (c.value("state", "") == "LISTEN") continue;
        current.push_back(c);
      }
      network.push_back(
          {{"agent_id", host.id}, {"hostname", host.facts.hostname}, {"connections", current}});
    }
    if (const auto* a = find_answer(answers, host.id, ak::kProcessList); a && a->answered()) {
      const auto pid = process_pid(alert).value_or("");
      const auto processes = a->result.value("processes", json::array());
      const auto* found = find_process(processes, pid);
      const auto reused = found ? not_the_alerts_process(alert, *found) : std::nullopt;
      if (reused) {
        // Nothing may act on it: no start_ticks to quote, and not "running".
        process = json{{"pid", pid},       {"hostname", host.facts.hostname},
                       {"running", false}, {"pid_reused", true},
                       {"why", *reused},   {"live_process", process_summary(*found)}};
        found = nullptr;
      }
      if (found != nullptr) {
        const auto& p = *found;
        process = process_summary(p);
        process["hostname"] = host.facts.hostname;
        process["running"] = true;
        process["identity"] = identity_of(alert, p);
        if (p.value("thread_id", 0) != 0) {
          process["thread_id"] = p.value("thread_id", 0);
          process["alert_pid"] = pid;
        }
        for (const auto& parent : processes) {
          if (parent.value("pid", -1) == p.value("ppid", -2))
            process["parent"] = process_summary(parent);
        }
        json children = json::array();
        for (const auto& child : processes)
          if (child.value("ppid", -1) == p.value("pid", -2))
            children.push_back(process_summary(child));
        process["children"] = children;
      }
      if (process.is_null()) {
        // Gone before we asked: its stop time is somewhere between the alert and now.
        process = json{{"pid", pid},
                       {"hostname", host.facts.hostname},
                       {"running", false},
                       {"stopped", "before the agent was asked"}};
      }
    }
    for (const auto& a : answers) {
      if (a.query.agent_id != host.id || a.query.kind != ak::kFileHash || !a.answered() ||
          !process.is_object())
        continue;
      const char* what = a.query.parameters.value("script", false) ? "script" : "exe";
      process[std::string(what) + "_sha256"] = a.result.value("sha256", "");
      process[std::string(what) + "_size"] = a.result.value("size", json(0));
    }
  }

  json earlier = json::array();
  std::set<std::string> cases;
  for (const auto& h : history) {
    earlier.push_back({{"id", h.id},
                       {"rule", h.rule_name},
                       {"severity", h.severity},
                       {"timestamp", format_utc_ms(h.timestamp_ms)},
                       {"host", h.host_name},
                       {"status", h.status},
                       {"case_id", h.case_id}});
    if (h.case_id != alert.case_id) cases.insert(h.case_id);
  }
  return json{{"host", plan.host.to_json()},
              {"impacted", impacted},
              {"people", people},
              {"process", process},
              {"logins", logins},
              {"network", network},
              {"history", {{"alerts", earlier}, {"other_cases", cases}}},
              {"missing", missing}};
}

}  // namespace riposte::controller
