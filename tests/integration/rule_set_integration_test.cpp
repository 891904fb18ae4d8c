// YARA rule sets of real size end to end: uploaded once through the CLI (past the API's ordinary
// body limit), named by hash in signed actions, fetched by the agent over its session and compiled
// once; and an enrolled agent's certificate used to ask for rule sets that are not its own.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "protocol/agent_channel.pb.h"
#include "protocol/crypto.h"
#include "protocol/framing.h"
#include "tests/build_paths.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_client.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

// A few megabytes of varied rules (text, hex with jumps, regular expressions, conditions on
// externals), the size of a public set, and one rule the test can make match.
std::string large_rule_set() {
  std::string rules;
  for (int i = 0; i < 6000; ++i) {
    rules += "rule generated_" + std::to_string(i) +
             " : generated {\n  meta:\n    description = \"generated rule " + std::to_string(i) +
             " of a large set, long enough to weigh what public rules weigh\"\n    author = "
             "\"riposte tests\"\n  strings:\n    $text = \"never-present-" +
             std::to_string(i) +
             "-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" ascii wide\n    $hex = { 4D 5A "
             "[2-4] 50 45 00 00 ?? " +
             fmt::format("{:02X} {:02X}", i % 256, (i / 256) % 256) +
             " }\n    $re = /never-[0-9]{3}-present-" + std::to_string(i) +
             "/\n  condition:\n    filesize < 10MB and (all of them or filename == \"n" +
             std::to_string(i) + "\")\n}\n\n";
  }
  rules +=
      "rule riposte_large_set_marker {\n  strings:\n    $m = \"RIPOSTE-LARGE-SET-MARKER\"\n"
      "  condition:\n    $m and filename == \"sample.bin\"\n}\n";
  return rules;
}

// The public ReversingLabs set when the corpus is at hand (RIPOSTE_CORPUS, or the checkout's
// sibling shared/corpus); empty otherwise.
std::string public_rule_set() {
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("RIPOSTE_CORPUS"); dir != nullptr && *dir != '\0')
    candidates.emplace_back(dir);
  candidates.push_back(fs::path(source_dir()).parent_path() / "shared" / "corpus");
  for (const auto& dir : candidates) {
    std::ifstream in(dir / "yara" / "reversinglabs-all.yara", std::ios::binary);
    if (in) return std::string(std::istreambuf_iterator<char>(in), {});
  }
  return {};
}

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(json::parse(line));
  return lines;
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

// Runs yara.scan with rules=@FILE on `path` and returns the ended action.
json scan_with_file(ControllerUnderTest& controller, const std::string& agent_id,
                    const fs::path& rules, const fs::path& path) {
  const auto run = controller.cli({"action", "run", "yara.scan", "--agent", agent_id, "--param",
                                   "rules=@" + rules.string(), "--param", "paths=" + path.string(),
                                   "--wait", "--timeout", "2m", "--json"});
  const auto lines = json_lines(run.out);
  EXPECT_EQ(lines.size(), 1u) << run.out << run.err;
  return lines.empty() ? json() : lines.back();
}

TEST(RuleSetIntegration, AMegabyteSetIsUploadedOnceFetchedOnceAndMatches) {
  ControllerUnderTest controller;
  controller.start();
  const auto agent_state = controller.dir() / "agent";
  auto agent = controller.start_online_agent(agent_state, "agent.log");
  const auto rules_file = controller.dir() / "large.yar";
  std::string rules = large_rule_set();
  if (const auto real = public_rule_set(); !real.empty()) rules = real + "\n" + rules;
  std::ofstream(rules_file, std::ios::binary) << rules;
  ASSERT_GT(rules.size(), 2u << 20);
  const auto sha = crypto::sha256_hex(rules);
  fs::create_directories(controller.dir() / "scan");
  const auto sample = controller.dir() / "scan" / "sample.bin";
  std::ofstream(sample) << std::string(5000, 'a') << "RIPOSTE-LARGE-SET-MARKER"
                        << std::string(9, 'b');

  const auto first = scan_with_file(controller, agent.id, rules_file, sample);
  ASSERT_EQ(first["state"], "succeeded") << first.dump();
  const auto& matches = first["result"]["matches"];
  ASSERT_EQ(matches.size(), 1u) << first.dump();
  EXPECT_EQ(matches[0]["rule"], "riposte_large_set_marker");
  EXPECT_EQ(matches[0]["strings"][0]["offset"], "5000");
  // The signed spec names the set by hash; the text is not in it.
  EXPECT_EQ(first["parameters"]["rules_sha256"], sha) << first["parameters"].dump();
  EXPECT_EQ(first["parameters"].value("rules", ""), "");
  EXPECT_TRUE(fs::exists(agent_state / "rule-sets" / (sha + ".yar")));

  // Again with the same file: no second copy on the controller, no second fetch by the agent.
  const auto second = scan_with_file(controller, agent.id, rules_file, sample);
  EXPECT_EQ(second["state"], "succeeded") << second.dump();
  EXPECT_EQ(count_of(agent.process->log_text(), "fetched from the controller"), 1)
      << agent.process->log_text();
  const auto sets = controller.cli_json({"rule-sets", "list", "--json"});
  ASSERT_EQ(sets["rule_sets"].size(), 1u) << sets.dump();
  EXPECT_EQ(sets["rule_sets"][0]["size"], rules.size());
  EXPECT_EQ(count_of(controller.cli({"audit", "export"}).out, "\"rule_set.stored\""), 1);

  // An analyst cannot make the controller read megabytes: refused from the header, before the
  // body is read.
  const auto ann = controller.cli_json({"operators", "create", "ann", "--role", "analyst"});
  const auto refused = controller.cli_as(ann["token"].get<std::string>(),
                                         {"rule-sets", "upload", rules_file.string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("413"), std::string::npos) << refused.err;
}

// Each large upload is held in memory until stored: a third one while two are still being sent
// is answered 503 with Retry-After before its body is read.
TEST(RuleSetIntegration, AtMostTwoLargeUploadsAreReadAtOnce) {
  ControllerUnderTest controller;
  controller.start();
  const auto rob = controller.cli_json({"operators", "create", "rob", "--role", "responder"});
  const auto api = controller.api();
  const auto script = controller.dir() / "slow_uploads.py";
  // The two held uploads must have their headers read before the third arrives (three
  // connections handled on two io threads in parallel would otherwise race): a second's pause.
  std::ofstream(script) << R"(import socket, ssl, sys, time
host, port = sys.argv[1].rsplit(':', 1)
context = ssl.create_default_context(cafile=sys.argv[2])
context.check_hostname = False
def start():
    s = context.wrap_socket(socket.create_connection((host, int(port))))
    s.sendall(('POST /api/v1/rule-sets?name=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '
               + sys.argv[3] + '\r\nContent-Length: 8000000\r\n\r\n').encode() + b'rule a' * 100)
    return s
held = [start(), start()]
time.sleep(1)
third = start()
third.settimeout(10)
print(third.recv(4096).decode(errors='replace').split('\r\n')[0])
)";
  const auto out = run_command(
      {"python3", script.string(), api, controller.ca_cert(), rob["token"].get<std::string>()},
      std::chrono::seconds(30));
  EXPECT_NE(out.out.find("503"), std::string::npos) << out.out << out.err;
  // The CLI, answered 503 while the slots are taken, waits as told and uploads once they free.
  const auto big_rules = controller.dir() / "big.yar";
  {
    std::ofstream out(big_rules);
    for (int i = 0; i < 3000; ++i)
      out << "rule r" << i << " { condition: filesize == " << i << " }\n";
  }
  ASSERT_GT(std::filesystem::file_size(big_rules), 64u * 1024);
  std::ofstream(controller.dir() / "hold.py") << R"(import socket, ssl, sys, time
host, port = sys.argv[1].rsplit(':', 1)
context = ssl.create_default_context(cafile=sys.argv[2])
context.check_hostname = False
held = []
for _ in range(2):
    s = context.wrap_socket(socket.create_connection((host, int(port))))
    s.sendall(('POST /api/v1/rule-sets?name=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '
               + sys.argv[3] + '\r\nContent-Length: 8000000\r\n\r\n').encode() + b'rule a' * 100)
    held.append(s)
time.sleep(4)
)";
  ChildProcess hold({"python3", (controller.dir() / "hold.py").string(), api, controller.ca_cert(),
                     rob["token"].get<std::string>()},
                    controller.dir() / "hold.log");
  std::this_thread::sleep_for(1500ms);
  const auto waited = controller.cli_as(rob["token"].get<std::string>(),
                                        {"rule-sets", "upload", big_rules.string()});
  EXPECT_EQ(waited.exit_code, 0) << waited.err;
  EXPECT_NE(waited.err.find("controller answered 503 (busy); retrying in 5 s"), std::string::npos)
      << waited.err;
  hold.wait_for_exit(10s);
  // Once those are gone, an upload is read again.
  const auto rules_file = controller.dir() / "small.yar";
  std::ofstream(rules_file) << "rule small { condition: true }\n";
  ASSERT_TRUE(wait_until(
      [&] {
        return controller
                   .cli_as(rob["token"].get<std::string>(),
                           {"rule-sets", "upload", rules_file.string()})
                   .exit_code == 0;
      },
      40s));
}

TEST(RuleSetIntegration, CompileErrorsComeBackWithTheLineYaracNames) {
  ControllerUnderTest controller;
  controller.start();
  auto agent = controller.start_online_agent(controller.dir() / "agent", "agent.log");
  const auto rules_file = controller.dir() / "broken.yar";
  std::ofstream(rules_file) << "rule fine { condition: true }\n\n\nrule broken {\n  strings:\n"
                               "    $a = \"x\"\n  condition:\n    $b\n}\n";
  const auto yarac =
      run_command({"yarac", rules_file.string(), (controller.dir() / "out").string()});
  std::smatch line;
  ASSERT_TRUE(std::regex_search(yarac.err, line, std::regex(R"(\((\d+)\): undefined string)")))
      << yarac.err;
  const auto ended = scan_with_file(controller, agent.id, rules_file, controller.dir());
  EXPECT_EQ(ended["state"], "failed") << ended.dump();
  EXPECT_NE(ended["reason"].get<std::string>().find("line " + line[1].str() +
                                                    ": undefined string \"$b\""),
            std::string::npos)
      << ended.dump() << " vs yarac: " << yarac.err;
}

proto::Envelope object_request(const std::string& sha, std::uint64_t offset) {
  proto::Envelope e;
  e.mutable_object_request()->set_sha256(sha);
  e.mutable_object_request()->set_offset(offset);
  return e;
}

std::vector<std::uint8_t> frames_of(const std::vector<proto::Envelope>& envelopes) {
  std::vector<std::uint8_t> bytes;
  for (const auto& e : envelopes) {
    const auto frame = encode_frame(e.SerializeAsString());
    bytes.insert(bytes.end(), frame.begin(), frame.end());
  }
  return bytes;
}

std::string host_of(const std::string& host_port) {
  return host_port.substr(0, host_port.rfind(':'));
}

// Agent B holds a valid certificate. It asks for the rule set of an action addressed to agent A:
// refused, no byte sent. It asks for its own action's set: served. It asks faster than it reads:
// the session is closed before the controller queues megabytes for it.
TEST(RuleSetIntegration, AnAgentCertificateFetchesOnlyWhatItsOwnOpenActionsName) {
  ControllerUnderTest controller;
  controller.start();
  const auto state_a = controller.dir() / "agent-a";
  const auto id_a = controller.enroll_agent(state_a);  // enrolled, offline: its action waits
  const auto state_b = controller.dir() / "agent-b";
  const auto id_b = controller.enroll_agent(state_b);
  std::string secret_rules = large_rule_set();
  const auto rules_file = controller.dir() / "team.yar";
  std::ofstream(rules_file) << secret_rules;
  const auto sha = crypto::sha256_hex(secret_rules);
  const auto queued =
      controller.cli_json({"action", "run", "yara.scan", "--agent", id_a, "--param",
                           "rules=@" + rules_file.string(), "--param", "paths=/tmp"});
  ASSERT_EQ(queued["actions"][0]["state"], "queued") << queued.dump();

  const auto gateway_host = host_of(controller.gateway());
  auto asked = send_to_gateway(gateway_host, controller.gateway_port(), state_b, true,
                               frames_of({object_request(sha, 0)}), 3s);
  ASSERT_TRUE(asked.hello_accepted) << asked.detail;
  int chunks = 0;
  for (const auto& raw : asked.received) {
    proto::Envelope e;
    ASSERT_TRUE(e.ParseFromString(raw));
    if (!e.has_object_chunk()) continue;
    ++chunks;
    EXPECT_TRUE(e.object_chunk().data().empty());
    EXPECT_NE(e.object_chunk().error().find("no unfinished action for this agent"),
              std::string::npos);
  }
  EXPECT_EQ(chunks, 1);

  // Now an action of B's own names the set (B's raw session takes the delivery and never
  // answers, so the action stays open): served, chunk by chunk.
  controller.cli_json({"action", "run", "yara.scan", "--agent", id_b, "--param",
                       "rules_sha256=" + sha, "--param", "paths=/tmp", "--ttl", "10m"});
  auto own = send_to_gateway(gateway_host, controller.gateway_port(), state_b, true,
                             frames_of({object_request(sha, 1000)}), 3s);
  std::string served;
  for (const auto& raw : own.received) {
    proto::Envelope e;
    ASSERT_TRUE(e.ParseFromString(raw));
    if (!e.has_object_chunk()) continue;
    EXPECT_TRUE(e.object_chunk().error().empty()) << e.object_chunk().error();
    EXPECT_EQ(e.object_chunk().size(), secret_rules.size());
    EXPECT_EQ(e.object_chunk().offset(), 1000u);
    served += e.object_chunk().data();
  }
  EXPECT_EQ(served, secret_rules.substr(1000, 1 << 20));

  // B asks again and again without reading a byte: the controller stops queueing megabytes for
  // it and closes the session.
  std::vector<proto::Envelope> flood;
  for (int i = 0; i < 64; ++i) flood.push_back(object_request(sha, 0));
  send_to_gateway(gateway_host, controller.gateway_port(), state_b, true, frames_of(flood), 5s,
                  /*read_replies=*/false);
  EXPECT_NE(controller.process().log_text().find("object requests faster than the agent reads"),
            std::string::npos)
      << controller.process().log_text();
}

// Alert batches are admitted like any large body: before a byte of the body is read. Twelve
// slow 15 MiB batches from one integration token at once: two are read, the others are told 503
// with Retry-After: 1 as soon as their headers arrive, and the controller's memory rises by about
// two batches (each ~12 MiB, and its parse several times that), not twelve. (What it holds after
// the 20,000 alerts are processed is printed, not checked: see the closing note of issue 32.)
TEST(RuleSetIntegration, LargeAlertBatchesAreAdmittedBeforeTheirBodiesAreRead) {
  ControllerUnderTest controller;
  controller.start();
  const auto siem = controller.cli_json({"integrations", "create", "siem", "--json"});
  const auto script = controller.dir() / "slow_batches.py";
  std::ofstream(script) << R"(import json, select, socket, ssl, sys, threading, time
host, port = sys.argv[1].rsplit(':', 1)
context = ssl.create_default_context(cafile=sys.argv[2])
context.check_hostname = False
# 12 batches of 10,000 alerts (the most one batch may hold), ~12 MiB each.
bodies = [json.dumps([{'id': 'b%d-%d' % (n, i), 'rule': {'name': 'x' * 1100},
                       'severity': 'low', 'host': 'host-%d' % i} for i in range(10000)]).encode()
          for n in range(12)]
status = [None] * 12
def post(n):
    s = context.wrap_socket(socket.create_connection((host, int(port))))
    body = bodies[n]
    s.sendall(('POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' + sys.argv[3]
               + '\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n' % len(body)).encode())
    s.settimeout(60)
    early = False  # answered before the whole body was sent
    try:
        for at in range(0, len(body), 1 << 20):  # slowly: 1 MiB every 0.15 s
            if s.pending() or select.select([s], [], [], 0)[0]:
                early = True
                break
            s.sendall(body[at:at + (1 << 20)])
            time.sleep(0.15)
    except OSError:
        early = True  # answered 503 and closed before the whole body was sent
    reply = b''
    try:
        while b'\r\n\r\n' not in reply:
            chunk = s.recv(4096)
            if not chunk: break
            reply += chunk
    except OSError:
        pass
    head = reply.decode(errors='replace')
    status[n] = head.split('\r\n')[0].split(' ')[1] if head else 'none'
    if 'Retry-After: 1' in head: status[n] += '+retry1'
    if early: status[n] += '+early'
threads = [threading.Thread(target=post, args=(n,)) for n in range(12)]
for t in threads: t.start()
for t in threads: t.join()
print(' '.join(status))
)";
  const auto vm = [&](const char* field) {
    std::ifstream in("/proc/" + std::to_string(controller.process().pid()) + "/status");
    for (std::string line; std::getline(in, line);)
      if (line.starts_with(field)) return std::stol(line.substr(line.find(':') + 1)) / 1024;
    return -1L;
  };
  const long rss_before = vm("VmRSS:");
  const auto out = run_command(
      {"python3", script.string(), controller.api(), controller.ca_cert(), siem["token"]},
      std::chrono::seconds(120));
  ASSERT_EQ(out.exit_code, 0) << out.err;
  const long peak = vm("VmHWM:");
  int stored = 0, busy = 0;
  std::istringstream codes(out.out);
  for (std::string code; codes >> code;) {
    stored += code == "201";
    busy += code == "503+retry1+early";
  }
  const long rss_after = vm("VmRSS:");
  std::cout << out.out << "RSS " << rss_before << " MiB -> peak " << peak << " MiB -> " << rss_after
            << " MiB\n";
  EXPECT_GE(stored, 2) << out.out;
  EXPECT_GE(busy, 6) << out.out;
  EXPECT_EQ(stored + busy, 12) << out.out;
  // Each body is ~12 MiB (and its parse several times that): twelve read at once took 1 GiB.
#ifndef __SANITIZE_ADDRESS__
  // Not under ASan, whose redzones and quarantine multiply every allocation (797 MiB measured).
  EXPECT_LT(peak - rss_before, 350) << "MiB";
#endif
}

}  // namespace
}  // namespace riposte::testing
