// Operators end to end: an admin creates named operators with the CLI, each role is held to what
// it may do by the real controller, a denial lands in the audit log, and disabling an operator
// shuts their token out at once.

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "tests/build_paths.h"
#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

TEST(OperatorIntegration, RolesGateTheCliAndDisablingShutsTheTokenOut) {
  ControllerUnderTest controller;
  controller.start();
  const auto ann = controller.cli_json({"operators", "create", "ann", "--role", "analyst"});
  ASSERT_TRUE(ann.contains("token")) << ann.dump();
  const std::string token = ann["token"];
  EXPECT_TRUE(token.starts_with("rpt_"));

  const auto table = controller.cli({"operators", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("ann"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("analyst"), std::string::npos) << table.out;

  // An analyst submits alerts...
  const auto alerts =
      fs::path(::riposte::testing::source_dir()) / "tests/fixtures/alerts/generic.json";
  const auto submitted = controller.cli_as(token, {"alerts", "submit", alerts.string()});
  EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
  // ...but does not run actions: a one-line reason naming the role, and an audit entry.
  const auto refused = controller.cli_as(
      token, {"action", "run", "host.facts", "--agent", "00000000-0000-4000-8000-000000000000"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("running actions needs the responder role; ann is analyst"),
            std::string::npos)
      << refused.err;
  const auto audit = controller.cli({"audit", "export"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  bool denial_audited = false;
  std::istringstream lines(audit.out);
  for (std::string line; std::getline(lines, line);) {
    const auto entry = json::parse(line);
    denial_audited |= entry["event"] == "api.denied" && entry["actor"] == "ann" &&
                      entry["subject"] == "/api/v1/actions";
  }
  EXPECT_TRUE(denial_audited) << audit.out;
  EXPECT_EQ(controller.cli({"audit", "verify"}).exit_code, 0);

  // A bad role never leaves the CLI; a duplicate name is the controller's 409.
  EXPECT_NE(controller.cli({"operators", "create", "eve", "--role", "root"}).exit_code, 0);
  const auto duplicate = controller.cli({"operators", "create", "ann", "--role", "viewer"});
  EXPECT_NE(duplicate.exit_code, 0);
  EXPECT_NE(duplicate.err.find("operator ann exists"), std::string::npos) << duplicate.err;

  const auto disabled = controller.cli_json({"operators", "disable", "ann"});
  EXPECT_FALSE(disabled["disabled_at"].is_null()) << disabled.dump();
  const auto shut_out = controller.cli_as(token, {"agents", "list"});
  EXPECT_NE(shut_out.exit_code, 0);
  EXPECT_NE(shut_out.err.find("operator ann is disabled"), std::string::npos) << shut_out.err;

  // The state survives a restart: it is in the database, not in memory.
  controller.stop_gracefully();
  controller.start(true);
  EXPECT_NE(controller.cli_as(token, {"agents", "list"}).exit_code, 0);
}

}  // namespace
}  // namespace riposte::testing

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The API and the agent gateway share two io threads. A viewer's audit verify of a large log
// (work that grows with the data) runs on the API's worker pool, one at a time: /healthz stays
// fast, the agent keeps its session, and a second verify meanwhile is told to retry.
// GET /metrics as Prometheus scrapes it: the reference parser (python3-prometheus-client) reads
// every family with its type; a token is needed unless the scraper's network is listed.
TEST(ApiIntegration, MetricsAreValidPrometheusTextForAnyRoleOrAListedNetwork) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  controller.cli_json({"action", "run", "host.facts", "--agent", agent.id, "--wait"});
  const auto viewer = controller.cli_json({"operators", "create", "vic", "--role", "viewer"});
  const auto scrape = [&](const std::string& token) {
    std::vector<std::string> argv{"curl",           "-s",       "-w",
                                  "\n%{http_code}", "--cacert", controller.ca_cert()};
    if (!token.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + token});
    argv.push_back("https://" + controller.api() + "/metrics");
    return run_command(argv).out;
  };
  const auto text = scrape(viewer["token"].get<std::string>());
  ASSERT_TRUE(text.ends_with("\n200")) << text;
  const auto exposition = controller.dir() / "metrics.txt";
  std::ofstream(exposition) << text.substr(0, text.rfind('\n') + 1);
  const auto parsed = run_command(
      {"/usr/bin/python3", "-c",
       "import sys\n"
       "from prometheus_client.parser import text_string_to_metric_families as parse\n"
       "for f in parse(open(sys.argv[1]).read()):\n"
       "    for s in f.samples:\n"
       "        print(f.type, s.name, ','.join(f'{k}={v}' for k, v in sorted(s.labels.items())),"
       " s.value)\n",
       exposition.string()});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  const auto& samples = parsed.out;
  EXPECT_NE(samples.find("gauge riposte_agents state=online 1.0"), std::string::npos) << samples;
  EXPECT_NE(samples.find("gauge riposte_agent_sessions  1.0"), std::string::npos) << samples;
  EXPECT_NE(samples.find("counter riposte_actions_total kind=host.facts,state=succeeded 1.0"),
            std::string::npos)
      << samples;
  EXPECT_NE(samples.find("histogram riposte_action_duration_seconds_count kind=host.facts 1.0"),
            std::string::npos)
      << samples;
  EXPECT_NE(samples.find("gauge riposte_approvals_pending  0.0"), std::string::npos) << samples;
  for (const char* family :
       {"counter riposte_audit_entries_total", "counter riposte_evidence_bytes_total",
        "counter process_cpu_seconds_total", "gauge process_resident_memory_bytes",
        "gauge process_open_fds", "counter riposte_connections_refused_total"})
    EXPECT_NE(samples.find(family), std::string::npos) << family << "\n" << samples;
  EXPECT_TRUE(scrape("").ends_with("\n401"));
  const auto siem = controller.cli_json({"integrations", "create", "siem"});
  EXPECT_TRUE(scrape(siem["token"].get<std::string>()).ends_with("\n403"));
  // A listed network scrapes without a token.
  controller.stop_gracefully();
  controller.add_config("metrics:\n  unauthenticated_from: [127.0.0.0/8]\n");
  controller.start(/*same_ports=*/true);
  EXPECT_TRUE(scrape("").ends_with("\n200"));
}

TEST(ApiIntegration, HealthzAndAgentsStayFastDuringALongAuditVerify) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  const auto viewer = controller.cli_json({"operators", "create", "vera", "--role", "viewer"});
  const std::string token = viewer["token"];
  // What this test is about needs a verify long enough to overlap the probes, and how long a
  // number of entries takes depends on the machine (600,000 took 0.85 s on one, 20 s under
  // ASan on another). So the log grows until one verify overlaps at least 5 probes and a second
  // of time, doubling each round, rather than trusting a fixed size to be slow enough.
  std::int64_t entries = 0;
  const auto grow = [&](std::int64_t by) {
    controller.kill_hard();
    const auto grown = run_command(
        {"python3",
         (fs::path(::riposte::testing::source_dir()) / "tests/integration/grow_audit_log.py")
             .string(),
         (controller.data_dir() / "riposte.db").string(), std::to_string(by)},
        300s);
    ASSERT_EQ(grown.exit_code, 0) << grown.err;
    entries += by;
    controller.start(/*same_ports=*/true);
  };
  struct Round {
    std::chrono::steady_clock::duration took{};
    int probes = 0;
    double worst = 0;
    std::string busy;
    nlohmann::json report;
    std::string cli_log;
  };
  const auto verify_while_probing = [&]() {
    Round round;
    const auto started = std::chrono::steady_clock::now();
    // curl, with no timeout of its own: under sanitizers the verify takes far longer than the
    // CLI waits.
    ChildProcess verify(
        {"curl", "-s", "--max-time", "600", "--cacert", controller.ca_cert(), "-H",
         "Authorization: Bearer " + token, "https://" + controller.api() + "/api/v1/audit/verify"},
        controller.dir() / "verify.log");
    std::this_thread::sleep_for(200ms);
    // A request without a valid token is refused as such, never holds (or waits for) the slot.
    const auto anonymous =
        run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                     controller.ca_cert(), "https://" + controller.api() + "/api/v1/audit/verify"});
    EXPECT_EQ(anonymous.out, "401");
    const auto busy =
        run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                     controller.ca_cert(), "-H", "Authorization: Bearer " + token,
                     "https://" + controller.api() + "/api/v1/audit/verify"});
    round.busy = verify.running() ? busy.out : "verify already over";
    // The CLI, told 503 with Retry-After, waits and asks again (and says so) instead of failing.
    ChildProcess waiting({bin("riposte"), "--server", "https://" + controller.api(), "--token",
                          token, "--ca", controller.ca_cert(), "audit", "verify"},
                         controller.dir() / "cli-verify.log");
    while (verify.running() && round.probes < 2000) {
      const auto probe =
          run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", "--cacert",
                       controller.ca_cert(), "https://" + controller.api() + "/healthz"});
      if (verify.running()) {
        round.worst = std::max(round.worst, std::stod(probe.out));
        ++round.probes;
      }
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(verify.wait_for_exit(600s).has_value());
    round.took = std::chrono::steady_clock::now() - started;
    const auto output = read_text(controller.dir() / "verify.log");
    if (output.find('{') != std::string::npos)
      round.report = nlohmann::json::parse(output.substr(output.find('{')), nullptr, false);
    waiting.wait_for_exit(120s);
    round.cli_log = waiting.log_text();
    return round;
  };
  Round round;
  for (std::int64_t by = 600'000; by <= 9'600'000; by *= 2) {
    grow(by);
    if (HasFatalFailure()) return;
    round = verify_while_probing();
    std::cout << "verify of " << round.report.value("entries_verified", 0) << " entries took "
              << std::chrono::duration<double>(round.took).count() << " s; /healthz worst "
              << round.worst << " s over " << round.probes << " probes\n";
    if (round.took >= 1s && round.probes >= 5 && round.busy != "verify already over") break;
  }
  ASSERT_TRUE(round.report.is_object()) << "no report from the verify";
  EXPECT_EQ(round.report["ok"], true) << round.report.dump();
  EXPECT_GE(round.report["entries_verified"].get<std::int64_t>(), entries);
  // The verify overlapped the probes (the log grew until it took long enough to matter)...
  ASSERT_GE(round.took, 1s) << "even " << entries << " entries verified too fast to overlap";
  ASSERT_GE(round.probes, 5);
  // ...and did not hold up /healthz or the agent.
  EXPECT_LT(round.worst, 0.25) << round.probes << " probes";
  EXPECT_EQ(round.busy, "503") << "a second verify while one runs";
  EXPECT_NE(round.cli_log.find("controller answered 503 (busy); retrying in 5 s"),
            std::string::npos)
      << round.cli_log;
  EXPECT_TRUE(wait_until(
      [&] {
        return controller.cli_json({"agents", "show", agent.id})["status"] == "online";
      },
      20s));
}

}  // namespace
}  // namespace riposte::testing
