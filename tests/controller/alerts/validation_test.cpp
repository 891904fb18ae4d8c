#include "controller/alerts/validation.h"

#include <gtest/gtest.h>

#include "controller/alerts/enrichment.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

AgentRecord agent(const std::string& id, const std::string& host, bool online,
                  std::vector<std::string> ips = {}) {
  AgentRecord a;
  a.id = id;
  a.facts.hostname = host;
  a.facts.ip_addresses = std::move(ips);
  a.connected = online;
  return a;
}

AlertRecord alert_with_ips(std::vector<std::string> ips) {
  AlertRecord a;
  a.id = "a1";
  a.host_name = "web-01";
  a.host_ips = {"10.0.0.5"};
  for (auto& ip : ips) a.observables.push_back({"ip", ip, ""});
  return a;
}

LiveAnswer answered(const LiveQuery& q, json result) {
  LiveAnswer a;
  a.query = q;
  a.action_id = "act-" + q.agent_id;
  a.state = "succeeded";
  a.result = std::move(result);
  return a;
}

TEST(IpValidation, OnlyOutsideAddressesAreChecked) {
  const std::vector<AgentRecord> agents = {agent("A", "web-01", true, {"10.0.0.5"}),
                                           agent("B", "db-01", true, {"10.0.0.6"})};
  // The alert's own host and our agents' addresses are not "malicious IPs".
  EXPECT_EQ(outside_ips(alert_with_ips({"10.0.0.5", "10.0.0.6", "203.0.113.9"}), agents),
            std::vector<std::string>{"203.0.113.9"});
  auto plan = plan_ip_validation(alert_with_ips({"10.0.0.6"}), agents, 30);
  EXPECT_TRUE(plan.ips.empty());
  EXPECT_TRUE(plan.queries.empty());
}

TEST(IpValidation, QualifiedOnlyWhenAnAgentSawTheAddress) {
  const std::vector<AgentRecord> agents = {agent("A", "web-01", true), agent("B", "db-01", true)};
  auto plan = plan_ip_validation(alert_with_ips({"203.0.113.9"}), agents, 7);
  ASSERT_EQ(plan.queries.size(), 2u);
  EXPECT_EQ(plan.queries[0].kind, "network.connections");
  EXPECT_EQ(plan.queries[0].parameters["history_address"], "203.0.113.9");
  EXPECT_EQ(plan.queries[0].parameters["history_days"], 7);

  json contact{{"history",
                {{{"remote_address", "203.0.113.9"},
                  {"remote_port", 443},
                  {"protocol", "tcp"},
                  {"pid", 812},
                  {"process", "curl"},
                  {"first_seen_unix_ms", "1790000000000"},
                  {"last_seen_unix_ms", "1790000060000"}}}}};
  auto qualified = decide_ip_validation(
      plan, {answered(plan.queries[0], contact), answered(plan.queries[1], json::object())}, agents,
      7);
  EXPECT_EQ(qualified.status, "qualified");
  ASSERT_EQ(qualified.record["hosts"].size(), 1u);
  EXPECT_EQ(qualified.record["hosts"][0]["hostname"], "web-01");
  EXPECT_EQ(qualified.record["hosts"][0]["connections"][0]["process"], "curl");
  EXPECT_EQ(qualified.record["hosts"][0]["connections"][0]["first_seen"],
            "2026-09-21T14:13:20.000Z");

  auto not_relevant = decide_ip_validation(
      plan, {answered(plan.queries[0], json::object()), answered(plan.queries[1], json::object())},
      agents, 7);
  EXPECT_EQ(not_relevant.status, "not_relevant");
  EXPECT_EQ(not_relevant.record["checked"].size(), 2u);
}

TEST(IpValidation, MissingAnswersMakeItUndeterminedNotIrrelevant) {
  const std::vector<AgentRecord> agents = {agent("A", "web-01", true), agent("B", "db-01", false)};
  auto plan = plan_ip_validation(alert_with_ips({"203.0.113.9"}), agents, 30);
  ASSERT_EQ(plan.queries.size(), 1u);  // B is offline: not asked, but listed
  ASSERT_EQ(plan.not_asked.size(), 1u);
  EXPECT_EQ(plan.not_asked[0]["why"], "agent offline");
  auto outcome =
      decide_ip_validation(plan, {answered(plan.queries[0], json::object())}, agents, 30);
  EXPECT_EQ(outcome.status, "undetermined");

  // An online agent that did not answer in time counts the same way.
  const std::vector<AgentRecord> online = {agent("A", "web-01", true), agent("B", "db-01", true)};
  auto plan2 = plan_ip_validation(alert_with_ips({"203.0.113.9"}), online, 30);
  LiveAnswer late;
  late.query = plan2.queries[1];
  late.state = "unanswered";
  late.reason = "no answer before the deadline";
  auto outcome2 =
      decide_ip_validation(plan2, {answered(plan2.queries[0], json::object()), late}, online, 30);
  EXPECT_EQ(outcome2.status, "undetermined");
  EXPECT_EQ(outcome2.record["checked"][1]["why"], "no answer before the deadline");
}

// A critical alert about a host with no agent: the agents that exist never talked to the IP,
// which says nothing about that host. Undetermined, never not_relevant (which would let the
// malicious-IP playbook close the case as a false positive).
TEST(IpValidation, AnAlertAboutAHostNoOnlineAgentCoversIsNeverNotRelevant) {
  auto alert = alert_with_ips({"203.0.113.9"});
  alert.host_name = "kiosk-7";  // no agent of that name
  alert.host_ips = {"10.9.9.9"};
  const std::vector<AgentRecord> agents = {agent("A", "web-01", true), agent("B", "db-01", true)};
  auto plan = plan_ip_validation(alert, agents, 7);
  ASSERT_EQ(plan.queries.size(), 2u) << "the other hosts are still asked";
  EXPECT_NE(plan.host_uncovered.find("kiosk-7"), std::string::npos);
  auto outcome = decide_ip_validation(
      plan, {answered(plan.queries[0], json::object()), answered(plan.queries[1], json::object())},
      agents, 7);
  EXPECT_EQ(outcome.status, "undetermined");
  EXPECT_NE(outcome.record["reason"].get<std::string>().find("kiosk-7 has no online agent"),
            std::string::npos)
      << outcome.record.dump();
  // Its agent exists but is offline: the same.
  const std::vector<AgentRecord> offline = {agent("A", "web-01", true),
                                            agent("K", "kiosk-7", false)};
  auto plan2 = plan_ip_validation(alert, offline, 7);
  auto outcome2 = decide_ip_validation(plan2, {answered(plan2.queries[0], json::object())},
                                       offline, 7);
  EXPECT_EQ(outcome2.status, "undetermined");
  // Another host that did talk to it still qualifies the alert.
  json contact{{"history", {{{"remote_address", "203.0.113.9"}, {"remote_port", 443}}}}};
  EXPECT_EQ(decide_ip_validation(plan, {answered(plan.queries[0], contact),
                                        answered(plan.queries[1], json::object())},
                                 agents, 7)
                .status,
            "qualified");
}

TEST(Enrichment, OfflineHostsAreRecordedAsMissing) {
  AlertRecord a = alert_with_ips({});
  a.observables.push_back({"process", "4242", ""});
  const std::vector<AgentRecord> agents = {agent("A", "web-01", false)};
  auto plan = plan_enrichment(a, agents);
  EXPECT_TRUE(plan.queries.empty());
  ASSERT_EQ(plan.missing.size(), 3u);  // logins, network, process
  EXPECT_EQ(plan.missing[0]["why"], "agent offline");
  const auto built = build_enrichment(a, plan, {}, AssetMap{}, {});
  EXPECT_EQ(built["impacted"][0]["hostname"], "web-01");
  EXPECT_GE(built["missing"].size(), 3u);
}

TEST(Enrichment, LoginsProcessAndHistoryFromAnswers) {
  AlertRecord a = alert_with_ips({});
  a.timestamp_ms = 1'790'000'000'000;
  a.case_id = "c1";
  a.observables.push_back({"process", "4242", ""});
  const std::vector<AgentRecord> agents = {agent("A", "web-01", true)};
  auto plan = plan_enrichment(a, agents);
  ASSERT_EQ(plan.queries.size(), 3u);  // logins, connections, process list
  json logins{{"current",
               {{{"user", "alice"},
                 {"terminal", "pts/0"},
                 {"time_unix_ms", "1789999000000"},
                 {"active", true}}}},
              {"recent",
               {{{"user", "bob"}, {"time_unix_ms", "1789990000000"}, {"active", false}},
                {{"user", "alice"}, {"time_unix_ms", "1789999900000"}, {"active", true}},
                {{"user", "carol"}, {"time_unix_ms", "1790005000000"}, {"active", false}}}}};
  json processes{{"processes",
                  {{{"pid", 4242},
                    {"ppid", 100},
                    {"name", "nc"},
                    {"exe", "/usr/bin/nc.openbsd"},
                    {"start_ticks", "777"}},
                   {{"pid", 100},
                    {"ppid", 1},
                    {"name", "bash"},
                    {"exe", "/usr/bin/bash"},
                    {"start_ticks", "55"},
                    {"script", "/home/alice/run.sh"}},
                   {{"pid", 4300}, {"ppid", 4242}, {"name", "sh"}, {"exe", "/usr/bin/dash"}}}}};
  std::vector<LiveAnswer> answers = {answered(plan.queries[0], logins),
                                     answered(plan.queries[1], json{{"current", json::array()}}),
                                     answered(plan.queries[2], processes)};
  auto second = plan_executable_hash(a, answers);
  ASSERT_EQ(second.size(), 1u);
  // The running image by pid and start time, not the path: right for a deleted binary or one in
  // a container's mount namespace.
  EXPECT_EQ(second[0].parameters, (json{{"process", {{"pid", 4242}, {"start_ticks", "777"}}}}));
  answers.push_back(answered(second[0], json{{"sha256", "ab12"}, {"size", "100"}}));
  AlertRecord earlier;
  earlier.id = "old";
  earlier.case_id = "c0";
  const auto e = build_enrichment(a, plan, answers, AssetMap{}, {earlier});
  EXPECT_EQ(e["people"][0]["user"], "alice");
  EXPECT_EQ(e["logins"]["before"][0]["user"], "bob");
  EXPECT_EQ(e["logins"]["during"][0]["user"], "alice");
  EXPECT_EQ(e["logins"]["after"][0]["user"], "carol");
  EXPECT_EQ(e["process"]["name"], "nc");
  EXPECT_EQ(e["process"]["parent"]["name"], "bash");
  EXPECT_EQ(e["process"]["children"][0]["name"], "sh");
  EXPECT_EQ(e["process"]["exe_sha256"], "ab12");
  EXPECT_EQ(e["history"]["other_cases"], json{"c0"});
  EXPECT_EQ(e["process"]["parent"]["script"], "/home/alice/run.sh");
}

// An interpreter's process: the second round hashes its script as well as the interpreter.
TEST(Enrichment, AnInterpreterProcessHasItsScriptHashed) {
  AlertRecord a = alert_with_ips({});
  a.observables.push_back({"process", "4242", ""});
  const auto plan = plan_enrichment(a, {agent("A", "web-01", true)});
  ASSERT_EQ(plan.queries.size(), 3u);
  const json processes{{"processes",
                        {{{"pid", 4242},
                          {"ppid", 1},
                          {"name", "python3"},
                          {"exe", "/usr/bin/python3.11"},
                          {"start_ticks", "9"},
                          {"script", "/srv/app/job.py"}}}}};
  std::vector<LiveAnswer> answers = {answered(plan.queries[2], processes)};
  auto second = plan_executable_hash(a, answers);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].parameters,
            (json{{"process", {{"pid", 4242}, {"start_ticks", "9"}}}, {"script", true}}));
  answers.push_back(answered(second[0], json{{"sha256", "e1"}, {"size", "10"}}));
  answers.push_back(answered(second[1], json{{"sha256", "5c"}, {"size", "20"}}));
  const auto e = build_enrichment(a, plan, answers, AssetMap{}, {});
  EXPECT_EQ(e["process"]["script"], "/srv/app/job.py");
  EXPECT_EQ(e["process"]["exe_sha256"], "e1");
  EXPECT_EQ(e["process"]["script_sha256"], "5c");
}

}  // namespace
}  // namespace riposte::controller
