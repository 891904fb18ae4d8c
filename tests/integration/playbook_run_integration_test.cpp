// Playbooks run for real: the controller, a real agent on this host, real processes acted on,
// approvals given (and refused) by other operators through the CLI, notifications received by
// an HTTPS webhook server, and a controller killed in the middle of a run. Each shipped playbook
// (playbooks/*.yaml, unchanged) is run end to end.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "common/utf8.h"
#include "protocol/crypto.h"
#include "tests/build_paths.h"
#include "tests/integration/harness.h"
#include "tests/netns.h"
#include "tests/test_dir.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kSource = fs::path(::riposte::testing::source_dir());

// A chat/ticketing webhook: tests/integration/webhook_receiver.py over TLS 1.3 with a
// certificate made here for localhost; the controller trusts it through webhook_ca_file.
class WebhookReceiver {
 public:
  explicit WebhookReceiver(const fs::path& dir) : dir_(dir) {
    const auto made =
        run_command({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                     "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
                     (dir / "hook.key").string(), "-out", cert().string()});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"python3",
                                 (kSource / "tests/integration/webhook_receiver.py").string(),
                                 cert().string(), (dir / "hook.key").string(),
                                 (dir / "hook.port").string(), (dir / "hook.out").string()},
        dir / "hook.log");
    EXPECT_TRUE(wait_until([&] { return !read_text(dir / "hook.port").empty(); }, 10s))
        << process_->log_text();
    port_ = read_text(dir / "hook.port");
  }
  fs::path cert() const { return dir_ / "hook.pem"; }
  std::string url(const std::string& path) const { return "https://localhost:" + port_ + path; }
  // Every POST received so far: {"path": ..., "body": ...}.
  std::vector<json> posts() const {
    std::vector<json> out;
    std::istringstream lines(read_text(dir_ / "hook.out"));
    for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line));
    return out;
  }

 private:
  fs::path dir_;
  std::string port_;
  std::unique_ptr<ChildProcess> process_;
};

// Steps of run `r` by id.
std::map<std::string, json> steps_of(const json& r) {
  std::map<std::string, json> by_step;
  for (const auto& s : r["steps"]) by_step[s["step"]] = s;
  return by_step;
}

char process_state(pid_t pid) {
  const auto stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}

class PlaybookRuns : public ::testing::Test {
 protected:
  // The controller with the asset map (this host: lab, low criticality), playbooks from
  // `playbooks_dir`, webhooks pointing at the receiver, and an agent on this host.
  void start(const fs::path& playbooks_dir, const std::string& extra_config = "") {
    std::ofstream(controller.dir() / "assets.yaml")
        << "assets:\n  - name: this-host\n    hostname: " << this_hostname()
        << "\n    application: test-suite\n    environment: lab\n    criticality: low\n"
           "    owner: qa\n    stakeholders: [qa@example.com]\n";
    controller.add_config(
        "assets: assets.yaml\nalerts:\n  validation_timeout: 20s\n"
        "playbooks:\n  dir: " +
        playbooks_dir.string() + "\n  responder_webhook: " + hook.url("/responder") +
        "\n  webhooks: {soc: " + hook.url("/soc") +
        "}\n  webhook_ca_file: " + hook.cert().string() + "\n" + extra_config);
    controller.start();
    std::ofstream(controller.dir() / "agent.yaml") << "connection_sample_interval: 200ms\n";
    agent = controller.start_online_agent(controller.dir() / "agent", "agent.log",
                                          {"--config", (controller.dir() / "agent.yaml").string()});
    // The SIEM forwarder the alerts come from, trusted to let playbooks act automatically.
    const auto siem =
        controller.cli_json({"integrations", "create", "siem", "--max-mode", "auto", "--json"});
    EXPECT_EQ(siem["role"], "ingest");
    EXPECT_EQ(siem["max_mode"], "auto");
    siem_token = siem["token"].get<std::string>();
  }
  std::string operator_token(const std::string& name, const std::string& role) {
    const auto made = controller.cli_json({"operators", "create", name, "--role", role});
    return made["token"].get<std::string>();
  }
  // Submits `alert` (one or a list) as the SIEM integration, or with `token` (a person's).
  void submit(const json& alert, const std::string& token = "") {
    const auto file = controller.dir() / "alert.json";
    std::ofstream(file) << alert.dump();
    const auto r =
        controller.cli_as(token.empty() ? siem_token : token, {"alerts", "submit", file.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // The run of `playbook` for `alert_id`, once it exists.
  json run_for(const std::string& alert_id, const std::string& playbook) {
    json found;
    wait_until(
        [&] {
          const auto runs = controller.cli_json({"runs", "list"});  // outlives the loop
          for (const auto& r : runs["runs"]) {
            if (r["alert_id"] == alert_id && r["playbook"] == playbook) found = r;
          }
          return !found.is_null();
        },
        60s);
    return found;
  }
  json run(const std::string& id) { return controller.cli_json({"runs", "show", id}); }
  json wait_for_run(const std::string& id, const std::function<bool(const json&)>& done,
                    std::chrono::seconds timeout = 90s) {
    json r;
    const bool ok = wait_until(
        [&] {
          r = run(id);
          return done(r);
        },
        timeout);
    EXPECT_TRUE(ok) << r.dump(2) << "\n" << controller.process().log_text();
    return r;
  }
  json pending_approval(const std::string& run_id) {
    json found;
    wait_until(
        [&] {
          const auto pending = controller.cli_json({"approvals", "list"});
          for (const auto& a : pending["approvals"])
            if (a["run_id"] == run_id) found = a;
          return !found.is_null();
        },
        60s);
    return found;
  }
  // A copy of one shipped playbook, alone in a directory (other playbooks would also trigger),
  // with the rule files shipped beside them.
  fs::path shipped(const std::string& file) {
    const auto dir = controller.dir() / "playbooks";
    fs::create_directories(dir);
    fs::copy_file(kSource / "playbooks" / file, dir / file);
    fs::copy(kSource / "playbooks" / "rules", dir / "rules", fs::copy_options::recursive);
    return dir;
  }

  ControllerUnderTest controller;
  std::string siem_token;
  WebhookReceiver hook{controller.dir()};
  ControllerUnderTest::OnlineAgent agent;
};

// Raised now: a process that started after its alert cannot be the alert's process.
json ecs_process_alert(const std::string& id, pid_t pid) {
  return json{{"@timestamp", alert_time_now()},
              {"kibana.alert.uuid", id},
              {"kibana.alert.rule.name", "Reverse shell"},
              {"kibana.alert.severity", "critical"},
              {"host", {{"name", this_hostname()}}},
              {"process", {{"pid", pid}, {"executable", "/usr/bin/bash"}}}};
}

TEST_F(PlaybookRuns, SuspiciousProcessIsSuspendedCapturedScannedCollectedThenKilledOnApproval) {
  start(shipped("suspicious_process.yaml"));
  const auto rita = operator_token("rita", "responder");
  // The "suspicious" process: a shell running a dropped script, holding a reverse-shell string
  // in its memory.
  const auto dropper = controller.dir() / "dropper.sh";
  std::ofstream(dropper) << "X=/dev/tcp/203.0.113.9/4444; sleep 300; echo \"$X\"\n";
  ChildProcess shell({"/bin/bash", dropper.string()}, controller.dir() / "shell.log");
  const pid_t pid = shell.pid();
  submit(ecs_process_alert("alert-shell", pid));

  const auto started = run_for("alert-shell", "suspicious-process");
  ASSERT_FALSE(started.is_null()) << controller.cli({"alerts", "show", "alert-shell", "--json"}).out
                                  << controller.process().log_text();
  EXPECT_EQ(started["started_by"], "controller");  // the trigger started it
  const auto approval = pending_approval(started["id"]);
  ASSERT_FALSE(approval.is_null());
  EXPECT_EQ(approval["what"]["action"], "process.kill");
  EXPECT_EQ(approval["impact"][0]["stakeholders"][0], "qa@example.com");
  // Evidence is preserved before anything is killed: suspended, captured, scanned, collected.
  EXPECT_EQ(process_state(pid), 'T');
  auto r = run(started["id"]);
  std::map<std::string, json> by_step;
  for (const auto& s : r["steps"]) by_step[s["step"]] = s;
  EXPECT_EQ(by_step["suspend"]["outcome"], "succeeded") << r.dump(2);
  EXPECT_EQ(by_step["capture"]["outcome"], "succeeded");
  EXPECT_EQ(by_step["scan"]["outcome"], "succeeded");
  EXPECT_EQ(by_step["scan"]["output"]["result"]["matches"][0]["rule"], "reverse_shell_strings")
      << by_step["scan"].dump(2);
  EXPECT_EQ(by_step["collect"]["outcome"], "succeeded");
  const auto collected = by_step["collect"]["output"]["result"];
  const auto bash_hash = run_command({"sha256sum", collected["path"].get<std::string>()});
  EXPECT_EQ(bash_hash.out.substr(0, 64), collected["sha256"]);
  // bash is the interpreter; the evidence that matters is the script it runs, collected too.
  EXPECT_EQ(by_step["has_script"]["outcome"], "then -> collect_script");
  EXPECT_EQ(by_step["collect_script"]["outcome"], "succeeded") << r.dump(2);
  const auto script = by_step["collect_script"]["output"]["result"];
  EXPECT_EQ(script["path"], dropper.string());
  EXPECT_EQ(script["sha256"], run_command({"sha256sum", dropper.string()}).out.substr(0, 64));
  EXPECT_EQ(script["interpreter"], "/usr/bin/bash");
  const auto alert = controller.cli_json({"alerts", "show", "alert-shell"});
  EXPECT_EQ(alert["enrichment"]["process"]["script"], dropper.string()) << alert.dump(2);
  EXPECT_EQ(alert["enrichment"]["process"]["script_sha256"], script["sha256"]);
  EXPECT_TRUE(shell.running());

  // rita approves through the CLI; the kill runs with her name signed into it.
  // With --wait the command returns once what the approval let go has ended: the kill done.
  const auto approved =
      controller.cli_as(rita, {"approvals", "approve", approval["id"], "--reason",
                               "confirmed reverse shell", "--wait", "--timeout", "60s"});
  ASSERT_EQ(approved.exit_code, 0) << approved.out << approved.err;
  EXPECT_NE(approved.out.find("process.kill succeeded"), std::string::npos) << approved.out;
  EXPECT_NE(approved.out.find("is succeeded"), std::string::npos) << approved.out;
  r = controller.cli_json({"runs", "show", started["id"]});
  EXPECT_EQ(r["state"], "succeeded") << "--wait returned before the run had";
  EXPECT_TRUE(shell.wait_for_exit(10s).has_value());
  // The chat webhook answers like many do (no Content-Length, closed without close_notify):
  // that is a delivered notification, not a failed one.
  EXPECT_EQ(steps_of(r)["notify_done"]["outcome"], "notified") << r.dump(2);
  bool kill_signed_by_rita = false;
  for (const auto& a : r["actions"])
    if (a["kind"] == "process.kill") kill_signed_by_rita = a["approver"] == "rita";
  EXPECT_TRUE(kill_signed_by_rita) << r["actions"].dump(2);
  const auto the_case = controller.cli_json({"cases", "show", r["case_id"]});
  EXPECT_EQ(the_case["status"], "contained");
  EXPECT_TRUE(the_case["time_to_contain_s"].is_number());

  // The responders heard that a decision waited, with the console's link to it; the chat
  // webhook heard "contained" with the case link; the responder got the run summary.
  ASSERT_TRUE(wait_until([&] { return hook.posts().size() >= 3; }, 10s));
  const auto posts = hook.posts();
  EXPECT_EQ(posts[0]["path"], "/responder");
  EXPECT_EQ(posts[0]["body"]["event"], "approval_requested");
  EXPECT_TRUE(posts[0]["body"]["approval_link"].get<std::string>().ends_with(
      "/ui/approvals/" + approval["id"].get<std::string>()))
      << posts[0].dump();
  EXPECT_EQ(posts[0]["body"]["what"]["action"], "process.kill");
  EXPECT_EQ(posts[1]["path"], "/soc");
  EXPECT_NE(posts[1]["body"]["text"].get<std::string>().find("contained"), std::string::npos);
  EXPECT_NE(posts[1]["body"]["text"].get<std::string>().find(r["case_id"].get<std::string>()),
            std::string::npos);
  EXPECT_EQ(posts[2]["path"], "/responder");
  EXPECT_EQ(posts[2]["body"]["state"], "succeeded");

  // A responder downloads the collected script; the report names who did.
  const auto script_sha = script["sha256"].get<std::string>();
  ASSERT_EQ(
      controller
          .cli({"evidence", "get", script_sha, "-o", (controller.dir() / "script.bin").string()})
          .exit_code,
      0);
  // The report reconstructs it: every action with its signature and what it did in words, every
  // evidence object with its hash, the approval and the timeline.
  const auto report = controller.cli({"cases", "report", r["case_id"], "--format", "md"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  for (const char* expected :
       {"suspicious-process", "process.suspend", "memory.capture", "file.collect", "process.kill",
        "rita", "confirmed reverse shell", "approval.approved", "alert received", "## Evidence",
        "1 YARA match: reverse\\_shell\\_strings on pid", "B of memory (", "B core",
        script_sha.c_str()})
    EXPECT_NE(report.out.find(expected), std::string::npos) << expected << "\n" << report.out;
  const auto full =
      json::parse(controller.cli({"cases", "report", r["case_id"], "--format", "json"}).out);
  // The link points where the CLI reached the API, port included (it once dropped the port).
  EXPECT_EQ(full["case"]["console_link"],
            "https://" + controller.api() + "/ui/cases/" + r["case_id"].get<std::string>());
  bool script_listed = false;
  for (const auto& e : full["evidence"]) {
    if (e["sha256"] != script_sha) continue;
    script_listed = true;
    ASSERT_EQ(e["downloads"].size(), 1u) << e.dump();
    EXPECT_TRUE(e["stored"].get<bool>());
  }
  EXPECT_TRUE(script_listed) << full["evidence"].dump(2);
  for (const auto& a : full["actions"]) {
    if (a["kind"] == "process.kill") {
      EXPECT_NE(a["outcome"].get<std::string>().find("pid "), std::string::npos) << a.dump(2);
    }
  }
  std::int64_t previous = 0;
  for (const auto& e : full["timeline"]) {
    EXPECT_GE(e["at_ms"].get<std::int64_t>(), previous);
    previous = e["at_ms"].get<std::int64_t>();
  }
  const auto html = controller.cli({"cases", "report", r["case_id"], "--format", "html"});
  EXPECT_NE(html.out.find("<!DOCTYPE html>"), std::string::npos);
  // A document to read: raw records folded away, not dumped.
  EXPECT_NE(html.out.find("<h2>Evidence</h2>"), std::string::npos);
  EXPECT_NE(html.out.find("<details><summary>the whole report as JSON</summary>"),
            std::string::npos);
  EXPECT_EQ(html.out.find("</pre>\n</body>"), std::string::npos);
  const auto stats = controller.cli_json({"cases", "stats", "--since", "1d"});
  EXPECT_GE(stats["time_to_contain"]["count"].get<int>(), 1);
}

// Any user on a host can give a process, and a script, a name that is not UTF-8. Nobody's shell
// names itself "\xff\xfe-miner" and runs a script named drop\xff\xfe.sh: the alert is enriched,
// the shipped playbook suspends, captures, scans and collects it (the script too), the case report
// and the action list answer, the controller keeps running, and the names are shown as wire text
// (common/utf8.h). A responder hashing the file by the name the shell gives it gets its hash.
TEST_F(PlaybookRuns, NamesThatAreNotUtf8GoThroughEnrichmentThePlaybookAndTheReport) {
  start(shipped("suspicious_process.yaml"));
  const std::string fffd = "\xEF\xBF\xBD";
  TempDir world;  // nobody must read the script
  fs::permissions(world.path(), fs::perms(0755));
  const auto dropper = world.path() / "drop\xff\xfe.sh";
  std::ofstream(dropper) << "printf '\\377\\376\\033[2J-miner' > /proc/$$/comm\n"
                            "X=/dev/tcp/203.0.113.9/4444; sleep 300; echo \"$X\"\n";
  fs::permissions(dropper, fs::perms(0644));
  ChildProcess shell({"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                      "/bin/bash", dropper.string()},
                     controller.dir() / "shell.log");
  const pid_t pid = shell.pid();
  ASSERT_TRUE(wait_until(
      [&] {
        return read_text("/proc/" + std::to_string(pid) + "/comm") == "\xff\xfe\x1b[2J-miner\n";
      },
      10s));
  submit(ecs_process_alert("alert-odd-names", pid));

  const auto started = run_for("alert-odd-names", "suspicious-process");
  ASSERT_FALSE(started.is_null()) << controller.cli({"alerts", "show", "alert-odd-names"}).out
                                  << controller.process().log_text();
  ASSERT_FALSE(pending_approval(started["id"]).is_null()) << run(started["id"]).dump(2);
  const auto alert = controller.cli_json({"alerts", "show", "alert-odd-names"});
  const auto& process = alert["enrichment"]["process"];
  EXPECT_EQ(process["name"], fffd + "ff" + fffd + "fe\x1b[2J-miner") << alert.dump(2);
  EXPECT_EQ(process["user"], "nobody");
  const auto wire_script = world.path().string() + "/drop" + fffd + "ff" + fffd + "fe.sh";
  EXPECT_EQ(process["script"], wire_script);
  const auto script_sha = run_command({"sha256sum", dropper.string()}).out.substr(0, 64);
  EXPECT_EQ(process["script_sha256"], script_sha);

  const auto r = run(started["id"]);
  auto by_step = steps_of(r);
  for (const char* step : {"suspend", "capture", "scan", "collect", "collect_script"})
    EXPECT_EQ(by_step[step]["outcome"], "succeeded") << step << "\n" << r.dump(2);
  EXPECT_EQ(by_step["scan"]["output"]["result"]["matches"][0]["rule"], "reverse_shell_strings");
  EXPECT_EQ(by_step["collect_script"]["output"]["result"]["path"], wire_script);
  EXPECT_EQ(by_step["collect_script"]["output"]["result"]["sha256"], script_sha);

  // The lists and the report answer while such actions are on them.
  const auto listed = controller.cli({"action", "list", "--json"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find(fffd + "ff"), std::string::npos);
  for (const char* format : {"md", "json", "html"}) {
    const auto report = controller.cli({"cases", "report", r["case_id"], "--format", format});
    EXPECT_EQ(report.exit_code, 0) << format << ": " << report.err;
    EXPECT_NE(report.out.find("fe.sh"), std::string::npos) << format;
    // Read in a terminal: the escape sequence in the process name is shown, not obeyed.
    EXPECT_EQ(report.out.find('\x1b'), std::string::npos) << format;
  }

  // The path as the shell has it (raw bytes on the command line) names the same file.
  const auto hashed = controller.cli({"action", "run", "file.hash", "--agent", agent.id, "--param",
                                      "path=" + dropper.string(), "--wait", "--json"});
  ASSERT_EQ(hashed.exit_code, 0) << hashed.err << hashed.out;
  const auto answer = last_json_line(hashed.out);
  EXPECT_EQ(answer["state"], "succeeded") << hashed.out;
  EXPECT_EQ(answer["result"]["sha256"], script_sha) << hashed.out;
  EXPECT_EQ(answer["result"]["path"], wire_script);
  // The name as the controller shows it, pasted, names the same file. A decoy whose raw name is
  // that very text (U+FFFD and "ff", valid UTF-8) is another file: the CLI takes UTF-8 as wire
  // text, so the decoy is reached by its own wire text (as the controller would list it), and
  // pasting the real file's name never reaches the decoy.
  const auto decoy = world.path() / ("drop" + fffd + "ff" + fffd + "fe.sh");
  std::ofstream(decoy) << "decoy\n";
  for (const auto& [path, sha] : std::vector<std::pair<std::string, std::string>>{
           {wire_script, script_sha},
           {to_wire_text(decoy.string()),
            run_command({"sha256sum", decoy.string()}).out.substr(0, 64)}}) {
    const auto by_name = controller.cli({"action", "run", "file.hash", "--agent", agent.id,
                                         "--param", "path=" + path, "--wait", "--json"});
    ASSERT_EQ(by_name.exit_code, 0) << by_name.err << by_name.out;
    EXPECT_EQ(last_json_line(by_name.out)["result"]["sha256"], sha) << path;
  }
  EXPECT_TRUE(controller.process().running());
}

TEST_F(PlaybookRuns, MaliciousIpKillsTheProcessThatTalkedOnApprovalAndADeniedQuarantineEndsTheRun) {
  // An outside address (tests/netns.h) and a shell on this host that connects to it and stays.
  riposte::testing::OutsideNetwork outside(177);
  const auto bad_ip = outside.address();
  std::ofstream(controller.dir() / "bad-ips.txt") << bad_ip << "\n";
  start(shipped("malicious_ip.yaml"), "intel:\n  feeds:\n    - {name: local, path: " +
                                          (controller.dir() / "bad-ips.txt").string() +
                                          ", format: list}\n");
  const auto rita = operator_token("rita", "responder");
  ChildProcess talker(
      {"/bin/bash", "-c",
       "exec 3<>/dev/tcp/" + bad_ip + "/" + std::to_string(outside.port()) + "; sleep 300"},
      controller.dir() / "talker.log");
  // Until the agent's connection history has it.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto r = controller.cli({"action", "run", "--agent", agent.id, "network.connections",
                                       "--param", "history_address=" + bad_ip, "--wait", "--json"});
        return r.out.find("\"history\":[{") != std::string::npos ||
               r.out.find(std::to_string(talker.pid())) != std::string::npos;
      },
      20s));

  submit(json{{"@timestamp", "2026-11-29T10:00:00Z"},
              {"kibana.alert.uuid", "alert-c2"},
              {"kibana.alert.rule.name", "Connection to Known Malicious IP"},
              {"kibana.alert.severity", "high"},
              {"host", {{"name", this_hostname()}}},
              {"destination", {{"ip", bad_ip}, {"port", 443}}}});
  const auto started = run_for("alert-c2", "malicious-ip");
  ASSERT_FALSE(started.is_null()) << controller.process().log_text();
  auto kill = pending_approval(started["id"]);
  ASSERT_FALSE(kill.is_null());
  EXPECT_EQ(kill["what"]["action"], "process.kill");
  EXPECT_EQ(kill["what"]["parameters"]["target"]["pid"], talker.pid());
  ASSERT_EQ(controller.cli_as(rita, {"approvals", "approve", kill["id"]}).exit_code, 0);
  EXPECT_TRUE(talker.wait_for_exit(20s).has_value());

  // Quarantining this test machine is refused by rita: the run ends there, denied.
  json quarantine;
  ASSERT_TRUE(wait_until(
      [&] {
        const auto pending = controller.cli_json({"approvals", "list"});
        for (const auto& a : pending["approvals"])
          if (a["what"]["action"] == "network.quarantine") quarantine = a;
        return !quarantine.is_null();
      },
      30s));
  const auto denied = controller.cli_as(rita, {"approvals", "deny", quarantine["id"]});
  EXPECT_NE(denied.exit_code, 0);  // --reason is required
  ASSERT_EQ(controller
                .cli_as(rita, {"approvals", "deny", quarantine["id"], "--reason",
                               "CI machine, not the attacker's"})
                .exit_code,
            0);
  // A person's "no" ends the run as denied (not a failure to escalate, not asked again).
  const auto r = wait_for_run(started["id"], [](const json& x) { return x["state"] == "denied"; });
  EXPECT_NE(r["error"].get<std::string>().find("denied by rita"), std::string::npos);
  std::vector<std::string> kinds;
  for (const auto& a : r["actions"]) kinds.push_back(a["kind"]);
  EXPECT_EQ(kinds, (std::vector<std::string>{"network.connections", "network.connections",
                                             "process.tree", "process.kill"}));
  const auto the_case = controller.cli_json({"cases", "show", r["case_id"]});
  EXPECT_EQ(the_case["status"], "in_progress");
  std::string notes;
  for (const auto& n : the_case["notes"]) notes += n["text"].get<std::string>() + "\n";
  EXPECT_NE(notes.find("Qualified: 1 host(s) connected to " + bad_ip), std::string::npos) << notes;
  EXPECT_EQ(
      controller
          .cli_json({"approvals", "list", "--state", "any", "--case", r["case_id"]})["approvals"]
          .size(),
      2u);
}

TEST_F(PlaybookRuns, IocConfidenceRoutesEachAlertByHowManyFeedsConfirmIt) {
  std::ofstream(controller.dir() / "feed-a.txt") << "evil-a.test\nevil-b.test\n";
  std::ofstream(controller.dir() / "feed-b.txt") << "evil-b.test\n";
  start(shipped("ioc_confidence.yaml"),
        "intel:\n  feeds:\n    - {name: a, path: " + (controller.dir() / "feed-a.txt").string() +
            ", format: list}\n    - {name: b, path: " + (controller.dir() / "feed-b.txt").string() +
            ", format: list}\n");
  const std::map<std::string, std::string> expected = {
      {"evil-b.test", "in_progress"},  // both feeds: respond
      {"evil-a.test", "in_progress"},  // one of two: an analyst
      {"fine.test", "false_positive"}};
  for (const auto& [domain, status] : expected) {
    submit(json{{"@timestamp", "2026-11-29T10:00:00Z"},
                {"kibana.alert.uuid", "alert-" + domain},
                {"kibana.alert.rule.name", "DNS lookup"},
                {"kibana.alert.severity", "medium"},
                {"host", {{"name", "host-" + domain}}},
                {"dns", {{"question", {{"name", domain}}}}}});
  }
  for (const auto& [domain, status] : expected) {
    const auto started = run_for("alert-" + domain, "ioc-confidence");
    ASSERT_FALSE(started.is_null()) << domain;
    const auto r =
        wait_for_run(started["id"], [](const json& x) { return x["state"] == "succeeded"; });
    const auto the_case = controller.cli_json({"cases", "show", r["case_id"]});
    EXPECT_EQ(the_case["status"], status) << domain;
    const auto note = the_case["notes"].back()["text"].get<std::string>();
    if (domain == "evil-b.test") {
      EXPECT_TRUE(note.starts_with("Respond:")) << note;
      EXPECT_EQ(the_case["severity"], "high");
    } else if (domain == "evil-a.test") {
      EXPECT_TRUE(note.starts_with("For an analyst:")) << note;
    } else {
      EXPECT_TRUE(note.starts_with("Discarded:")) << note;
    }
  }
}

constexpr const char* kKillPlaybook = R"(
name: kill-it
version: "1"
trigger:
  observable_types: [process]
inputs:
  pid: "{{ enrichment.process.pid }}"
  ticks: "{{ enrichment.process.start_ticks }}"
steps:
  - id: kill
    kind: action
    action: process.kill
    mode: approve
    target: host
    parameters: {target: {pid: "{{ inputs.pid }}", start_ticks: "{{ inputs.ticks }}"}}
    timeout: 1m
  - {id: done, kind: case, status: contained}
)";

TEST_F(PlaybookRuns, AnalystSimulationTouchesNothingAndApprovalNeedsAnotherResponder) {
  const auto dir = controller.dir() / "manual";
  fs::create_directories(dir);
  std::ofstream(dir / "kill.yaml") << kKillPlaybook;
  start(dir, "  auto_start: false\n");
  const auto ann = operator_token("ann", "analyst");
  const auto rex = operator_token("rex", "responder");
  const auto rita = operator_token("rita", "responder");
  ChildProcess victim({"sleep", "300"}, controller.dir() / "victim.log");
  submit(ecs_process_alert("alert-victim", victim.pid()));
  ASSERT_TRUE(wait_until(
      [&] {
        return controller.cli_json({"alerts", "show", "alert-victim"})["enrichment"].contains(
            "enriched_at");
      },
      40s));

  // The analyst may only try it: every action simulated, signed and recorded, none sent.
  const auto refused =
      controller.cli_as(ann, {"playbooks", "run", "kill-it", "--alert", "alert-victim", "--json"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("needs the responder role"), std::string::npos) << refused.err;
  const auto simulated = json::parse(controller
                                         .cli_as(ann, {"playbooks", "run", "kill-it", "--alert",
                                                       "alert-victim", "--simulate", "--json"})
                                         .out);
  auto r = wait_for_run(simulated["id"], [](const json& x) { return x["state"] == "succeeded"; });
  ASSERT_EQ(r["actions"].size(), 1u);
  EXPECT_EQ(r["actions"][0]["state"], "simulated");
  EXPECT_EQ(r["steps"][0]["mode"], "simulate");
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(victim.running());
  EXPECT_EQ(agent.process->log_text().find(r["actions"][0]["id"].get<std::string>()),
            std::string::npos);  // the agent never heard of it
  EXPECT_EQ(controller.cli({"action", "show", r["actions"][0]["id"], "--json"}).exit_code, 0);

  // The real run: rex starts it, so rex cannot approve it, nor can an analyst.
  const auto real = json::parse(
      controller.cli_as(rex, {"playbooks", "run", "kill-it", "--alert", "alert-victim", "--json"})
          .out);
  const auto approval = pending_approval(real["id"]);
  ASSERT_FALSE(approval.is_null());
  EXPECT_EQ(approval["requested_by"], "rex");
  const auto self = controller.cli_as(rex, {"approvals", "approve", approval["id"]});
  EXPECT_NE(self.exit_code, 0);
  EXPECT_NE(self.err.find("rex asked for this run"), std::string::npos) << self.err;
  const auto analyst = controller.cli_as(ann, {"approvals", "approve", approval["id"]});
  EXPECT_NE(analyst.err.find("needs the responder role"), std::string::npos) << analyst.err;
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(victim.running());
  ASSERT_EQ(controller.cli_as(rita, {"approvals", "approve", approval["id"]}).exit_code, 0);
  r = wait_for_run(real["id"], [](const json& x) { return x["state"] == "succeeded"; });
  EXPECT_TRUE(victim.wait_for_exit(10s).has_value());
  EXPECT_EQ(r["actions"][0]["approver"], "rita");
  EXPECT_EQ(r["actions"][0]["requester"], "rex");
  // Simulated and real actions side by side in the case's report.
  const auto report =
      json::parse(controller.cli({"cases", "report", r["case_id"], "--format", "json"}).out);
  std::set<std::string> states;
  for (const auto& a : report["actions"]) states.insert(a["state"]);
  EXPECT_TRUE(states.contains("simulated") && states.contains("succeeded"))
      << report["actions"].dump(2);
}

TEST_F(PlaybookRuns, RunResumesAfterTheControllerIsKilledWithoutRepeatingAnAction) {
  const auto dir = controller.dir() / "slow";
  fs::create_directories(dir);
  std::ofstream(dir / "slow.yaml") << slow_playbook("4s");
  start(dir, "  auto_start: false\n");
  submit(ecs_process_alert("alert-slow", ::getpid()));
  const auto started = controller.cli_json({"playbooks", "run", "slow", "--alert", "alert-slow"});
  wait_for_run(started["id"], [](const json& x) { return x["waiting_for"] == "timer"; });
  controller.kill_hard();  // SIGKILL in the middle of the wait
  controller.start(/*same_ports=*/true);
  const auto r =
      wait_for_run(started["id"], [](const json& x) { return x["state"] == "succeeded"; });
  std::vector<std::string> kinds;
  for (const auto& a : r["actions"]) {
    kinds.push_back(a["kind"]);
    EXPECT_EQ(a["state"], "succeeded");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"host.facts", "process.list"}));
  std::vector<std::string> steps;
  for (const auto& s : r["steps"]) steps.push_back(s["step"]);
  EXPECT_EQ(steps, (std::vector<std::string>{"facts", "pause", "listing", "done"}));
  EXPECT_NE(controller.process().log_text().find("resuming 1 unfinished run"), std::string::npos);
}

// Bounded authority (issue 17), with the shipped suspicious-process playbook and real processes.

bool audit_has(ControllerUnderTest& controller, const std::string& event,
               const std::string& actor) {
  const auto out = controller.cli({"audit", "export"}).out;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const auto e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("event", "") == event && e.value("actor", "") == actor)
      return true;
  }
  return false;
}

TEST_F(PlaybookRuns, APersonsAlertWaitsForAnotherPersonWhoMayCancelAndUndo) {
  start(shipped("suspicious_process.yaml"));
  const auto rex = operator_token("rex", "responder");
  const auto rita = operator_token("rita", "responder");
  ChildProcess victim({"sleep", "300"}, controller.dir() / "victim.log");
  submit(ecs_process_alert("alert-rex", victim.pid()), rex);  // a person submits it
  const auto started = run_for("alert-rex", "suspicious-process");
  ASSERT_FALSE(started.is_null()) << controller.process().log_text();
  EXPECT_EQ(started["started_by"], "controller");
  EXPECT_EQ(started["requested_by"], "rex");
  // This host's asset ceiling is auto, yet the suspend waits: the alert is a person's.
  auto approval = pending_approval(started["id"]);
  ASSERT_FALSE(approval.is_null());
  EXPECT_EQ(approval["what"]["action"], "process.suspend");
  EXPECT_NE(approval["reason"].get<std::string>().find("submitted by a person (rex"),
            std::string::npos)
      << approval.dump(2);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(process_state(victim.pid()), 'S');
  // rex asked for this run through his alert: he cannot approve it, and the attempt is audited.
  const auto self = controller.cli_as(rex, {"approvals", "approve", approval["id"]});
  EXPECT_NE(self.exit_code, 0);
  EXPECT_NE(self.err.find("rex asked for this run"), std::string::npos) << self.err;
  EXPECT_TRUE(audit_has(controller, "approval.approve_refused", "rex"));
  ASSERT_EQ(controller.cli_as(rita, {"approvals", "approve", approval["id"]}).exit_code, 0);
  EXPECT_TRUE(wait_until([&] { return process_state(victim.pid()) == 'T'; }, 20s));

  // A second run of the playbook on the same alert is refused while this one is unfinished.
  const auto again =
      controller.cli_as(rita, {"playbooks", "run", "suspicious-process", "--alert", "alert-rex"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("an unfinished run " + started["id"].get<std::string>()),
            std::string::npos)
      << again.err;

  // The next step (capture) waits for approval too; rita cancels the run instead: its pending
  // approval is cancelled and the suspended process resumed.
  approval = json();
  ASSERT_TRUE(wait_until(
      [&] {
        const auto pending = controller.cli_json({"approvals", "list"});
        for (const auto& a : pending["approvals"])
          if (a["run_id"] == started["id"]) approval = a;
        return !approval.is_null();
      },
      30s));
  const auto cancelled = controller.cli_as(
      rita, {"runs", "cancel", started["id"], "--reason", "test host, not an attacker"});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  const auto r =
      wait_for_run(started["id"], [](const json& x) { return x["state"] == "cancelled"; });
  EXPECT_TRUE(wait_until([&] { return process_state(victim.pid()) == 'S'; }, 10s));
  EXPECT_EQ(steps_of(r)["undo:suspend"]["outcome"], "succeeded") << r.dump(2);
  EXPECT_EQ(controller.cli_json({"approvals", "show", approval["id"]})["state"], "cancelled");
  EXPECT_TRUE(audit_has(controller, "run.cancelled", "rita"));
}

TEST_F(PlaybookRuns, ADeniedKillResumesTheSuspendedProcessAndEvidenceIsForResponders) {
  start(shipped("suspicious_process.yaml"));
  const auto rita = operator_token("rita", "responder");
  const auto vera = operator_token("vera", "viewer");
  ChildProcess victim({"sleep", "300"}, controller.dir() / "victim.log");
  submit(ecs_process_alert("alert-deny", victim.pid()));  // the SIEM, trusted with auto
  const auto started = run_for("alert-deny", "suspicious-process");
  ASSERT_FALSE(started.is_null()) << controller.process().log_text();
  const auto kill = pending_approval(started["id"]);
  ASSERT_FALSE(kill.is_null());
  EXPECT_EQ(kill["what"]["action"], "process.kill");
  EXPECT_EQ(process_state(victim.pid()), 'T');

  // The memory image: a viewer sees its hash, size and custody, not its bytes.
  std::string image;
  json capture;
  const auto so_far = run(started["id"]);  // named: a loop over a temporary's member dangles
  for (const auto& a : so_far["actions"])
    if (a["kind"] == "memory.capture") capture = a;
  ASSERT_FALSE(capture.is_null()) << so_far.dump(2);
  ASSERT_TRUE(wait_until(  // the image is uploaded after the capture's result
      [&] {
        const auto shown = controller.cli_json({"action", "show", capture["id"]});
        for (const auto& e : shown["evidence"])
          if (e["stored"] == true) image = e["sha256"];
        return !image.empty();
      },
      30s))
      << controller.cli({"action", "show", capture["id"], "--json"}).out;
  const auto as_viewer =
      controller.cli_as(vera, {"evidence", "get", image, "-o", (controller.dir() / "v").string()});
  EXPECT_NE(as_viewer.exit_code, 0);
  EXPECT_NE(as_viewer.err.find("needs the responder role"), std::string::npos) << as_viewer.err;
  EXPECT_FALSE(fs::exists(controller.dir() / "v"));
  EXPECT_EQ(controller.cli_as(vera, {"evidence", "show", image}).exit_code, 0);
  const auto as_responder =
      controller.cli_as(rita, {"evidence", "get", image, "-o", (controller.dir() / "r").string()});
  ASSERT_EQ(as_responder.exit_code, 0) << as_responder.err;
  EXPECT_EQ(crypto::sha256_file((controller.dir() / "r").string()).value(), image);

  // rita denies the kill: the run ends denied, the process runs again, and nobody is asked twice.
  ASSERT_EQ(controller.cli_as(rita, {"approvals", "deny", kill["id"], "--reason", "a test's sleep"})
                .exit_code,
            0);
  const auto r = wait_for_run(started["id"], [](const json& x) { return x["state"] == "denied"; });
  EXPECT_NE(r["error"].get<std::string>().find("denied by rita: a test's sleep"), std::string::npos)
      << r["error"];
  EXPECT_TRUE(wait_until([&] { return process_state(victim.pid()) == 'S'; }, 10s));
  EXPECT_EQ(steps_of(r)["undo:suspend"]["outcome"], "succeeded") << r.dump(2);
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(
      controller
          .cli_json({"approvals", "list", "--state", "any", "--case", r["case_id"]})["approvals"]
          .size(),
      1u);
  EXPECT_TRUE(victim.running());
}

constexpr const char* kFactsPlaybook = R"(
name: facts
version: "1"
trigger:
  observable_types: [process]
steps:
  - {id: facts, kind: action, action: host.facts, mode: auto, target: host}
)";

TEST_F(PlaybookRuns, TwentyAlertsOnOneHostActAutomaticallyOnlyUpToTheRateLimit) {
  const auto dir = controller.dir() / "facts";
  fs::create_directories(dir);
  std::ofstream(dir / "facts.yaml") << kFactsPlaybook;
  start(dir);
  json batch = json::array();
  for (int i = 0; i < 20; ++i) batch.push_back(ecs_process_alert(fmt::format("storm-{}", i), 1));
  submit(batch);  // one request, as in the attack
  json runs;
  ASSERT_TRUE(wait_until(
      [&] {
        runs = controller.cli_json({"runs", "list"})["runs"];
        int settled = 0;
        for (const auto& r : runs)
          settled += r["state"] == "succeeded" || r["waiting_for"] == "approval";
        return settled == 20;
      },
      60s))
      << runs.dump(2);
  int automatic = 0;
  for (const auto& r : runs) automatic += r["state"] == "succeeded";
  EXPECT_EQ(automatic, 5);  // autonomy.rate_limits.per_host default: 5 per 10 minutes
  const auto pending = controller.cli_json({"approvals", "list"})["approvals"];
  ASSERT_EQ(pending.size(), 15u);
  EXPECT_NE(pending[0]["reason"].get<std::string>().find("autonomy.rate_limits.per_host: 5"),
            std::string::npos)
      << pending[0].dump(2);

  // The backtest with this controller's configuration shows the same lowering.
  std::ofstream alerts(controller.dir() / "storm.jsonl");
  for (int i = 0; i < 7; ++i)
    alerts << controller.cli_json({"alerts", "show", fmt::format("storm-{}", i)}).dump() << "\n";
  alerts.close();
  const auto backtest =
      controller.cli({"playbooks", "test", (dir / "facts.yaml").string(), "--alerts",
                      (controller.dir() / "storm.jsonl").string(), "--config",
                      (controller.dir() / "controller.yaml").string()});
  ASSERT_EQ(backtest.exit_code, 0) << backtest.err;
  std::size_t lowered = 0;
  for (auto at = backtest.out.find("declared auto, effective approve"); at != std::string::npos;
       at = backtest.out.find("declared auto, effective approve", at + 1))
    ++lowered;
  EXPECT_EQ(lowered, 2u) << backtest.out;
  // The same from the running controller's policy.
  const auto live = controller.cli({"playbooks", "test", (dir / "facts.yaml").string(), "--alerts",
                                    (controller.dir() / "storm.jsonl").string(), "--controller"});
  ASSERT_EQ(live.exit_code, 0) << live.err;
  EXPECT_NE(live.out.find("per_host: 5"), std::string::npos) << live.out;
}
}  // namespace
}  // namespace riposte::testing
