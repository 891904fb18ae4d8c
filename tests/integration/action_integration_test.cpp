// Signed actions end to end: the real controller, agent and CLI over loopback, acting on real
// processes, with evidence uploads interrupted by killing either side.

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "protocol/crypto.h"
#include "tests/integration/harness.h"
#include "tests/platform/capture_target_process.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

TEST(ActionIntegration, ProcessKillFromTheCliKillsARealChildOnTheAgentHost) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");

  const pid_t child = ::fork();
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execlp("sleep", "sleep", "300", nullptr);
    ::_exit(127);
  }
  ::usleep(50'000);
  // The form operators type: riposte action run --agent ID KIND --param k=v --wait
  const auto run = controller.cli({"action", "run", "--agent", agent.id, "process.kill", "--param",
                                   "target.pid=" + std::to_string(child), "--param",
                                   "target.start_ticks=" + start_ticks(child), "--wait", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << agent.process->log_text();
  const auto done = last_json_line(run.out);
  EXPECT_EQ(done["state"], "succeeded");
  EXPECT_TRUE(done["reason"].is_null());
  ASSERT_EQ(done["result"]["processes"].size(), 1u) << done.dump();
  EXPECT_EQ(done["result"]["processes"][0]["outcome"], "terminated");
  for (const char* key : {"delivered_at", "started_at", "finished_at"})
    EXPECT_TRUE(done[key].is_string()) << key;
  EXPECT_EQ(done["requester"], "admin");
  EXPECT_EQ(done["signature"].get<std::string>().size(), 128u);  // Ed25519, hex
  EXPECT_EQ(done["outcome"],
            "pid " + std::to_string(child) + " (sleep): terminated — exited after SIGTERM")
      << done.dump();

  // The child really died of the SIGTERM the agent sent.
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);

  // The wrong start time is refused by the agent and nothing is killed.
  const pid_t other = ::fork();
  if (other == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execlp("sleep", "sleep", "300", nullptr);
    ::_exit(127);
  }
  ::usleep(50'000);
  const auto wrong = controller.cli({"action", "run", "process.kill", "--agent", agent.id,
                                     "--param", "target.pid=" + std::to_string(other), "--param",
                                     "target.start_ticks=1", "--wait", "--json"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_EQ(last_json_line(wrong.out)["state"], "failed") << wrong.out;
  EXPECT_EQ(::kill(other, 0), 0);
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);

  // Without --json a result reads as a table: process.list as columns, one process a row.
  const auto listed =
      controller.cli({"action", "run", "process.list", "--agent", agent.id, "--wait"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("outcome:"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("processes"), std::string::npos) << listed.out;
  const auto header = listed.out.find("PID  ");
  ASSERT_NE(header, std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("COMMAND", header), std::string::npos);
  EXPECT_NE(listed.out.find("riposte-agent"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("\"processes\""), std::string::npos) << "not JSON";

  // Bad input is answered before anything is signed or stored.
  const auto unknown = controller.cli({"action", "run", "process.explode", "--agent", agent.id});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("unknown action kind"), std::string::npos) << unknown.err;
  const auto bad_param = controller.cli(
      {"action", "run", "process.kill", "--agent", agent.id, "--param", "target.pidd=1"});
  EXPECT_NE(bad_param.exit_code, 0);
  EXPECT_NE(bad_param.err.find("no parameter 'target.pidd'"), std::string::npos) << bad_param.err;

  // A pid without its start time: the CLI says what is missing and where to find it, and the
  // controller stores no action.
  const auto before = controller.cli({"action", "list", "--json"});
  const auto no_ticks = controller.cli({"action", "run", "process.kill", "--agent", agent.id,
                                        "--param", "target.pid=" + std::to_string(::getpid())});
  EXPECT_NE(no_ticks.exit_code, 0);
  EXPECT_NE(no_ticks.err.find("target.start_ticks is missing"), std::string::npos) << no_ticks.err;
  EXPECT_NE(no_ticks.err.find("process.list"), std::string::npos) << no_ticks.err;
  EXPECT_EQ(controller.cli({"action", "list", "--json"}).out, before.out);
}

TEST(ActionIntegration, MemoryCaptureEvidenceArrivesWithTheRightHashAndOpensWithReadelf) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  CaptureTarget target(16);
  ASSERT_TRUE(target.ready());

  const auto run =
      controller.cli({"action", "run", "memory.capture", "--agent", agent.id, "--param",
                      "target.pid=" + std::to_string(target.pid()), "--param",
                      "target.start_ticks=" + start_ticks(target.pid()), "--wait", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err << agent.process->log_text();
  const auto done = last_json_line(run.out);
  ASSERT_EQ(done["state"], "succeeded") << done.dump();
  ASSERT_EQ(done["evidence"].size(), 1u);
  const std::string sha = done["evidence"][0]["sha256"];
  const std::uint64_t size = done["evidence"][0]["size"];
  EXPECT_EQ(done["result"]["sha256"], sha);
  EXPECT_GT(size, 16u << 20);

  ASSERT_TRUE(
      wait_until([&] { return controller.action(done["id"])["evidence"][0]["stored"]; }, 30s))
      << agent.process->log_text();
  // Content-addressed on the controller, and the agent's spool copy is gone.
  EXPECT_EQ(fs::file_size(controller.data_dir() / "evidence" / sha), size);
  ASSERT_TRUE(
      wait_until([&] { return fs::is_empty(controller.dir() / "agent" / "evidence"); }, 10s));

  const auto file = controller.dir() / "capture.core";
  const auto get = controller.cli({"evidence", "get", sha, "-o", file.string()});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(crypto::sha256_file(file.string()).value(), sha);
  const auto readelf = run_command({"readelf", "-h", "-l", file.string()});
  ASSERT_EQ(readelf.exit_code, 0) << readelf.err;
  EXPECT_NE(readelf.out.find("CORE (Core file)"), std::string::npos);
  EXPECT_NE(readelf.out.find("LOAD"), std::string::npos);

  // Chain of custody: produced by which action on which agent, stored, downloaded by whom.
  const auto custody = controller.cli_json({"evidence", "show", sha});
  EXPECT_EQ(custody["produced_by"][0]["action_id"], done["id"]);
  EXPECT_EQ(custody["produced_by"][0]["agent_id"], agent.id);
  std::vector<std::string> events;
  for (const auto& e : custody["custody"]) events.push_back(e["event"]);
  EXPECT_EQ(events, (std::vector<std::string>{"evidence.offered", "evidence.stored",
                                              "evidence.downloaded"}));
  EXPECT_EQ(custody["custody"][2]["actor"], "admin");

  // A list of actions carries each one's evidence as `action show` does: it once said [] for an
  // action that had stored a capture.
  const auto listed = controller.cli_json({"action", "list"});
  bool found = false;
  for (const auto& a : listed["actions"]) {
    if (a["id"] != done["id"]) continue;
    found = true;
    ASSERT_EQ(a["evidence"].size(), 1u) << a.dump();
    EXPECT_EQ(a["evidence"][0]["sha256"], sha);
    EXPECT_EQ(a["evidence"][0]["stored"], true);
  }
  EXPECT_TRUE(found) << listed.dump();

  // A hash nobody stored is a clear 404, not an empty file.
  const auto missing = controller.cli(
      {"evidence", "get", std::string(64, 'a'), "-o", (controller.dir() / "x").string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("404"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(controller.dir() / "x"));
}

TEST(ActionIntegration, FanOutByLabelReachesEveryLabelledAgent) {
  ControllerUnderTest controller;
  controller.start();
  auto web1 = controller.start_online_agent(controller.dir() / "web1", "web1.log");
  auto web2 = controller.start_online_agent(controller.dir() / "web2", "web2.log");
  auto db = controller.start_online_agent(controller.dir() / "db", "db.log");
  for (const auto* a : {&web1, &web2}) {
    const auto labelled = controller.cli_json({"agents", "label", a->id, "web", "pci"});
    EXPECT_EQ(labelled["labels"], (json{"web", "pci"}));
  }
  const auto run =
      controller.cli({"action", "run", "host.facts", "--label", "web", "--wait", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::set<std::string> reached;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    const auto a = json::parse(line);
    EXPECT_EQ(a["state"], "succeeded");
    reached.insert(a["agent_id"]);
  }
  EXPECT_EQ(reached, (std::set<std::string>{web1.id, web2.id}));
  const auto none = controller.cli({"action", "run", "host.facts", "--label", "nosuch"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("no agent carries"), std::string::npos) << none.err;
}

TEST(ActionIntegration, ActionForAnOfflineAgentWaitsForItOrExpiresUnexecuted) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  const auto id = controller.enroll_agent(state);

  const auto waiting =
      controller.cli_json({"action", "run", "host.facts", "--agent", id})["actions"][0];
  EXPECT_EQ(waiting["state"], "queued");
  const auto expiring = controller.cli_json(
      {"action", "run", "host.facts", "--agent", id, "--ttl", "1s"})["actions"][0];
  ASSERT_TRUE(
      wait_until([&] { return controller.action(expiring["id"])["state"] == "expired"; }, 10s));
  EXPECT_NE(controller.action(expiring["id"])["reason"].get<std::string>().find("expired"),
            std::string::npos);

  auto agent = controller.start_agent(state, "agent.log");
  ASSERT_TRUE(
      wait_until([&] { return controller.action(waiting["id"])["state"] == "succeeded"; }, 20s))
      << agent->log_text();
  EXPECT_FALSE(controller.action(waiting["id"])["result"]["hostname"].get<std::string>().empty());
  // The expired one never reached the agent.
  EXPECT_EQ(controller.action(expiring["id"])["state"], "expired");
  EXPECT_EQ(agent->log_text().find(expiring["id"].get<std::string>()), std::string::npos);
}

TEST(ActionIntegration, ResultProducedWhileTheControllerIsDownArrivesAfterItReturns) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  const pid_t child = spawn_stubborn_child();

  // SIGTERM is ignored, so the kill takes the 3 s grace: the controller dies meanwhile.
  const auto created = controller.cli_json({"action", "run", "process.kill", "--agent", agent.id,
                                            "--param", "target.pid=" + std::to_string(child),
                                            "--param", "target.start_ticks=" + start_ticks(child),
                                            "--param", "grace_ms=3000"})["actions"][0];
  const std::string id = created["id"];
  ASSERT_TRUE(wait_until([&] { return controller.action(id)["state"] == "running"; }, 10s));
  controller.kill_hard();

  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  ASSERT_TRUE(wait_until(
      [&] { return agent.process->log_text().find("STATUS_SUCCEEDED") != std::string::npos; },
      10s));

  controller.start(/*same_ports=*/true);
  ASSERT_TRUE(wait_until([&] { return controller.action(id)["state"] == "succeeded"; }, 20s))
      << agent.process->log_text();
  EXPECT_EQ(controller.action(id)["result"]["processes"][0]["outcome"], "killed");
  EXPECT_NE(agent.process->log_text().find("kept while disconnected"), std::string::npos);
}

// Starts a capture of a `megabytes` target and returns once its upload is partly on the
// controller: (action id, evidence hash).
std::pair<std::string, std::string> capture_until_upload_is_partial(ControllerUnderTest& controller,
                                                                    const std::string& agent_id,
                                                                    const CaptureTarget& target) {
  const auto created =
      controller.cli_json({"action", "run", "memory.capture", "--agent", agent_id, "--param",
                           "target.pid=" + std::to_string(target.pid()), "--param",
                           "target.start_ticks=" + start_ticks(target.pid())})["actions"][0];
  const std::string id = created["id"];
  std::string sha;
  EXPECT_TRUE(wait_until(
      [&] {
        const auto a = controller.action(id);
        if (a["evidence"].empty()) return false;
        sha = a["evidence"][0]["sha256"];
        return true;
      },
      60s));
  const auto partial = controller.data_dir() / "evidence" / ".partial" / sha;
  EXPECT_TRUE(wait_until(
      [&] {
        std::error_code ec;
        return fs::file_size(partial, ec) > (8u << 20) && !ec;
      },
      30s));
  return {id, sha};
}

// Big enough that the test can kill a side mid-upload; smaller under ASan, where every process
// (agent, controller) is several times slower and the window is wide anyway.
#ifdef __SANITIZE_ADDRESS__
constexpr int kUploadTargetMegabytes = 256;
#else
constexpr int kUploadTargetMegabytes = 768;
#endif

std::uint64_t resumed_offset(const std::string& controller_log) {
  const auto at = controller_log.find("resumes at ");
  if (at == std::string::npos) return 0;
  return std::stoull(controller_log.substr(at + 11));
}

TEST(ActionIntegration, UploadResumesAfterTheControllerIsKilledMidway) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  CaptureTarget target(kUploadTargetMegabytes);
  ASSERT_TRUE(target.ready());
  const auto [id, sha] = capture_until_upload_is_partial(controller, agent.id, target);
  controller.kill_hard();

  controller.start(/*same_ports=*/true);
  ASSERT_TRUE(wait_until([&] { return controller.action(id)["evidence"][0]["stored"]; }, 150s))
      << agent.process->log_text();
  EXPECT_GT(resumed_offset(controller.process().log_text()), 0u) << controller.process().log_text();
  EXPECT_EQ(crypto::sha256_file((controller.data_dir() / "evidence" / sha).string()).value(), sha);
}

TEST(ActionIntegration, UploadResumesAfterTheAgentIsKilledMidway) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  auto agent = controller.start_online_agent(state, "agent.log");
  CaptureTarget target(kUploadTargetMegabytes);
  ASSERT_TRUE(target.ready());
  const auto [id, sha] = capture_until_upload_is_partial(controller, agent.id, target);
  agent.process->signal(SIGKILL);
  agent.process->wait_for_exit(5s);

  auto restarted = controller.start_agent(state, "agent-2.log");
  ASSERT_TRUE(wait_until([&] { return controller.action(id)["evidence"][0]["stored"]; }, 150s))
      << restarted->log_text();
  EXPECT_GT(resumed_offset(controller.process().log_text()), 0u) << controller.process().log_text();
  EXPECT_EQ(crypto::sha256_file((controller.data_dir() / "evidence" / sha).string()).value(), sha);
  EXPECT_EQ(controller.action(id)["state"], "succeeded");
}

TEST(ActionIntegration, EditingOneAuditRowMakesAuditVerifyFailAtThatRow) {
  ControllerUnderTest controller;
  controller.start();
  const auto id = controller.enroll_agent(controller.dir() / "agent");
  for (int i = 0; i < 3; ++i) controller.cli_json({"action", "run", "host.facts", "--agent", id});

  const auto intact = controller.cli({"audit", "verify"});
  ASSERT_EQ(intact.exit_code, 0) << intact.err;
  EXPECT_NE(intact.out.find("intact"), std::string::npos);
  const auto exported = controller.cli({"audit", "export"});
  ASSERT_EQ(exported.exit_code, 0);
  // The enrollment token the agent was enrolled with, then the three actions.
  EXPECT_EQ(std::count(exported.out.begin(), exported.out.end(), '\n'), 4);
  EXPECT_NE(exported.out.find("\"enrollment_token.created\""), std::string::npos);
  EXPECT_NE(exported.out.find("\"action.created\""), std::string::npos);

  // Written to a file, the export is private (0600) even over a file that was world-readable,
  // and re-verifies offline with `audit verify --file`, by the same head hash.
  const auto file = controller.dir() / "audit.jsonl";
  std::ofstream(file) << "old";
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
  ASSERT_EQ(controller.cli({"audit", "export", "-o", file.string()}).exit_code, 0);
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  const auto online = json::parse(controller.cli({"audit", "verify", "--json"}).out);
  const auto offline = controller.cli({"audit", "verify", "--file", file.string(), "--json"});
  ASSERT_EQ(offline.exit_code, 0) << offline.out << offline.err;
  EXPECT_EQ(json::parse(offline.out)["head_hash"], online["head_hash"]);
  EXPECT_EQ(json::parse(offline.out)["entries_verified"], 4);
  // The formula docs/security.md gives, computed by another program: SHA-256 of the compact
  // JSON array [seq, at_ms, actor, event, subject, details_text, prev_hash].
  const auto python =
      run_command({"python3", "-c",
                   "import hashlib, json, sys\n"
                   "for line in open(sys.argv[1]):\n"
                   "    e = json.loads(line)\n"
                   "    fields = [e['seq'], e['at_ms'], e['actor'], e['event'], e['subject'],\n"
                   "              e['details_text'], e['prev_hash']]\n"
                   "    text = json.dumps(fields, separators=(',', ':'), ensure_ascii=False)\n"
                   "    assert hashlib.sha256(text.encode()).hexdigest() == e['hash'], e['seq']\n"
                   "print('ok')\n",
                   file.string()});
  EXPECT_EQ(python.out, "ok\n") << python.err;
  // A refused export (a bad token) leaves the file as it was, never empty or cut short.
  const auto good_size = fs::file_size(file);
  EXPECT_NE(
      controller.cli_as("rpt_not-a-token", {"audit", "export", "-o", file.string()}).exit_code, 0);
  EXPECT_EQ(fs::file_size(file), good_size);
  EXPECT_FALSE(fs::exists(file.string() + ".partial"));
  // Nothing to verify is no proof: a directory, an empty file.
  std::ofstream(controller.dir() / "empty.jsonl");
  for (const auto& nothing : {controller.dir(), controller.dir() / "empty.jsonl"})
    EXPECT_NE(controller.cli({"audit", "verify", "--file", nothing.string()}).exit_code, 0)
        << nothing;
  // What a reader sees is what was hashed: a forged `details` beside the hashed details_text.
  {
    std::ifstream in(file);
    std::string first;
    std::getline(in, first);
    auto entry = json::parse(first);
    entry["details"] = {{"forged", true}};
    std::ofstream(controller.dir() / "forged.jsonl") << entry.dump() << "\n";
    const auto forged =
        controller.cli({"audit", "verify", "--file", (controller.dir() / "forged.jsonl").string()});
    EXPECT_NE(forged.exit_code, 0);
    EXPECT_NE(forged.err.find("'details' is not what 'details_text' holds"), std::string::npos)
        << forged.out << forged.err;
  }
  // An export edited after the fact fails offline at the edited entry.
  std::string text;
  {
    std::ifstream in(file);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto second = text.find('\n') + 1;
  const auto actor = text.find("\"actor\":\"", second);
  ASSERT_NE(actor, std::string::npos);
  text.insert(actor + 9, "x");
  std::ofstream(file, std::ios::trunc) << text;
  const auto edited = controller.cli({"audit", "verify", "--file", file.string(), "--json"});
  EXPECT_EQ(edited.exit_code, 1) << edited.out << edited.err;
  EXPECT_EQ(json::parse(edited.out)["first_broken_seq"], 2) << edited.out;

  // Someone with database access rewrites who asked for the second action.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((controller.data_dir() / "riposte.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE audit_log SET actor = 'nobody' WHERE seq = 2", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  const auto broken = controller.cli({"audit", "verify", "--json"});
  EXPECT_EQ(broken.exit_code, 1);
  const auto report = json::parse(broken.out);
  EXPECT_FALSE(report["ok"].get<bool>());
  EXPECT_EQ(report["first_broken_seq"], 2);
  EXPECT_EQ(report["entries_verified"], 1);
}

}  // namespace
}  // namespace riposte::testing
