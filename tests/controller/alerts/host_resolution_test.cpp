// Which agent an alert is about: only evidence that singles one agent out counts (DESIGN.md,
// "Act only on a proven target"), and the alert's process is the live one only when its start
// time agrees.

#include "controller/alerts/host_resolution.h"

#include <gtest/gtest.h>

#include "controller/alerts/enrichment.h"
#include "controller/alerts/validation.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

AgentRecord agent(const std::string& id, const std::string& host, std::vector<std::string> ips) {
  AgentRecord a;
  a.id = id;
  a.facts.hostname = host;
  a.facts.ip_addresses = std::move(ips);
  a.connected = true;
  return a;
}

// Three hosts with Docker's default bridge (172.17.0.1 on each) and an address of their own.
std::vector<AgentRecord> three_hosts_sharing_a_bridge() {
  return {agent("A", "web-01", {"10.0.0.11", "172.17.0.1"}),
          agent("B", "web-02.corp.example", {"10.0.0.12", "172.17.0.1"}),
          agent("C", "db-01", {"10.0.0.13", "172.17.0.1", "fe80::1"})};
}

TEST(HostResolution, ASharedBridgeAddressNeverResolvesAHost) {
  const auto agents = three_hosts_sharing_a_bridge();
  const auto r = resolve_alert_host("", {"172.17.0.1"}, agents);
  EXPECT_EQ(r.status, "unresolved");
  EXPECT_FALSE(r.resolved());
  ASSERT_EQ(r.ignored.size(), 1u);
  EXPECT_NE(r.ignored[0]["why"].get<std::string>().find("held by 3 agents"), std::string::npos)
      << r.ignored.dump();
}

// An address is one address however it is written: an agent's IPv4-mapped or upper-case IPv6
// form is the alert's canonical one, for singling a host out and for seeing it shared.
TEST(HostResolution, AnAddressIsComparedInItsCanonicalForm) {
  const std::vector<AgentRecord> agents = {agent("A", "web-01", {"::ffff:10.0.0.11"}),
                                           agent("B", "web-02", {"2001:DB8:0:0::12"}),
                                           agent("C", "web-03", {"10.0.0.11"})};
  const auto shared = resolve_alert_host("", {"10.0.0.11"}, agents);
  EXPECT_EQ(shared.status, "unresolved") << "A and C hold it, however A writes it";
  const auto v6 = resolve_alert_host("", {"2001:db8::12"}, agents);
  ASSERT_TRUE(v6.resolved()) << v6.to_json().dump();
  EXPECT_EQ(v6.agent->id, "B");
}

// An address is judged at the alert's time: DHCP gave 10.0.0.50 to web-01 until 12:00 and to
// web-02 since 12:03. An alert of 11:00 about it is web-01's, whoever holds it now; one of 13:00
// is web-02's; one at the hand-over, within the clock tolerance of both, is neither's alone.
TEST(HostResolution, AnAddressResolvesToTheAgentThatHeldItAtTheAlertsTime) {
  const std::int64_t noon = 1'795'000'000'000;
  const std::int64_t minute = 60'000;
  auto was = agent("A", "web-01", {"10.0.0.11"});
  was.address_history = {{"10.0.0.11", 0, 0}, {"10.0.0.50", noon - 600 * minute, noon}};
  auto now = agent("B", "web-02", {"10.0.0.12", "10.0.0.50"});
  now.address_history = {{"10.0.0.12", 0, 0}, {"10.0.0.50", noon + 3 * minute, 0}};
  const std::vector<AgentRecord> agents = {was, now};

  const auto before = resolve_alert_host("", {"10.0.0.50"}, agents, noon - 60 * minute);
  ASSERT_TRUE(before.resolved()) << before.to_json().dump();
  EXPECT_EQ(before.agent->id, "A") << "web-02 holds it now, but took it after the alert";
  EXPECT_NE(before.to_json().dump().find("web-02 holds it now but took it after"),
            std::string::npos)
      << before.to_json().dump();

  const auto after = resolve_alert_host("", {"10.0.0.50"}, agents, noon + 60 * minute);
  ASSERT_TRUE(after.resolved()) << after.to_json().dump();
  EXPECT_EQ(after.agent->id, "B");

  const auto handover = resolve_alert_host("", {"10.0.0.50"}, agents, noon + 1 * minute);
  EXPECT_FALSE(handover.resolved()) << handover.to_json().dump();
  EXPECT_EQ(handover.status, "unresolved");

  // Without a time, or for an agent without history, what agents report now decides.
  EXPECT_EQ(resolve_alert_host("", {"10.0.0.50"}, agents).agent->id, "B");
}

TEST(HostResolution, AUniqueAddressOrTheHostnameResolvesOneAgentAndSaysBy) {
  const auto agents = three_hosts_sharing_a_bridge();
  const auto by_address = resolve_alert_host("", {"172.17.0.1", "10.0.0.12"}, agents);
  ASSERT_TRUE(by_address.resolved()) << by_address.why;
  EXPECT_EQ(by_address.agent->id, "B");
  ASSERT_EQ(by_address.matched.size(), 1u);
  EXPECT_EQ(by_address.matched[0].by, "unique address");
  EXPECT_EQ(by_address.ignored.size(), 1u) << "the bridge address is set aside, with why";

  // The short name matches an agent reporting its FQDN, and the other way round.
  const auto by_name = resolve_alert_host("WEB-02", {}, agents);
  ASSERT_TRUE(by_name.resolved()) << by_name.why;
  EXPECT_EQ(by_name.agent->id, "B");
  EXPECT_EQ(by_name.matched[0].by, "hostname");
  EXPECT_EQ(resolve_alert_host("db-01.corp.example", {"172.17.0.1"}, agents).agent->id, "C");
  // Name and address agreeing: one agent, both recorded.
  const auto both = resolve_alert_host("web-01", {"10.0.0.11"}, agents);
  ASSERT_TRUE(both.resolved());
  EXPECT_EQ(both.matched.size(), 2u);
  EXPECT_NE(both.to_json()["why"].get<std::string>().find("hostname web-01"), std::string::npos);
}

TEST(HostResolution, EvidenceNamingTwoAgentsIsAmbiguousAndNamesBoth) {
  const auto agents = three_hosts_sharing_a_bridge();
  const auto r = resolve_alert_host("web-01", {"10.0.0.13"}, agents);
  EXPECT_EQ(r.status, "ambiguous");
  EXPECT_FALSE(r.resolved());
  EXPECT_NE(r.why.find("web-01 (A)"), std::string::npos) << r.why;
  EXPECT_NE(r.why.find("db-01 (C)"), std::string::npos) << r.why;
}

TEST(HostResolution, LoopbackLinkLocalAndTwoAgentsWithOneNameProveNothing) {
  auto agents = three_hosts_sharing_a_bridge();
  for (const auto* ip : {"127.0.0.1", "::1", "fe80::1", "169.254.1.1", "0.0.0.0"}) {
    const auto r = resolve_alert_host("", {ip}, agents);
    EXPECT_EQ(r.status, "unresolved") << ip;
    ASSERT_EQ(r.ignored.size(), 1u) << ip;
  }
  agents.push_back(agent("D", "web-01", {"10.0.0.14"}));  // a rebuilt host, enrolled again
  const auto twice = resolve_alert_host("web-01", {}, agents);
  EXPECT_EQ(twice.status, "unresolved");
  EXPECT_NE(twice.ignored.dump().find("hostname held by 2 agents"), std::string::npos);
  // Revoked agents are not there at all.
  agents.back().revoked_at_ms = 1;
  EXPECT_EQ(resolve_alert_host("web-01", {}, agents).agent->id, "A");
  EXPECT_EQ(resolve_alert_host("", {}, agents).status, "no host");
}

TEST(HostResolution, ANamedTargetMustNameExactlyOneAgent) {
  auto agents = three_hosts_sharing_a_bridge();
  EXPECT_EQ(resolve_named_host("C", agents).agent->id, "C");
  EXPECT_EQ(resolve_named_host("C", agents).matched[0].by, "agent id");
  agents.push_back(agent("D", "db-01", {"10.0.0.14"}));
  const auto r = resolve_named_host("db-01", agents);
  EXPECT_EQ(r.status, "ambiguous") << "never fans out to both";
  EXPECT_EQ(resolve_named_host("nobody", agents).status, "unresolved");
}

AlertRecord alert_on(const std::string& host, std::vector<std::string> host_ips,
                     std::vector<std::string> ips) {
  AlertRecord a;
  a.id = "a1";
  a.host_name = host;
  a.host_ips = std::move(host_ips);
  for (auto& ip : ips) a.observables.push_back({"ip", ip, ""});
  return a;
}

TEST(IpValidation, LoopbackLinkLocalAndMulticastAreNotOutsideAddresses) {
  const auto agents = three_hosts_sharing_a_bridge();
  const auto a =
      alert_on("web-01", {},
               {"127.0.0.1", "::1", "169.254.169.254", "fe80::9", "224.0.0.251", "203.0.113.9"});
  EXPECT_EQ(outside_ips(a, agents), std::vector<std::string>{"203.0.113.9"});
  EXPECT_TRUE(outside_ips(alert_on("web-01", {}, {"127.0.0.1"}), agents).empty())
      << "an alert naming only loopback has no outside address to validate";
}

// Validation asks every agent, but an alert whose host is only a shared address is never
// "not relevant": which answer is its host's is not known.
TEST(IpValidation, AnAlertWhoseHostIsASharedAddressIsUndeterminedNotIrrelevant) {
  const auto agents = three_hosts_sharing_a_bridge();
  const auto a = alert_on("", {"172.17.0.1"}, {"203.0.113.9"});
  const auto plan = plan_ip_validation(a, agents, 30);
  EXPECT_EQ(plan.host.status, "unresolved");
  ASSERT_EQ(plan.queries.size(), 3u);
  std::vector<LiveAnswer> answers;
  for (const auto& q : plan.queries) {
    LiveAnswer answer;
    answer.query = q;
    answer.state = "succeeded";
    answer.result = json{{"history", json::array()}, {"current", json::array()}};
    answers.push_back(answer);
  }
  const auto outcome = decide_ip_validation(plan, answers, agents, 30);
  EXPECT_EQ(outcome.status, "undetermined") << outcome.record.dump();
  EXPECT_EQ(outcome.record["host"]["status"], "unresolved");
}

TEST(Enrichment, OnlyTheSingledOutHostIsAskedForTheProcess) {
  const auto agents = three_hosts_sharing_a_bridge();
  AlertRecord shared = alert_on("", {"172.17.0.1"}, {});
  shared.observables.push_back({"process", "4242", ""});
  const auto plan = plan_enrichment(shared, agents);
  EXPECT_TRUE(plan.queries.empty()) << "no host is proven, so none is asked about its pid";
  ASSERT_EQ(plan.missing.size(), 1u);
  EXPECT_EQ(plan.missing[0]["what"], "host");

  AlertRecord unique = alert_on("", {"172.17.0.1", "10.0.0.13"}, {});
  unique.observables.push_back({"process", "4242", ""});
  const auto one = plan_enrichment(unique, agents);
  ASSERT_EQ(one.hosts.size(), 1u);
  EXPECT_EQ(one.hosts[0].id, "C");
  EXPECT_EQ(one.queries.back().kind, "process.list");
  EXPECT_EQ(one.queries.back().parameters, (json{{"pid", 4242}}));
  const auto e = build_enrichment(unique, one, {}, AssetMap{}, {});
  EXPECT_EQ(e["host"]["status"], "resolved");
  EXPECT_EQ(e["host"]["matched"][0]["by"], "unique address");
}

LiveAnswer listing(const EnrichmentPlan& plan, json processes) {
  LiveAnswer a;
  a.query = plan.queries.back();
  a.state = "succeeded";
  a.result = json{{"processes", std::move(processes)}};
  return a;
}

// The alert's process started at 10:00; the live process with its pid started at 14:13: the
// pid was reused. Nothing may act on it, and the enrichment says why.
TEST(Enrichment, APidReusedSinceTheAlertIsNotTheAlertsProcess) {
  const std::vector<AgentRecord> agents = {agent("A", "web-01", {"10.0.0.11"})};
  AlertRecord a = alert_on("web-01", {}, {});
  a.timestamp_ms = 1'790'000'100'000;
  a.observables.push_back({"process", "4242", "2026-09-21T10:00:00.000Z", "guid-1"});
  const auto plan = plan_enrichment(a, agents);
  const json live{
      {"pid", 4242},          {"ppid", 1},
      {"name", "sleep"},      {"exe", "/usr/bin/sleep"},
      {"start_ticks", "900"}, {"start_time_unix_ms", "1790000000000"}};  // 2026-09-21T14:13:20Z
  const std::vector<LiveAnswer> answers{listing(plan, json::array({live}))};
  EXPECT_TRUE(plan_executable_hash(a, answers).empty()) << "not hashed as the alert's process";
  const auto e = build_enrichment(a, plan, answers, AssetMap{}, {});
  EXPECT_EQ(e["process"]["running"], false);
  EXPECT_EQ(e["process"]["pid_reused"], true);
  EXPECT_FALSE(e["process"].contains("start_ticks")) << "nothing to quote to an action";
  EXPECT_NE(e["process"]["why"].get<std::string>().find("reused"), std::string::npos);

  // Start times that agree (within the tolerance): the alert's process, with the proof recorded.
  a.observables.back().start = "2026-09-21T14:13:21.000Z";
  const auto same = build_enrichment(a, plan, answers, AssetMap{}, {});
  EXPECT_EQ(same["process"]["running"], true);
  EXPECT_EQ(same["process"]["identity"]["entity_id"], "guid-1");
  EXPECT_NE(same["process"]["identity"]["proven_by"].get<std::string>().find("start time"),
            std::string::npos);

  // A start time that reads as no date proves nothing: judged as if the alert gave none.
  a.observables.back().start = "-292275055-05-16T16:47:05.-808Z";
  a.timestamp_ms = 1'789'990'000'000;
  EXPECT_EQ(build_enrichment(a, plan, answers, AssetMap{}, {})["process"]["pid_reused"], true);

  // No start time in the alert: a process started after the alert itself is not its process.
  a.observables.back().start = "";
  a.timestamp_ms = 1'789'990'000'000;
  const auto later = build_enrichment(a, plan, answers, AssetMap{}, {});
  EXPECT_EQ(later["process"]["pid_reused"], true) << later["process"].dump();
}

// Java, Go and .NET log thread ids: the agent marks the process a thread id belongs to.
TEST(Enrichment, AThreadIdIsTheProcessItBelongsTo) {
  const std::vector<AgentRecord> agents = {agent("A", "web-01", {"10.0.0.11"})};
  AlertRecord a = alert_on("web-01", {}, {});
  a.observables.push_back({"process", "4250", ""});
  const auto plan = plan_enrichment(a, agents);
  const json process{{"pid", 4242},         {"ppid", 1},
                     {"name", "java"},      {"exe", "/usr/bin/java"},
                     {"start_ticks", "77"}, {"thread_id", 4250}};
  const std::vector<LiveAnswer> answers{listing(plan, json::array({process}))};
  const auto hash = plan_executable_hash(a, answers);
  ASSERT_EQ(hash.size(), 1u);
  EXPECT_EQ(hash[0].parameters["process"]["pid"], 4242);
  const auto e = build_enrichment(a, plan, answers, AssetMap{}, {});
  EXPECT_EQ(e["process"]["pid"], 4242);
  EXPECT_EQ(e["process"]["thread_id"], 4250);
  EXPECT_EQ(e["process"]["running"], true);
  EXPECT_NE(
      e["process"]["identity"]["thread"].get<std::string>().find("thread 4250 of process 4242"),
      std::string::npos);
}

}  // namespace
}  // namespace riposte::controller
