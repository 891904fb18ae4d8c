// `riposte-controller up`, the README's main job: controller plus an enrolled local agent in one
// command, Ctrl-C stops both, and a second run reuses the same CA and agent identity.

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <regex>

#include "tests/build_paths.h"
#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;

std::string field(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(label + R"(\s*:\s*(\S+))"))) return "";
  return m[1];
}

nlohmann::json agents(const std::filesystem::path& data_dir) {
  const auto env = read_text(data_dir / "cli.env");
  std::smatch server, token;
  std::regex_search(env, server, std::regex("RIPOSTE_SERVER=(\\S+)"));
  std::regex_search(env, token, std::regex("RIPOSTE_TOKEN=(\\S+)"));
  const auto result =
      run_command({bin("riposte"), "--server", server[1], "--token", token[1], "--ca",
                   (data_dir / "ca.pem").string(), "agents", "list", "--json"});
  if (result.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(result.out);
}

bool one_agent_online(const std::filesystem::path& data_dir, std::string* id) {
  const auto list = agents(data_dir);
  if (!list.contains("agents") || list["agents"].size() != 1) return false;
  *id = list["agents"][0]["id"];
  return list["agents"][0]["status"] == "online";
}

TEST(UpIntegration, OneCommandStartsControllerAndLocalAgentAndCtrlCStopsBoth) {
  TempDir dir;
  const auto data = dir.path() / "data";
  // The agent gateway on its default address (the only test that uses 7443), the API on any
  // free loopback port.
  auto up = [&](const std::string& log) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{bin("riposte-controller"), "up", "--data-dir", data.string(),
                                 "--api-listen", "127.0.0.1:0"},
        dir.path() / log);
  };

  auto first = up("up-1.log");
  ASSERT_TRUE(wait_until(
      [&] { return first->log_text().find("Riposte is up.") != std::string::npos; }, 30s))
      << first->log_text();
  const auto banner = first->log_text();
  const auto fingerprint = field(banner, "CA fingerprint");
  EXPECT_TRUE(fingerprint.starts_with("sha256:")) << banner;
  EXPECT_TRUE(field(banner, "admin token").starts_with("rpt_")) << banner;
  EXPECT_TRUE(field(banner, "API").starts_with("https://127.0.0.1:")) << banner;
  EXPECT_TRUE(field(banner, "agent gateway").starts_with("127.0.0.1:")) << banner;
  EXPECT_EQ(std::filesystem::status(data / "cli.env").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  std::string agent_id;
  ASSERT_TRUE(wait_until([&] { return one_agent_online(data, &agent_id); }, 30s))
      << first->log_text();
  // Loopback only, and the banner says so.
  EXPECT_EQ(field(banner, "agent gateway"), "127.0.0.1:7443") << banner;
  const auto listening = run_command({"ss", "-ltnH", "sport = :7443"}).out;
  EXPECT_NE(listening.find("127.0.0.1:7443"), std::string::npos) << listening;
  EXPECT_EQ(listening.find("0.0.0.0:7443"), std::string::npos) << listening;
  EXPECT_NE(banner.find("Listening on loopback only"), std::string::npos) << banner;
  // The local agent inherited none of the controller's descriptors: no socket but its own
  // connection, no database.
  const auto children = run_command({"pgrep", "-P", std::to_string(first->pid()), "riposte-agent"});
  const auto agent_pid = children.out.substr(0, children.out.find('\n'));
  ASSERT_FALSE(agent_pid.empty()) << children.err;
  int sockets = 0;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/" + agent_pid + "/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
    EXPECT_EQ(target.find("riposte.db"), std::string::npos) << target;
    sockets += target.starts_with("socket:");
  }
  EXPECT_LE(sockets, 2) << "the agent holds its own gateway connection, not the listeners";
  // The databases and their WAL files are their daemon's alone: the controller's store, the
  // local agent's action journal and connection history.
  for (const auto* file :
       {"riposte.db", "riposte.db-wal", "local-agent/actions.db", "local-agent/actions.db-wal",
        "local-agent/connections.db", "local-agent/connections.db-wal"}) {
    if (!std::filesystem::exists(data / file)) {
      EXPECT_TRUE(std::string_view(file).ends_with("-wal")) << file << " missing";
      continue;
    }
    EXPECT_EQ(std::filesystem::status(data / file).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)
        << file;
  }

  // Ctrl-C: the controller stops its agent and both exit cleanly.
  first->signal(SIGINT);
  EXPECT_EQ(first->wait_for_exit(20s), 0) << first->log_text();
  EXPECT_NE(first->log_text().find("agent: stopped"), std::string::npos) << first->log_text();

  // Second run: same data directory, same CA, same agent (now on new ports).
  auto second = up("up-2.log");
  ASSERT_TRUE(wait_until(
      [&] { return second->log_text().find("Riposte is up.") != std::string::npos; }, 30s))
      << second->log_text();
  EXPECT_EQ(field(second->log_text(), "CA fingerprint"), fingerprint);
  // The admin token was shown once, at its creation; later starts say where it is.
  EXPECT_EQ(second->log_text().find("rpt_"), std::string::npos) << second->log_text();
  EXPECT_EQ(field(second->log_text(), "admin token"), "in") << second->log_text();
  EXPECT_EQ(second->log_text().find("Enrolled as agent"), std::string::npos)
      << "must not enroll again";
  std::string second_id;
  ASSERT_TRUE(wait_until([&] { return one_agent_online(data, &second_id); }, 30s))
      << second->log_text();
  EXPECT_EQ(second_id, agent_id);
  second->signal(SIGINT);
  EXPECT_EQ(second->wait_for_exit(20s), 0) << second->log_text();

  for (const char* log : {"up-1.log", "up-2.log"}) {
    const auto text = read_text(dir.path() / log);
    EXPECT_EQ(text.find("Sanitizer"), std::string::npos) << text;
  }
}

// The README's walk, as `./scripts/up.sh` runs it (shipped playbooks, no asset map, no webhooks):
// an alert from a SIEM integration starts the suspicious-process playbook, every automatic step
// waits for a person (the integration's max mode and the unmapped host both say approve), and
// approving each one contains the process; the notify steps, with no `webhook:soc` configured,
// are skipped with a note and the run ends `succeeded`.
TEST(UpIntegration, TheReadmeWalkContainsAProcessAndTheRunSucceedsWithoutWebhooks) {
  TempDir dir;
  const auto data = dir.path() / "data";
  ChildProcess up({bin("riposte-controller"), "up", "--data-dir", data.string(), "--agent-listen",
                   "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--playbooks",
                   std::string(source_dir()) + "/playbooks"},
                  dir.path() / "up.log");
  std::string agent_id;
  ASSERT_TRUE(wait_until([&] { return one_agent_online(data, &agent_id); }, 60s)) << up.log_text();
  const auto env = read_text(data / "cli.env");
  std::smatch server, token;
  std::regex_search(env, server, std::regex("RIPOSTE_SERVER=(\\S+)"));
  std::regex_search(env, token, std::regex("RIPOSTE_TOKEN=(\\S+)"));
  const auto riposte = [&](const std::string& as, std::vector<std::string> args) {
    std::vector<std::string> argv{
        bin("riposte"), "--server", server[1], "--token", as, "--ca", (data / "ca.pem").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };
  const std::string admin = token[1];
  const auto made = riposte(admin, {"integrations", "create", "siem", "--json"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string siem = nlohmann::json::parse(made.out)["token"];

  ChildProcess victim({"sleep", "300"}, dir.path() / "victim.log");
  std::ofstream(dir.path() / "alert.json")
      << nlohmann::json{{"rule", {{"name", "Suspicious process"}}},
                        {"severity", "high"},
                        {"host", this_hostname()},
                        {"observables",
                         {{{"type", "process"}, {"value", std::to_string(victim.pid())}}}}}
             .dump();
  const auto submitted = riposte(siem, {"alerts", "submit", (dir.path() / "alert.json").string()});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;

  // Approve what waits, one step after another, until the run ends.
  nlohmann::json run;
  std::vector<std::string> approved;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto runs = riposte(admin, {"runs", "list", "--json"});
        if (runs.exit_code != 0) return false;
        const auto list = nlohmann::json::parse(runs.out)["runs"];
        if (list.empty()) return false;
        run = list[0];
        if (!run["finished_at"].is_null()) return true;
        const auto pending =
            nlohmann::json::parse(riposte(admin, {"approvals", "list", "--json"}).out);
        for (const auto& a : pending["approvals"]) {
          riposte(admin, {"approvals", "approve", a["id"], "--reason", "walk"});
          approved.push_back(a["what"]["action"]);
        }
        return false;
      },
      120s))
      << up.log_text();
  EXPECT_EQ(run["state"], "succeeded") << run.dump(2);
  EXPECT_EQ(run["requested_by"], "siem");
  EXPECT_EQ(approved.front(), "process.suspend");  // nothing acted before a person said so
  EXPECT_EQ(approved.back(), "process.kill");
  EXPECT_TRUE(victim.wait_for_exit(10s).has_value());
  const auto shown =
      nlohmann::json::parse(riposte(admin, {"runs", "show", run["id"], "--json"}).out);
  bool skipped = false;
  for (const auto& s : shown["steps"]) {
    if (s["step"] == "notify_done")
      skipped = s["outcome"].get<std::string>().starts_with("skipped: webhook:soc is not defined");
  }
  EXPECT_TRUE(skipped) << shown["steps"].dump(2);
  up.signal(SIGINT);
  EXPECT_EQ(up.wait_for_exit(20s), 0) << up.log_text();
}

// `riposte-controller check`: a team's configuration, asset map, playbooks (the shipped ones and
// the team's own, from playbooks.dir and each --playbooks) and feeds, checked without starting,
// with FILE:LINE for each problem; exit 1 on any.
TEST(ControllerCheck, ChecksConfigAssetsPlaybooksAndFeedsWithoutStarting) {
  TempDir dir;
  const auto shipped = std::filesystem::path(source_dir()) / "playbooks";
  const auto team = dir.path() / "team";
  std::filesystem::create_directories(team);
  const auto config = dir.path() / "controller.yaml";
  const auto write_config = [&](const std::string& autonomy) {
    std::ofstream(config) << "data_dir: " << (dir.path() / "data").string() << "\n"
                          << "assets: " << source_dir() << "/tests/fixtures/assets.yaml\n"
                          << "playbooks:\n  dir: " << shipped.string() << "\n"
                          << "intel:\n  feeds:\n    - {name: hosts, format: list, path: "
                          << source_dir() << "/tests/fixtures/intel/hosts_blocklist.txt}\n"
                          << autonomy;
  };
  const auto check = [&](std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{bin("riposte-controller"), "check", "--config", config.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv);
  };

  write_config("autonomy:\n  ceilings:\n    - {environment: prod, max: approve}\n");
  auto result = check();
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.out.find("environment 'prod' is not one of production, staging, lab"),
            std::string::npos)
      << result.out << result.err;

  write_config("autonomy:\n  ceilings:\n    - {environment: production, max: approve}\n");
  std::ofstream(team / "contain.yaml")
      << "name: team-contain\ntrigger: {observable_types: [ip]}\nsteps:\n"
         "  - {id: q, kind: action, action: network.quarantine, target: host,\n"
         "     parameters: {release_after_second: 600}}\n";
  result = check({"--playbooks", team.string()});
  EXPECT_EQ(result.exit_code, 1) << result.out;
  EXPECT_NE(result.out.find((team / "contain.yaml").string() +
                            ":5: step 'q' parameters: parameters for network.quarantine: no "
                            "parameter 'release_after_second'"),
            std::string::npos)
      << result.out;

  std::ofstream(team / "contain.yaml", std::ios::trunc)
      << "name: team-contain\ntrigger: {observable_types: [ip]}\nsteps:\n"
         "  - {id: q, kind: action, action: network.quarantine, target: host,\n"
         "     parameters: {release_after_seconds: 600}}\n";
  result = check({"--playbooks", team.string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const auto report = nlohmann::json::parse(result.out);
  std::string seen;
  for (const auto& c : report["checks"]) seen += c["detail"].get<std::string>() + "\n";
  for (const char* expected : {"malicious-ip v5", "team-contain v", "feed 'hosts': 4 indicators",
                               "assets.yaml: 3 entries"})
    EXPECT_NE(seen.find(expected), std::string::npos) << expected << "\n" << seen;

  // One playbook name in two directories is refused, as in one.
  std::ofstream(team / "copy.yaml") << "name: malicious-ip\ntrigger: {observable_types: [ip]}\n"
                                       "steps:\n  - {id: w, kind: wait, duration: 1m}\n";
  result = check({"--playbooks", team.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.out.find("playbook name 'malicious-ip' is also used by"), std::string::npos)
      << result.out;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "data")) << "check starts nothing";
}

}  // namespace
}  // namespace riposte::testing
