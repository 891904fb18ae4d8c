// libFuzzer target for what an agent's result becomes on the controller: whatever bytes an
// enrolled agent puts in an ActionResult's output (text that is not UTF-8, fields of the wrong
// shape, no message at all), the path result -> JSON -> validation, enrichment, the action's
// outcome and the case report's Markdown and HTML never crashes, throws or aborts (a result with
// a process named "\xff" once aborted every controller through JSON null). The same bytes are read
// as the result of every kind each question asks (process.list, host.logins, network.connections,
// file.hash), so one input reaches every reader.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/alerts/asset_map.h"
#include "controller/alerts/enrichment.h"
#include "controller/alerts/intake.h"
#include "controller/alerts/validation.h"
#include "controller/cases/report.h"
#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"
#include "protocol/action_outcome.h"

using namespace riposte;
using namespace riposte::controller;
using nlohmann::json;

namespace {

// Answers every query with `bytes` read as that kind's result, as LiveQueries::fill would.
std::vector<LiveAnswer> answer_all(const std::vector<LiveQuery>& queries,
                                   const std::string& bytes) {
  std::vector<LiveAnswer> answers;
  for (const auto& q : queries) {
    LiveAnswer a{q, "action-1", "succeeded", "", action_catalog::result_to_json(q.kind, bytes)};
    if (auto why = action_catalog::result_unreadable(a.result)) {
      a.state = "failed";
      a.reason = *why;
      a.result = json::object();
    }
    answers.push_back(std::move(a));
  }
  return answers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& kinds = action_kind::kAll;
  const std::string kind(kinds[data[0] % kinds.size()]);
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  // The action as the API and CLI show it (action_dispatcher.h action_json's keys), and its
  // outcome in words.
  json action{{"id", "action-1"},
              {"agent_id", "agent-1"},
              {"kind", kind},
              {"state", "succeeded"},
              {"reason", nullptr},
              {"requester", "controller"},
              {"approver", ""},
              {"signature", "00"},
              {"spec_sha256", "00"},
              {"evidence", json::array()},
              {"result", action_catalog::result_to_json(kind, bytes)}};
  action["outcome"] = action_outcome_text(action);
  (void)action.dump();

  AgentRecord agent;
  agent.id = "agent-1";
  agent.connected = true;
  agent.facts.hostname = "web-01";
  agent.facts.ip_addresses = {"192.0.2.10"};
  AlertRecord alert;
  alert.id = "alert-1";
  alert.case_id = "case-1";
  alert.host_name = "web-01";
  alert.timestamp_ms = 1'790'000'000'000;
  alert.observables = {{"ip", "198.51.100.7", ""}, {"process", "1", ""}};
  alert.status = "qualified";
  const std::vector<AgentRecord> agents{agent};

  const auto validation = plan_ip_validation(alert, agents, 30);
  auto decided =
      decide_ip_validation(validation, answer_all(validation.queries, bytes), agents, 30);
  (void)decided.record.dump();
  alert.validation = decided.record.dump();

  const auto plan = plan_enrichment(alert, agents);
  auto answers = answer_all(plan.queries, bytes);
  const auto second = plan_executable_hash(alert, answers);
  const auto more = answer_all(second, bytes);
  answers.insert(answers.end(), more.begin(), more.end());
  const AssetMap assets;
  const auto enrichment = build_enrichment(alert, plan, answers, assets, {});
  (void)enrichment.dump();

  // The case report around that action and alert, in build_case_report's shape (its own
  // case_json and alert_json, which the store's records go through).
  alert.enrichment = enrichment.dump();
  alert.raw = "{}";
  CaseRecord the_case;
  the_case.id = "case-1";
  the_case.title = "t";
  the_case.alert_ids = {alert.id};
  const json report{{"case", case_json(the_case)},
                    {"alerts", json::array({alert_json(alert, /*with_raw=*/true)})},
                    {"runs", json::array()},
                    {"approvals", json::array()},
                    {"actions", json::array({action})},
                    {"notes", json::array()},
                    {"timeline", json::array()},
                    {"evidence", json::array()}};
  (void)render_case_markdown(report);
  (void)render_case_html(report);
  return 0;
}
