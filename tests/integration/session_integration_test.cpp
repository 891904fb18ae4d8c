// Agent sessions against a real controller: reconnects, revocation, hostile bytes on the wire.

#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"
#include "protocol/actions.pb.h"
#include "protocol/agent_channel.pb.h"
#include "protocol/crypto.h"
#include "protocol/framing.h"
#include "protocol/version.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_client.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;

std::string host_of(const std::string& host_port) {
  return host_port.substr(0, host_port.rfind(':'));
}

TEST(SessionIntegration, AgentReconnectsAfterControllerIsKilledAndRestarted) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  const auto id = controller.enroll_agent(state);
  auto agent = controller.start_agent(state, "agent.log");
  ASSERT_TRUE(wait_until([&] { return controller.agent(id)["status"] == "online"; }, 20s))
      << agent->log_text();
  const auto first_since = controller.agent(id)["connected_since"].get<std::string>();

  controller.kill_hard();
  // The agent notices and keeps retrying, saying why in words.
  ASSERT_TRUE(wait_until(
      [&] { return agent->log_text().find("connection refused") != std::string::npos; }, 15s))
      << agent->log_text();
  EXPECT_TRUE(agent->running());

  controller.start(/*same_ports=*/true);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto a = controller.agent(id);
        return a["status"] == "online" && a["connected_since"] != first_since;
      },
      20s))
      << agent->log_text();

  // A graceful stop: the agent leaves with Goodbye and exits 0.
  agent->signal(SIGTERM);
  EXPECT_EQ(agent->wait_for_exit(10s), 0);
  ASSERT_TRUE(wait_until([&] { return controller.agent(id)["status"] == "offline"; }, 10s));
  EXPECT_NE(
      controller.agent(id)["last_disconnect_reason"].get<std::string>().find("agent stopping"),
      std::string::npos);
}

TEST(SessionIntegration, RevokedAgentIsDisconnectedAndRefusedAtTheHandshake) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent";
  const auto id = controller.enroll_agent(state);
  auto agent = controller.start_agent(state, "agent.log");
  ASSERT_TRUE(wait_until([&] { return controller.agent(id)["status"] == "online"; }, 20s))
      << agent->log_text();

  const auto revoke = controller.cli({"agents", "revoke", id});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  EXPECT_NE(revoke.out.find("revoked"), std::string::npos);

  // The live session is closed, with the reason told to the agent.
  ASSERT_TRUE(
      wait_until([&] { return agent->log_text().find("agent revoked") != std::string::npos; }, 10s))
      << agent->log_text();
  // Its next handshakes fail: the controller refuses the certificate.
  ASSERT_TRUE(wait_until(
      [&] { return agent->log_text().find("certificate revoked") != std::string::npos; }, 15s))
      << agent->log_text();
  const auto shown = controller.agent(id);
  EXPECT_EQ(shown["status"], "revoked");
  EXPECT_FALSE(shown["connected"].get<bool>());
  EXPECT_TRUE(shown["revoked_at"].is_string());

  // The same refusal seen with openssl s_client presenting the revoked agent's certificate.
  const auto s_client =
      run_command({"openssl", "s_client", "-connect", controller.gateway(), "-tls1_3", "-cert",
                   (state / "agent.pem").string(), "-key", (state / "agent.key").string(),
                   "-CAfile", controller.ca_cert(), "-ign_eof"},
                  15s);
  EXPECT_NE((s_client.out + s_client.err).find("alert certificate revoked"), std::string::npos)
      << s_client.out << s_client.err;

  // Revocation survives a controller restart.
  controller.stop_gracefully();
  controller.start(/*same_ports=*/true);
  const auto after =
      run_command({"openssl", "s_client", "-connect", controller.gateway(), "-tls1_3", "-cert",
                   (state / "agent.pem").string(), "-key", (state / "agent.key").string(),
                   "-CAfile", controller.ca_cert(), "-ign_eof"},
                  15s);
  EXPECT_NE((after.out + after.err).find("alert certificate revoked"), std::string::npos)
      << after.out << after.err;
}

TEST(SessionIntegration, GarbageAndOversizedFramesCloseOnlyThatConnection) {
  ControllerUnderTest controller;
  controller.start();
  // Agent A runs normally; agent B's identity is used by a misbehaving client.
  const auto state_a = controller.dir() / "agent-a";
  const auto state_b = controller.dir() / "agent-b";
  const auto id_a = controller.enroll_agent(state_a);
  const auto id_b = controller.enroll_agent(state_b);
  auto agent = controller.start_agent(state_a, "agent-a.log");
  ASSERT_TRUE(wait_until([&] { return controller.agent(id_a)["status"] == "online"; }, 20s))
      << agent->log_text();
  const std::string host = host_of(controller.gateway());
  const int port = controller.gateway_port();

  // Plain-TCP garbage where a TLS ClientHello belongs.
  std::vector<std::uint8_t> junk(4096);
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<std::uint8_t>(i * 131 + 7);
  auto outcome = send_to_gateway(host, port, {}, false, junk);
  EXPECT_TRUE(outcome.closed_by_peer) << outcome.detail;

  // A frame header announcing 4 GiB, before Hello.
  const std::vector<std::uint8_t> huge_header{0xff, 0xff, 0xff, 0xff, 0x00};
  outcome = send_to_gateway(host, port, state_b, false, huge_header);
  EXPECT_TRUE(outcome.handshake_ok) << outcome.detail;
  EXPECT_TRUE(outcome.closed_by_peer) << outcome.detail;

  // After a proper Hello, an oversized frame ends that session with a recorded reason.
  const std::vector<std::uint8_t> big_header{0x01, 0x00, 0x00, 0x00};  // 16 MiB > 4 MiB maximum
  outcome = send_to_gateway(host, port, state_b, true, big_header);
  EXPECT_TRUE(outcome.hello_accepted) << outcome.detail;
  EXPECT_TRUE(outcome.closed_by_peer) << outcome.detail;
  ASSERT_TRUE(wait_until([&] { return controller.agent(id_b)["status"] == "offline"; }, 10s));
  EXPECT_NE(controller.agent(id_b)["last_disconnect_reason"].get<std::string>().find(
                "exceeds the maximum"),
            std::string::npos)
      << controller.agent(id_b).dump();

  // A well-sized frame that is not a protobuf Envelope.
  const std::vector<std::uint8_t> not_protobuf{0x00, 0x00, 0x00, 0x06, 0xff,
                                               0xff, 0xff, 0xff, 0xff, 0xff};
  outcome = send_to_gateway(host, port, state_b, true, not_protobuf);
  EXPECT_TRUE(outcome.closed_by_peer) << outcome.detail;
  ASSERT_TRUE(wait_until(
      [&] {
        return controller.agent(id_b)["last_disconnect_reason"].get<std::string>().find(
                   "malformed") != std::string::npos;
      },
      10s))
      << controller.agent(id_b).dump();

  // Through all of it, the controller kept serving agent A.
  EXPECT_TRUE(controller.process().running());
  EXPECT_EQ(controller.agent(id_a)["status"], "online");
  const auto beat = controller.agent(id_a)["last_heartbeat"].get<std::string>();
  EXPECT_TRUE(wait_until([&] { return controller.agent(id_a)["last_heartbeat"] != beat; }, 10s));
  EXPECT_NE(controller.process().log_text().find("exceeds the maximum"), std::string::npos);
}

// An agent reports a quarantine someone undid on its host. The event is audited under the agent's
// own identity; it is tied to an action (and its case) only when that action is a quarantine the
// controller sent to this very agent; unknown kinds are ignored; at most 10 a minute per agent are
// kept, across reconnects.
TEST(SessionIntegration, AgentEventsAreAuditedBoundedAndNeverTiedToAnotherAgentsAction) {
  ControllerUnderTest controller;
  controller.start();
  auto a = controller.start_online_agent(controller.dir() / "agent-a", "agent-a.log");
  const auto state_b = controller.dir() / "agent-b";
  const auto id_b = controller.enroll_agent(state_b);
  // A real action of agent A, whose id agent B will try to attach its event to.
  const auto run = controller.cli_json({"action", "run", "network.status", "--agent", a.id});
  const auto a_action = run["actions"][0]["id"].get<std::string>();

  std::vector<std::uint8_t> bytes;
  const auto append = [&](const std::string& kind, const std::string& action_id) {
    proto::Envelope envelope;
    auto* event = envelope.mutable_agent_event();
    event->set_kind(kind);
    event->set_detail("the quarantine table was gone from the kernel; the agent applied it again");
    event->set_at_unix_ms(1'800'000'000'000);
    event->set_action_id(action_id);
    const auto frame = encode_frame(envelope.SerializeAsString());
    bytes.insert(bytes.end(), frame.begin(), frame.end());
  };
  append("host.rooted", "");  // not a kind the controller knows
  append("quarantine.tampered", a_action);
  for (int i = 0; i < 14; ++i) append("quarantine.tampered", "");
  const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                       state_b, true, bytes, 3s);
  EXPECT_TRUE(outcome.hello_accepted) << outcome.detail;

  std::vector<nlohmann::json> events;
  ASSERT_TRUE(wait_until(
      [&] {
        events.clear();
        const auto exported = controller.cli({"audit", "export"});
        std::istringstream lines(exported.out);
        for (std::string line; std::getline(lines, line);) {
          if (line.empty()) continue;
          auto entry = nlohmann::json::parse(line);
          if (entry["event"] == "agent.quarantine_tampered") events.push_back(entry);
        }
        return events.size() >= 10;
      },
      10s));
  EXPECT_EQ(events.size(), 10u) << "at most 10 events a minute per session are kept";
  for (const auto& e : events) {
    EXPECT_EQ(e["actor"], "agent:" + id_b);
    EXPECT_EQ(e["subject"], id_b);
    const auto details = e["details"].is_string()
                             ? nlohmann::json::parse(e["details"].get<std::string>())
                             : e["details"];
    EXPECT_EQ(details["action_id"], "") << "agent A's action is not agent B's to report on";
    EXPECT_EQ(details["case_id"], "");
  }
  EXPECT_NE(controller.process().log_text().find("ignoring events of unknown kind 'host.rooted'"),
            std::string::npos);
  // Reconnecting does not reset the budget: it is per agent, not per session.
  bytes.clear();
  for (int i = 0; i < 5; ++i) append("quarantine.tampered", "");
  send_to_gateway(host_of(controller.gateway()), controller.gateway_port(), state_b, true, bytes,
                  2s);
  const auto exported = controller.cli({"audit", "export"});
  std::size_t count = 0;
  for (std::size_t at = 0;
       (at = exported.out.find("agent.quarantine_tampered", at)) != std::string::npos; ++at)
    ++count;
  EXPECT_EQ(count, 10u);
  EXPECT_EQ(controller.cli({"audit", "verify"}).exit_code, 0);
}

// A compromised agent (its own valid certificate) floods the gateway with results, replay
// refusals and progress for another agent's action and for ids that do not exist: the audit log
// does not grow, the other agent's action is untouched and the agent stays online, and the flood
// is read at the bounded rate.
TEST(SessionIntegration, AnAgentsReportsAboutOtherAgentsActionsAreDroppedAndItsFloodIsPaced) {
  ControllerUnderTest controller;
  controller.start();
  auto a = controller.start_online_agent(controller.dir() / "agent-a", "agent-a.log");
  const auto state_b = controller.dir() / "agent-b";
  controller.enroll_agent(state_b);
  const auto run = controller.cli_json({"action", "run", "network.status", "--agent", a.id});
  const auto a_action = run["actions"][0]["id"].get<std::string>();
  // Let A's action end, then count.
  ASSERT_TRUE(wait_until(
      [&] {
        return controller.cli_json({"action", "show", a_action})["state"] == "succeeded";
      },
      20s));
  const auto audit_lines = [&] {
    const auto out = controller.cli({"audit", "export"}).out;
    return std::count(out.begin(), out.end(), '\n');
  };

  std::vector<std::uint8_t> bytes;
  const auto append = [&](proto::Envelope envelope) {
    const auto frame = encode_frame(envelope.SerializeAsString());
    bytes.insert(bytes.end(), frame.begin(), frame.end());
  };
  for (int i = 0; i < 1000; ++i) {
    for (const auto& id :
         {a_action, std::string("00000000-0000-4000-8000-00000000000") + std::to_string(i % 10)}) {
      proto::Envelope result;
      result.mutable_action_result()->set_action_id(id);
      result.mutable_action_result()->set_status(proto::ActionResult::STATUS_FAILED);
      append(result);
      proto::Envelope replay = result;
      replay.mutable_action_result()->set_refusal(proto::ActionResult::REFUSAL_REPLAYED);
      append(replay);
    }
  }
  const auto before = audit_lines();
  const auto started = std::chrono::steady_clock::now();
  // Reads the controller's answers until it closes the session (idle, after the flood).
  const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                       state_b, true, bytes, 60s);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(outcome.hello_accepted) << outcome.detail;
  // Every report is acknowledged (an agent's spool is not stuck), none is believed, and 4000
  // messages at 200 a second after a burst of 2000 take at least 10 s to be read.
  std::size_t acks = 0;
  for (const auto& raw : outcome.received) {
    proto::Envelope reply;
    acks += reply.ParseFromString(raw) && reply.has_action_result_ack();
  }
  EXPECT_EQ(acks, 4000u);
  EXPECT_GE(took, 9s);
  EXPECT_NE(controller.process().log_text().find("reading it slower"), std::string::npos);
  // Reconnecting does not buy a fresh burst: the budget is the agent's, not the session's.
  std::vector<std::uint8_t> again(bytes.begin(),
                                  bytes.begin() + static_cast<long>(bytes.size() / 2));
  const auto second_start = std::chrono::steady_clock::now();
  send_to_gateway(host_of(controller.gateway()), controller.gateway_port(), state_b, true, again,
                  60s);
  // 2000 messages with ~3 s of refill since the first session ended (600 tokens): >= 6 s.
  EXPECT_GE(std::chrono::steady_clock::now() - second_start, 5s);
  // B's connection and disconnection are audited; none of its 4000 reports is.
  EXPECT_LE(audit_lines() - before, 2);
  EXPECT_EQ(controller.cli_json({"action", "show", a_action})["state"], "succeeded");
  EXPECT_EQ(controller.cli_json({"agents", "show", a.id})["status"], "online");
  EXPECT_EQ(controller.cli({"audit", "verify"}).exit_code, 0);
}

// Sets every field of `message` (nested, repeated and map fields included): each `string` to bytes
// that are not UTF-8, numbers to 1, two elements per repeated field.
void fill_with_bad_text(google::protobuf::Message& message, int depth = 0) {
  namespace pb = google::protobuf;
  const auto* d = message.GetDescriptor();
  const auto* r = message.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    for (int n = 0; n < (f->is_repeated() ? 2 : 1); ++n) {
      const std::string text = "\xff\xfe" + f->name() + std::to_string(n) + "\xc0";
      switch (f->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_STRING:
          f->is_repeated() ? r->AddString(&message, f, text) : r->SetString(&message, f, text);
          break;
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 3)
            fill_with_bad_text(
                f->is_repeated() ? *r->AddMessage(&message, f) : *r->MutableMessage(&message, f),
                depth + 1);
          break;
        case pb::FieldDescriptor::CPPTYPE_INT32:
          f->is_repeated() ? r->AddInt32(&message, f, 1) : r->SetInt32(&message, f, 1);
          break;
        case pb::FieldDescriptor::CPPTYPE_INT64:
          f->is_repeated() ? r->AddInt64(&message, f, 1) : r->SetInt64(&message, f, 1);
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT32:
          f->is_repeated() ? r->AddUInt32(&message, f, 1) : r->SetUInt32(&message, f, 1);
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT64:
          f->is_repeated() ? r->AddUInt64(&message, f, 1) : r->SetUInt64(&message, f, 1);
          break;
        case pb::FieldDescriptor::CPPTYPE_BOOL:
          f->is_repeated() ? r->AddBool(&message, f, true) : r->SetBool(&message, f, true);
          break;
        default:
          break;  // enums and floats: none carries text
      }
    }
  }
}

// A raw agent answers one action of every kind with bytes that are not UTF-8 in every string of
// its result and message (and one result that is no message at all). Before, one such result
// made the controller's JSON null and `.value()` on it abort the controller, and the action list
// answer 500 for as long as it was on the page. Now every result is read, its text as wire text,
// the unreadable one says so, and the controller goes on.
TEST(SessionIntegration, ResultsWithTextThatIsNotUtf8InEveryFieldAreReadForEveryKind) {
  ControllerUnderTest controller;
  controller.start();
  const auto state_b = controller.dir() / "agent-b";
  const auto id_b = controller.enroll_agent(state_b);
  const auto target = nlohmann::json{{"pid", 4242}, {"start_ticks", "1"}};
  const std::map<std::string, nlohmann::json> parameters = {
      {"process.tree", {{"pid", 4242}}},
      {"process.kill", {{"target", target}}},
      {"process.suspend", {{"target", target}}},
      {"process.resume", {{"target", target}}},
      {"memory.capture", {{"target", target}}},
      {"file.hash", {{"path", "/tmp/x"}}},
      {"file.collect", {{"path", "/tmp/x"}}},
      {"file.quarantine", {{"path", "/tmp/x"}}},
      {"file.restore", {{"vault_id", "v1"}}},
      {"yara.scan", {{"rules", "rule a { condition: true }"}, {"paths", {"/tmp"}}}},
  };
  std::map<std::string, std::string> kind_of;  // action id -> kind
  std::vector<std::uint8_t> bytes;
  const auto append = [&](const proto::Envelope& envelope) {
    const auto frame = encode_frame(envelope.SerializeAsString());
    bytes.insert(bytes.end(), frame.begin(), frame.end());
  };
  google::protobuf::LogSilencer quiet;  // serializing bad text logs each time
  for (const auto kind : action_kind::kAll) {
    const auto it = parameters.find(std::string(kind));
    const auto params = it == parameters.end() ? nlohmann::json::object() : it->second;
    const auto created = controller.cli({"action", "run", std::string(kind), "--agent", id_b,
                                         "--params-json", params.dump(), "--json"});
    ASSERT_EQ(created.exit_code, 0) << kind << ": " << created.err << created.out;
    const auto id = nlohmann::json::parse(created.out)["actions"][0]["id"].get<std::string>();
    kind_of[id] = kind;
    std::unique_ptr<google::protobuf::Message> result(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(action_catalog::result_descriptor(kind))
            ->New());
    fill_with_bad_text(*result);
    proto::Envelope envelope;
    auto* r = envelope.mutable_action_result();
    r->set_action_id(id);
    r->set_status(proto::ActionResult::STATUS_SUCCEEDED);
    r->set_message("done with /tmp/\xff");
    r->set_output(result->SerializeAsString());
    append(envelope);
  }
  // One more process.list whose output is no ProcessListResult at all.
  const auto garbage_action =
      controller.cli_json({"action", "run", "process.list", "--agent", id_b})["actions"][0]["id"]
          .get<std::string>();
  // Texts cut at a byte count used to split a character, and the stored half made every list
  // holding it answer 500: a progress unit of 16 bytes ending mid-'é', a goodbye of 200.
  proto::Envelope progress;
  progress.mutable_action_progress()->set_action_id(garbage_action);
  progress.mutable_action_progress()->set_unit(std::string(15, 'a') + "\xC3\xA9");
  append(progress);
  proto::Envelope garbage;
  garbage.mutable_action_result()->set_action_id(garbage_action);
  garbage.mutable_action_result()->set_status(proto::ActionResult::STATUS_SUCCEEDED);
  garbage.mutable_action_result()->set_output("\x0a\xff\xff\xff\xff\x0f");
  append(garbage);
  proto::Envelope goodbye;
  std::string reason(199, 'a');
  for (int i = 0; i < 5; ++i) reason += "\xC3\xA9";
  goodbye.mutable_goodbye()->set_reason(reason);
  append(goodbye);

  const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                       state_b, true, bytes, 10s);
  ASSERT_TRUE(outcome.hello_accepted) << outcome.detail;
  const std::string fffd = "\xEF\xBF\xBD";
  for (const auto& [id, kind] : kind_of) {
    const auto shown = controller.cli({"action", "show", id, "--json"});
    ASSERT_EQ(shown.exit_code, 0) << kind << ": " << shown.err;
    const auto action = nlohmann::json::parse(shown.out);
    EXPECT_EQ(action["state"], "succeeded") << kind << ": " << action.dump(2);
    ASSERT_TRUE(action["result"].is_object()) << kind;
    EXPECT_FALSE(action["result"].contains("unreadable")) << kind << ": " << action.dump(2);
    // Every kind with a text field shows it as wire text.
    if (action_catalog::result_descriptor(kind)->field_count() > 0) {
      EXPECT_NE(action["result"].dump().find(fffd + "ff" + fffd + "fe"), std::string::npos)
          << kind << ": " << action["result"].dump();
    }
  }
  const auto unreadable = controller.cli_json({"action", "show", garbage_action});
  EXPECT_NE(unreadable["outcome"].get<std::string>().find("could not be read"), std::string::npos)
      << unreadable.dump(2);
  const auto listed = controller.cli({"action", "list", "--json"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  const auto agents = controller.cli({"agents", "list", "--json"});
  EXPECT_EQ(agents.exit_code, 0) << agents.err;
  EXPECT_TRUE(controller.process().running());
  EXPECT_EQ(controller.cli({"audit", "verify"}).exit_code, 0);
}

// Bytes the controller's files hold in `dir` (database, WAL, logs).
std::uintmax_t bytes_under(const std::filesystem::path& dir) {
  std::uintmax_t total = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir))
    if (f.is_regular_file()) total += f.file_size();
  return total;
}

// A compromised agent with a valid certificate floods every kind of message it can send: the
// same EvidenceOffer 1,500 times (200 of them with a 1 MB name), ObjectRequests for objects no
// action names, HelloAcks (a message only a controller sends), progress with a 1 MB unit. Before,
// each offer was an audit entry carrying its name (200 offers of 3.9 MB grew the database by
// 770 MB) and each odd message a log line. Now the audit, the database and the log grow by a
// bounded amount, and the custody list is paged.
TEST(SessionIntegration, AFloodOfEveryMessageKindWritesABoundedAmount) {
  ControllerUnderTest controller;
  controller.start();
  const auto state_b = controller.dir() / "agent-b";
  const auto id_b = controller.enroll_agent(state_b);
  const auto action = controller
                          .cli_json({"action", "run", "file.collect", "--agent", id_b, "--param",
                                     "path=/etc/hostname"})["actions"][0]["id"]
                          .get<std::string>();
  const std::string huge(1 << 20, 'n');
  const std::string sha(64, 'a');
  std::vector<std::uint8_t> bytes;
  const auto append = [&](const proto::Envelope& envelope) {
    const auto frame = encode_frame(envelope.SerializeAsString());
    bytes.insert(bytes.end(), frame.begin(), frame.end());
  };
  proto::Envelope result;
  auto* r = result.mutable_action_result();
  r->set_action_id(action);
  r->set_status(proto::ActionResult::STATUS_SUCCEEDED);
  proto::FileResult file;
  file.set_path("/etc/hostname");
  file.set_sha256(sha);
  file.set_size(1 << 20);
  r->set_output(file.SerializeAsString());
  auto* ref = r->add_evidence();
  ref->set_sha256(sha);
  ref->set_size(1 << 20);
  ref->set_name(action + ".collected");
  append(result);
  for (int i = 0; i < 1500; ++i) {
    proto::Envelope offer;
    offer.mutable_evidence_offer()->set_action_id(action);
    *offer.mutable_evidence_offer()->mutable_evidence() = *ref;
    // The offer's own name is not checked against the result's: it went into the audit as sent.
    if (i < 200) offer.mutable_evidence_offer()->mutable_evidence()->set_name(huge);
    append(offer);
  }
  // ObjectRequests go in sessions of their own: more than 8 answers unread ends a session.
  std::vector<std::uint8_t> requests;
  for (int i = 0; i < 9; ++i) {  // the 9th unread answer ends the session at once
    proto::Envelope request;
    request.mutable_object_request()->set_sha256(std::string(63, 'b') + "0123456789"[i % 10]);
    const auto frame = encode_frame(request.SerializeAsString());
    requests.insert(requests.end(), frame.begin(), frame.end());
  }
  for (int i = 0; i < 1000; ++i) {
    proto::Envelope ack;
    ack.mutable_hello_ack()->set_accepted(true);
    ack.mutable_hello_ack()->set_reason(i < 10 ? huge : "x");
    append(ack);
  }
  for (int i = 0; i < 300; ++i) {
    proto::Envelope progress;
    progress.mutable_action_progress()->set_action_id(action);
    progress.mutable_action_progress()->set_done(i);
    progress.mutable_action_progress()->set_unit(i < 10 ? huge : "bytes");
    append(progress);
  }
  const auto audit_lines = [&] {
    const auto out = controller.cli({"audit", "export"}).out;
    return std::count(out.begin(), out.end(), '\n');
  };
  const auto audit_before = audit_lines();
  const auto disk_before = bytes_under(controller.dir());
  const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                       state_b, true, bytes, 90s);
  ASSERT_TRUE(outcome.hello_accepted) << outcome.detail;
  // The offers were answered (an agent learns where to resume), not all audited.
  std::size_t offer_acks = 0;
  for (const auto& raw : outcome.received) {
    proto::Envelope reply;
    offer_acks += reply.ParseFromString(raw) && reply.has_evidence_ack() &&
                  reply.evidence_ack().error().empty();
  }
  EXPECT_GE(offer_acks, 1500u) << outcome.detail;
  for (int session = 0; session < 12; ++session) {
    const auto asked = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                       state_b, true, requests, 10s);
    ASSERT_TRUE(asked.hello_accepted) << asked.detail;
  }
  const auto audit_grew = audit_lines() - audit_before;
  const auto disk_grew = bytes_under(controller.dir()) - disk_before;
  std::cout << "flood of " << bytes.size() << " bytes: audit +" << audit_grew << " entries, disk +"
            << disk_grew << " bytes\n";
  // The result, one offer, the session's connect and disconnect, and a little slack.
  EXPECT_LE(audit_grew, 8);
  // Every text is at most 4 KiB when stored; the log keeps 60 agent warnings a minute.
  EXPECT_LT(disk_grew, 2u << 20);
  const auto log = controller.process().log_text();
  EXPECT_LT(std::count(log.begin(), log.end(), '\n'), 400) << "log lines";
  // 96 requests for objects no action names, 1,000 messages only a controller sends: within the
  // budget of 60 such lines a minute, the rest counted.
  std::size_t warnings = 0;
  for (auto at = log.find("no unfinished action of it names"); at != std::string::npos;
       at = log.find("no unfinished action of it names", at + 1))
    ++warnings;
  for (auto at = log.find("ignoring unexpected message type"); at != std::string::npos;
       at = log.find("ignoring unexpected message type", at + 1))
    ++warnings;
  EXPECT_LE(warnings, 60u);
  EXPECT_GE(warnings, 10u);
  const auto custody = controller.cli_json({"evidence", "show", sha, "--json"});
  EXPECT_LE(custody["custody"].size(), 3u) << custody.dump(2);
  EXPECT_LT(custody.dump().size(), 64u << 10);
  EXPECT_TRUE(controller.process().running());
  EXPECT_EQ(controller.cli({"audit", "verify"}).exit_code, 0);
}

// A certificate looping connect, Hello, Goodbye: each accepted session writes the agent's row and
// logs its start and end. At most 30 sessions a minute are accepted; the rest are refused at
// Hello with the reason, within the budget of agent-caused log lines.
TEST(SessionIntegration, AnAgentReconnectingInALoopIsRefusedAfterThirtyAMinute) {
  ControllerUnderTest controller;
  controller.start();
  const auto state_b = controller.dir() / "agent-b";
  controller.enroll_agent(state_b);
  proto::Envelope goodbye;
  goodbye.mutable_goodbye()->set_reason("bye");
  const auto frame = encode_frame(goodbye.SerializeAsString());
  const std::vector<std::uint8_t> bytes(frame.begin(), frame.end());
  int accepted = 0, refused = 0;
  for (int i = 0; i < 60; ++i) {
    const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                         state_b, true, bytes, 5s);
    ++(outcome.hello_accepted ? accepted : refused);
  }
  EXPECT_EQ(accepted, 30);
  EXPECT_EQ(refused, 30);
  const auto log = controller.process().log_text();
  EXPECT_NE(log.find("more than 30 sessions in a minute from this agent"), std::string::npos);
  std::size_t connected = 0;
  for (auto at = log.find("connected from"); at != std::string::npos;
       at = log.find("connected from", at + 1))
    ++connected;
  EXPECT_EQ(connected, 30u);
  EXPECT_TRUE(controller.process().running());
}

// A compromised agent attaches 8 MiB named like a collected /etc/shadow to its own host.facts and
// streams it: the result stands, the object is refused with a reason the agent is told, and not
// a byte of it reaches the controller's disk.
TEST(SessionIntegration, EvidenceAnActionDoesNotProduceIsRefusedAndNotStored) {
  ControllerUnderTest controller;
  controller.start();
  const auto state_b = controller.dir() / "agent-b";
  const auto id_b = controller.enroll_agent(state_b);
  const auto run = controller.cli_json({"action", "run", "host.facts", "--agent", id_b});
  const auto action_id = run["actions"][0]["id"].get<std::string>();

  const std::string payload(8 << 20, 's');
  const auto sha = crypto::sha256_hex(payload);
  std::vector<std::uint8_t> bytes;
  const auto append = [&](const proto::Envelope& envelope) {
    const auto frame = encode_frame(envelope.SerializeAsString());
    bytes.insert(bytes.end(), frame.begin(), frame.end());
  };
  proto::Envelope result;
  result.mutable_action_result()->set_action_id(action_id);
  result.mutable_action_result()->set_status(proto::ActionResult::STATUS_SUCCEEDED);
  auto* ref = result.mutable_action_result()->add_evidence();
  ref->set_sha256(sha);
  ref->set_size(payload.size());
  ref->set_name("collected:/etc/shadow");
  append(result);
  proto::Envelope offer;
  offer.mutable_evidence_offer()->set_action_id(action_id);
  *offer.mutable_evidence_offer()->mutable_evidence() = *ref;
  append(offer);
  for (std::size_t at = 0; at < payload.size(); at += 1 << 20) {
    proto::Envelope chunk;
    chunk.mutable_evidence_chunk()->set_action_id(action_id);
    chunk.mutable_evidence_chunk()->set_sha256(sha);
    chunk.mutable_evidence_chunk()->set_offset(at);
    chunk.mutable_evidence_chunk()->set_data(payload.substr(at, 1 << 20));
    append(chunk);
  }
  const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                       state_b, true, bytes, 5s);
  ASSERT_TRUE(outcome.hello_accepted) << outcome.detail;
  std::vector<std::string> errors;
  for (const auto& raw : outcome.received) {
    proto::Envelope reply;
    if (reply.ParseFromString(raw) && reply.has_evidence_ack())
      errors.push_back(reply.evidence_ack().error());
  }
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors.front(),
            "refused when the action's result named it: host.facts produces no evidence");
  for (const auto& e : errors) EXPECT_FALSE(e.empty()) << "every chunk is refused";

  const auto shown = controller.cli_json({"action", "show", action_id});
  EXPECT_EQ(shown["state"], "succeeded");
  EXPECT_TRUE(shown["evidence"].empty()) << shown.dump();
  std::uintmax_t on_disk = 0;
  for (const auto& f :
       std::filesystem::recursive_directory_iterator(controller.data_dir() / "evidence"))
    if (f.is_regular_file()) on_disk += f.file_size();
  EXPECT_EQ(on_disk, 0u);
  const auto exported = controller.cli({"audit", "export"}).out;
  EXPECT_NE(exported.find("evidence_refused"), std::string::npos);
  EXPECT_EQ(exported.find("evidence.offered"), std::string::npos);
  EXPECT_EQ(controller.cli({"audit", "verify"}).exit_code, 0);
}

// What an agent reports about its host is checked before it is stored: a hostname that is not
// one, control characters, an address that is not an address, too many of them: the Hello is
// refused, naming the field, and nothing of it is stored. Text that reaches the CLI's tables from
// elsewhere (an alert's host name) is shown with its control characters escaped.
TEST(SessionIntegration, OddHelloFactsAreRefusedAndControlCharactersAreEscapedInTables) {
  ControllerUnderTest controller;
  controller.start();
  const auto state = controller.dir() / "agent-b";
  const auto id = controller.enroll_agent(state);
  const auto enrolled_as = controller.cli_json({"agents", "show", id})["hostname"];
  const auto hello_with = [&](const std::function<void(proto::OsFacts&)>& odd) {
    proto::Envelope envelope;
    envelope.mutable_hello()->set_protocol_version(kProtocolVersion);
    envelope.mutable_hello()->set_agent_version("raw-test-client");
    envelope.mutable_hello()->mutable_os()->set_hostname("web-01");
    envelope.mutable_hello()->mutable_os()->add_ip_addresses("192.0.2.10");
    odd(*envelope.mutable_hello()->mutable_os());
    const auto frame = encode_frame(envelope.SerializeAsString());
    const auto outcome = send_to_gateway(host_of(controller.gateway()), controller.gateway_port(),
                                         state, false, {frame.begin(), frame.end()}, 5s);
    for (const auto& raw : outcome.received) {
      proto::Envelope reply;
      if (reply.ParseFromString(raw) && reply.has_hello_ack()) return reply.hello_ack();
    }
    return proto::HelloAck();
  };
  const std::vector<std::pair<std::string, std::function<void(proto::OsFacts&)>>> cases{
      {"hostname", [](proto::OsFacts& os) { os.set_hostname("web-01\nFAKE LOG LINE"); }},
      {"hostname", [](proto::OsFacts& os) { os.set_hostname(std::string(300, 'a')); }},
      {"kernel", [](proto::OsFacts& os) { os.set_kernel("6.1\x1b[2J"); }},
      {"ip_addresses", [](proto::OsFacts& os) { os.add_ip_addresses(std::string(15000, '1')); }},
      {"ip_addresses", [](proto::OsFacts& os) { os.add_ip_addresses("not-an-address"); }},
      {"256 addresses",
       [](proto::OsFacts& os) {
         for (int i = 0; i < 300; ++i) os.add_ip_addresses("198.51.100." + std::to_string(i % 250));
       }},
      {"mac_addresses", [](proto::OsFacts& os) { os.add_mac_addresses("zz:zz"); }},
  };
  for (const auto& [field, odd] : cases) {
    const auto ack = hello_with(odd);
    EXPECT_FALSE(ack.accepted()) << field;
    EXPECT_NE(ack.reason().find(field), std::string::npos) << ack.reason();
  }
  // Nothing of them was stored; a Hello with ordinary facts (a scoped IPv6 address too) is taken.
  EXPECT_EQ(controller.cli_json({"agents", "show", id})["hostname"], enrolled_as);
  const auto ok = hello_with([](proto::OsFacts& os) { os.add_ip_addresses("fe80::1%eth0"); });
  EXPECT_TRUE(ok.accepted()) << ok.reason();
  EXPECT_EQ(controller.cli_json({"agents", "show", id})["hostname"], "web-01");

  // An alert's host name with a newline and an escape sequence: escaped in the table, exact in
  // JSON.
  std::ofstream(controller.dir() / "alert.json")
      << nlohmann::json{{"title", "odd"}, {"host", "evil\x1b[31m\nhost"}}.dump();
  ASSERT_EQ(
      controller.cli({"alerts", "submit", (controller.dir() / "alert.json").string()}).exit_code,
      0);
  const auto table = controller.cli({"alerts", "list"}).out;
  EXPECT_EQ(table.find('\x1b'), std::string::npos) << table;
  EXPECT_NE(table.find("evil\\x1b[31m\\x0ahost"), std::string::npos) << table;
  const auto exact = controller.cli_json({"alerts", "list"});
  EXPECT_EQ(exact["alerts"][0]["host"]["name"], "evil\x1b[31m\nhost");
}

TEST(SessionIntegration, SilentConnectionIsClosedAfterTheHandshakeTimeout) {
  ControllerUnderTest controller;
  controller.start();
  // Connect and say nothing at all: the controller must not keep the socket forever.
  const auto start = std::chrono::steady_clock::now();
  auto outcome =
      send_to_gateway(host_of(controller.gateway()), controller.gateway_port(), {}, false, {}, 30s);
  EXPECT_TRUE(outcome.closed_by_peer) << outcome.detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 25s);
}

}  // namespace
}  // namespace riposte::testing
