// Dispatch on the controller side, on a real SQLite store: validation before anything is stored,
// signatures agents can check, queueing and redelivery, state changes from agent reports, expiry,
// and the audit chain those changes write.

#include "controller/dispatch/action_dispatcher.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "common/utf8.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/store/audit_chain.h"
#include "controller/store/sqlite_store.h"
#include "protocol/action_catalog.h"
#include "protocol/action_signing.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store = SqliteStore::open(dir.path() / "riposte.db").value();
    key = crypto::generate_ed25519().value();
    for (const char* id : {"agent-1", "agent-2", "agent-3"}) {
      AgentRecord a;
      a.id = id;
      a.cert_serial = "01";
      a.cert_fingerprint = "sha256:00";
      a.enrolled_at_ms = 1;
      ASSERT_TRUE(store->insert_agent(a));
    }
    dispatcher = std::make_unique<ActionDispatcher>(*store, key.get(), clock);
    dispatcher->set_sender([this](const std::string& agent, proto::Envelope e) {
      if (!online.contains(agent)) return false;
      sent.emplace_back(agent, std::move(e));
      return true;
    });
  }

  ActionSubmission facts_for(std::vector<std::string> agents) {
    ActionSubmission s;
    s.agent_ids = std::move(agents);
    s.kind = "host.facts";
    s.requester = "alice";
    return s;
  }

  // A file.collect for `agent` whose succeeded result declares `content` as its one object, as
  // a real agent's would; returns the action id.
  std::string collected(const std::string& agent, const std::string& content) {
    auto s = facts_for({agent});
    s.kind = "file.collect";
    s.parameters = json{{"path", "/var/log/collected"}};
    const auto action = dispatcher->submit(s).value().front();
    proto::ActionResult r;
    r.set_action_id(action.id);
    r.set_status(proto::ActionResult::STATUS_SUCCEEDED);
    proto::FileResult f;
    f.set_sha256(crypto::sha256_hex(content));
    f.set_size(content.size());
    r.set_output(f.SerializeAsString());
    auto* e = r.add_evidence();
    e->set_sha256(f.sha256());
    e->set_size(content.size());
    e->set_name(action.id + ".collected");
    EXPECT_TRUE(dispatcher->handle_result(agent, r));
    return action.id;
  }

  int audit_count() { return static_cast<int>(store->audit_entries(0, 100000).value().size()); }

  testing::TempDir dir;
  ManualClock clock{1'700'000'000'000};
  std::unique_ptr<SqliteStore> store;
  crypto::PkeyPtr key;
  std::unique_ptr<ActionDispatcher> dispatcher;
  std::set<std::string> online;
  std::vector<std::pair<std::string, proto::Envelope>> sent;
};

TEST_F(DispatcherTest, BadRequestsAreRefusedAndNothingIsStored) {
  auto unknown_kind = facts_for({"agent-1"});
  unknown_kind.kind = "process.explode";
  EXPECT_NE(dispatcher->submit(unknown_kind).error().message.find("unknown action kind"),
            std::string::npos);
  auto bad_params = facts_for({"agent-1"});
  bad_params.kind = "process.kill";
  bad_params.parameters = json{{"target", {{"pid", "not a number"}}}};
  EXPECT_NE(dispatcher->submit(bad_params).error().message.find("parameters for process.kill"),
            std::string::npos);
  EXPECT_NE(dispatcher->submit(facts_for({"agent-1", "nobody"})).error().message.find("no agent"),
            std::string::npos);
  auto ttl = facts_for({"agent-1"});
  ttl.ttl_ms = 30LL * 24 * 3600 * 1000;
  EXPECT_FALSE(dispatcher->submit(ttl));
  ASSERT_TRUE(store->revoke_agent("agent-3", clock.now_unix_ms()));
  EXPECT_NE(dispatcher->submit(facts_for({"agent-3"})).error().message.find("revoked"),
            std::string::npos);
  EXPECT_TRUE(store->list_actions(100).value().empty());
  EXPECT_EQ(audit_count(), 0);
}

TEST_F(DispatcherTest, FanOutSignsOneActionPerAgentThatAgentsCanVerify) {
  online = {"agent-1"};
  auto actions = dispatcher->submit(facts_for({"agent-1", "agent-2"}));
  ASSERT_TRUE(actions) << actions.error().message;
  ASSERT_EQ(actions->size(), 2u);
  EXPECT_EQ((*actions)[0].batch_id, (*actions)[1].batch_id);
  EXPECT_NE((*actions)[0].id, (*actions)[1].id);
  // The online agent got it at once; the offline one's waits.
  EXPECT_EQ((*actions)[0].state, ActionState::delivered);
  EXPECT_EQ((*actions)[1].state, ActionState::queued);
  ASSERT_EQ(sent.size(), 1u);

  auto pub = crypto::load_public_key_pem(crypto::public_key_pem(key.get())).value();
  auto spec = verify_action(sent[0].second.action_request(), pub.get());
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->action_id(), (*actions)[0].id);
  EXPECT_EQ(spec->target_agent_id(), "agent-1");
  EXPECT_EQ(spec->requester(), "alice");
  EXPECT_EQ(spec->expires_at_unix_ms(), clock.now_unix_ms() + 5 * 60 * 1000);
  // Stored exactly as signed.
  EXPECT_EQ(store->find_action((*actions)[0].id).value()->spec,
            sent[0].second.action_request().action_spec());

  // agent-2 connects: its queued action goes out.
  online.insert("agent-2");
  dispatcher->agent_connected("agent-2");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].first, "agent-2");
  EXPECT_EQ(store->find_action((*actions)[1].id).value()->state, ActionState::delivered);
}

TEST_F(DispatcherTest, ReportsMoveTheStateAndAResultIsStoredOnce) {
  online = {"agent-1"};
  const auto action = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionProgress started;
  started.set_action_id(action.id);
  dispatcher->handle_progress("agent-1", started);
  EXPECT_EQ(store->find_action(action.id).value()->state, ActionState::running);

  proto::ActionResult result;
  result.set_action_id(action.id);
  result.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  proto::OsFacts facts;
  facts.set_hostname("web-1");
  result.set_output(facts.SerializeAsString());
  result.set_finished_at_unix_ms(clock.now_unix_ms());
  // Another agent cannot end it.
  ASSERT_TRUE(dispatcher->handle_result("agent-2", result));
  EXPECT_EQ(store->find_action(action.id).value()->state, ActionState::running);

  ASSERT_TRUE(dispatcher->handle_result("agent-1", result).has_value());
  auto stored = store->find_action(action.id).value().value();
  EXPECT_EQ(stored.state, ActionState::succeeded);
  EXPECT_EQ(action_json(stored)["result"]["hostname"], "web-1");

  // A duplicate (agent re-sent after a lost ack) is acknowledged but changes nothing.
  const int before = audit_count();
  result.set_status(proto::ActionResult::STATUS_FAILED);
  EXPECT_TRUE(dispatcher->handle_result("agent-1", result).has_value());
  EXPECT_EQ(store->find_action(action.id).value()->state, ActionState::succeeded);
  EXPECT_EQ(audit_count(), before);

  // A replay refusal of our own redelivery leaves the state alone too.
  auto again = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionResult replay;
  replay.set_action_id(again.id);
  replay.set_status(proto::ActionResult::STATUS_REJECTED);
  replay.set_refusal(proto::ActionResult::REFUSAL_REPLAYED);
  dispatcher->handle_result("agent-1", replay);
  EXPECT_EQ(store->find_action(again.id).value()->state, ActionState::delivered);
}

// A compromised agent with a valid certificate reporting on actions that are not its own (or do
// not exist, or have ended): nothing changes, nothing is audited, every report is counted.
TEST_F(DispatcherTest, ReportsAboutActionsNotTheSendersOwnAndOpenAreDroppedAndCounted) {
  online = {"agent-1", "agent-2"};
  const auto victim = dispatcher->submit(facts_for({"agent-1"})).value().front();
  const auto own = dispatcher->submit(facts_for({"agent-2"})).value().front();
  proto::ActionResult done;
  done.set_action_id(own.id);
  done.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  ASSERT_TRUE(dispatcher->handle_result("agent-2", done));  // its own: recorded
  const int before = audit_count();
  int sent_reports = 0;
  for (const auto& id : {victim.id, std::string("00000000-0000-4000-8000-000000000000"), own.id}) {
    for (int i = 0; i < 100; ++i) {
      proto::ActionResult result;
      result.set_action_id(id);
      result.set_status(proto::ActionResult::STATUS_FAILED);
      EXPECT_TRUE(dispatcher->handle_result("agent-2", result).has_value());  // acknowledged
      proto::ActionResult replay = result;
      replay.set_status(proto::ActionResult::STATUS_REJECTED);
      replay.set_refusal(proto::ActionResult::REFUSAL_REPLAYED);
      dispatcher->handle_result("agent-2", replay);
      proto::ActionProgress progress;
      progress.set_action_id(id);
      dispatcher->handle_progress("agent-2", progress);
      sent_reports += 3;
    }
  }
  EXPECT_EQ(audit_count(), before);
  EXPECT_EQ(store->find_action(victim.id).value()->state, ActionState::delivered);
  EXPECT_EQ(store->find_action(own.id).value()->state, ActionState::succeeded);
  EXPECT_EQ(dispatcher->dropped_reports("agent-2"), static_cast<std::uint64_t>(sent_reports));
  EXPECT_EQ(dispatcher->dropped_reports("agent-1"), 0u);
  // The victim's own report still counts.
  proto::ActionResult real;
  real.set_action_id(victim.id);
  real.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  ASSERT_TRUE(dispatcher->handle_result("agent-1", real));
  EXPECT_EQ(store->find_action(victim.id).value()->state, ActionState::succeeded);
}

// The gateway's path: results that arrive while a group is being written return at once and are
// written together by the thread writing (one transaction), under the same rules as one at a
// time: an agent's own open action ends once, reports on others' actions are dropped and counted.
// Past kMaxQueuedResults waiting, a caller stores its result itself (backpressure).
TEST_F(DispatcherTest, ResultsArrivingDuringAWriteAreStoredTogetherByTheWriter) {
  online = {"agent-1", "agent-2"};
  std::vector<ActionRecord> actions;
  for (int i = 0; i < 40; ++i)
    for (auto& a : dispatcher->submit(facts_for({"agent-1", "agent-2"})).value())
      actions.push_back(std::move(a));
  const auto result_for = [](const std::string& id) {
    proto::ActionResult r;
    r.set_action_id(id);
    r.set_status(proto::ActionResult::STATUS_SUCCEEDED);
    return r;
  };
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> first{true};
  dispatcher->add_observer([&](const std::string&, ActionState) {
    if (first.exchange(false)) released.wait();  // the writer holds its first group here
  });
  std::mutex replies_mutex;
  std::map<std::string, int> acks;  // action id -> acks received
  std::map<std::string, std::thread::id> replied_on;
  int replies = 0;
  const auto reply_for = [&](std::string id) {
    return [&, id](std::optional<proto::Envelope> ack) {
      std::lock_guard lock(replies_mutex);
      ++replies;
      if (ack && ack->action_result_ack().action_id() == id) ++acks[id];
      replied_on[id] = std::this_thread::get_id();
    };
  };
  const int before = audit_count();
  std::thread writer([&] {
    dispatcher->handle_result_grouped(actions[0].agent_id, result_for(actions[0].id),
                                      reply_for(actions[0].id));
  });
  while (first.load()) std::this_thread::yield();  // the writer is inside its first group

  int reports = 0;
  for (std::size_t i = 1; i < actions.size(); ++i, ++reports)
    dispatcher->handle_result_grouped(actions[i].agent_id, result_for(actions[i].id),
                                      reply_for(actions[i].id));
  // agent-2 reporting on agent-1's actions, and agent-1 sending its result twice.
  const auto& victim = actions[2].agent_id == "agent-1" ? actions[2] : actions[3];
  for (int i = 0; i < 10; ++i, ++reports) {
    auto failed = result_for(victim.id);
    failed.set_status(proto::ActionResult::STATUS_FAILED);
    dispatcher->handle_result_grouped("agent-2", failed, reply_for("foreign"));
  }
  dispatcher->handle_result_grouped(victim.agent_id, result_for(victim.id), reply_for("twice"));
  ++reports;
  {
    std::lock_guard lock(replies_mutex);
    EXPECT_EQ(replies, 0) << "callers returned before their group was written";
  }
  release.set_value();
  writer.join();

  EXPECT_EQ(replies, reports + 1);
  for (const auto& a : actions) {
    EXPECT_EQ(acks[a.id], 1) << a.id;
    EXPECT_EQ(replied_on[a.id], replied_on[actions[0].id]) << "written by the writer thread";
    EXPECT_EQ(store->find_action(a.id).value()->state, ActionState::succeeded);
  }
  EXPECT_NE(replied_on[actions[1].id], std::this_thread::get_id());
  EXPECT_EQ(dispatcher->dropped_reports("agent-2"), 10u);
  EXPECT_EQ(audit_count(), before + static_cast<int>(actions.size()));
  EXPECT_FALSE(verify_audit_chain(*store).value().first_broken_seq.has_value());

  // Backpressure: with kMaxQueuedResults waiting behind a busy writer, the next caller stores
  // its own result before it returns.
  auto last = dispatcher->submit(facts_for({"agent-1"})).value().front();
  std::promise<void> release2;
  auto released2 = release2.get_future().share();
  first = true;
  released = released2;
  auto blocker = dispatcher->submit(facts_for({"agent-1"})).value().front();
  std::thread writer2([&] {
    dispatcher->handle_result_grouped("agent-1", result_for(blocker.id), reply_for(blocker.id));
  });
  while (first.load()) std::this_thread::yield();
  for (std::size_t i = 0; i < ActionDispatcher::kMaxQueuedResults; ++i)
    dispatcher->handle_result_grouped("agent-1", result_for("00000000-0000-4000-8000-000000000000"),
                                      [](std::optional<proto::Envelope>) {});
  dispatcher->handle_result_grouped("agent-1", result_for(last.id), reply_for(last.id));
  {
    std::lock_guard lock(replies_mutex);
    EXPECT_EQ(acks[last.id], 1);
    EXPECT_EQ(replied_on[last.id], std::this_thread::get_id());
  }
  EXPECT_EQ(store->find_action(last.id).value()->state, ActionState::succeeded);
  release2.set_value();
  writer2.join();
  EXPECT_EQ(acks[blocker.id], 1);
}

// An agent's message holding a NUL (a path it was given with one, quoted back) is stored with
// the NUL replaced: PostgreSQL text cannot hold one, and a result the store refuses would leave
// the action running for good.
TEST_F(DispatcherTest, ANulInAnAgentsMessageIsReplacedNotRefused) {
  online = {"agent-1"};
  const auto action = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionResult result;
  result.set_action_id(action.id);
  result.set_status(proto::ActionResult::STATUS_FAILED);
  result.set_message(std::string("no such file: /tmp/no\0such", 26));
  std::optional<proto::Envelope> answer;
  dispatcher->handle_result_grouped("agent-1", result, [&](auto ack) { answer = std::move(ack); });
  ASSERT_TRUE(answer.has_value() && answer->has_action_result_ack());
  const auto stored = store->find_action(action.id).value().value();
  EXPECT_EQ(stored.state, ActionState::failed);
  EXPECT_EQ(stored.reason, "no such file: /tmp/no\xEF\xBF\xBDsuch");
}

// An agent's message is cut at 4 KiB, possibly inside a UTF-8 character, or is not UTF-8 at
// all: the result is stored (the text repaired) and the store stays usable; and a group whose
// writing throws (here: an observer) is answered, and the results after it are still written.
TEST_F(DispatcherTest, OddMessagesAndAThrowingObserverStopNothing) {
  online = {"agent-1"};
  const auto first = dispatcher->submit(facts_for({"agent-1"})).value().front();
  const auto second = dispatcher->submit(facts_for({"agent-1"})).value().front();
  const auto third = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionResult cut;
  cut.set_action_id(first.id);
  cut.set_status(proto::ActionResult::STATUS_FAILED);
  cut.set_message(std::string(4095, 'a') + "\xc3\xa9 and \xff");  // é straddles the cut
  std::optional<proto::Envelope> answer;
  dispatcher->handle_result_grouped("agent-1", cut, [&](auto ack) { answer = std::move(ack); });
  ASSERT_TRUE(answer.has_value());
  auto stored = store->find_action(first.id).value().value();
  EXPECT_EQ(stored.state, ActionState::failed);
  EXPECT_TRUE(is_utf8(stored.reason));
  EXPECT_FALSE(verify_audit_chain(*store).value().first_broken_seq.has_value());

  bool thrown = false;
  dispatcher->add_observer([&](const std::string& id, ActionState) {
    if (id == second.id && !thrown) {
      thrown = true;
      throw std::runtime_error("observer failed");
    }
  });
  int answered = 0;
  for (const auto& a : {second, third}) {
    proto::ActionResult r;
    r.set_action_id(a.id);
    r.set_status(proto::ActionResult::STATUS_SUCCEEDED);
    dispatcher->handle_result_grouped("agent-1", r, [&](auto) { ++answered; });
  }
  EXPECT_TRUE(thrown);
  EXPECT_EQ(answered, 2);
  EXPECT_EQ(store->find_action(third.id).value()->state, ActionState::succeeded);
}

// A compromised agent attaching objects to its own actions: only what the kind produces, named,
// counted and sized as its result says, within the action's limit and the agent's quota, is
// taken. The rest is listed with its reason in the action's audit entry, and an offer of it is
// answered with that reason.
TEST_F(DispatcherTest, EvidenceIsTakenOnlyWhereTheActionsKindProducesIt) {
  online = {"agent-1"};
  EvidenceStore evidence(dir.path() / "evidence", *store, clock);
  ASSERT_TRUE(evidence.open());
  dispatcher->set_evidence_store(&evidence);
  const std::string big(8 << 20, 'x');
  const auto ref = [](proto::ActionResult& r, const std::string& sha, std::uint64_t size,
                      const std::string& name) {
    auto* e = r.add_evidence();
    e->set_sha256(sha);
    e->set_size(size);
    e->set_name(name);
  };
  const auto refusals_of = [&](const std::string& action_id) {
    const auto entries = store->audit_entries(0, 100000).value();
    for (const auto& entry : entries) {
      if (entry.subject != action_id || entry.event.rfind("action.", 0) != 0) continue;
      const auto details = json::parse(entry.details);
      if (details.contains("evidence_refused")) return details["evidence_refused"];
    }
    return json::array();
  };
  const auto offer_answer = [&](const std::string& action_id, const std::string& sha,
                                std::uint64_t size) {
    proto::EvidenceOffer offer;
    offer.set_action_id(action_id);
    offer.mutable_evidence()->set_sha256(sha);
    offer.mutable_evidence()->set_size(size);
    return evidence.offer("agent-1", offer);
  };

  // host.facts produces nothing: 8 MiB named like a collected /etc/shadow is refused.
  const auto facts = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionResult r1;
  r1.set_action_id(facts.id);
  r1.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  const auto big_sha = crypto::sha256_hex(big);
  ref(r1, big_sha, big.size(), "collected:/etc/shadow");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r1));
  auto stored = store->find_action(facts.id).value().value();
  EXPECT_EQ(stored.state, ActionState::succeeded);  // the result itself stands
  EXPECT_TRUE(stored.evidence.empty());
  auto refused = refusals_of(facts.id);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["reason"], "host.facts produces no evidence");
  EXPECT_EQ(refused[0]["name"], "collected:/etc/shadow");
  auto answer = offer_answer(facts.id, big_sha, big.size());
  EXPECT_NE(answer.error().find("host.facts produces no evidence"), std::string::npos)
      << answer.error();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "evidence" / ".partial" / big_sha));

  // file.collect: one object, named and sized as its FileResult says, within max_bytes.
  const auto collect = [&](std::uint64_t max_bytes) {
    auto s = facts_for({"agent-1"});
    s.kind = "file.collect";
    s.parameters = json{{"path", "/etc/hostname"}, {"max_bytes", std::to_string(max_bytes)}};
    return dispatcher->submit(s).value().front();
  };
  const auto file_result = [&](const std::string& action_id, const std::string& content) {
    proto::ActionResult r;
    r.set_action_id(action_id);
    r.set_status(proto::ActionResult::STATUS_SUCCEEDED);
    proto::FileResult f;
    f.set_sha256(crypto::sha256_hex(content));
    f.set_size(content.size());
    r.set_output(f.SerializeAsString());
    return r;
  };
  const std::string file = "web-1\n";
  const auto sha = crypto::sha256_hex(file);
  const auto a2 = collect(0);
  auto r2 = file_result(a2.id, file);
  ref(r2, sha, file.size(), a2.id + ".collected");
  ref(r2, big_sha, big.size(), a2.id + ".collected");  // a second object
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r2));
  stored = store->find_action(a2.id).value().value();
  ASSERT_EQ(stored.evidence.size(), 1u);
  EXPECT_EQ(stored.evidence[0].sha256, sha);
  refused = refusals_of(a2.id);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["reason"], "file.collect produces one object");
  EXPECT_EQ(offer_answer(a2.id, sha, file.size()).error(), "");

  const auto a3 = collect(0);  // another name
  auto r3 = file_result(a3.id, file);
  ref(r3, sha, file.size(), "collected:/etc/shadow");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r3));
  EXPECT_NE(refusals_of(a3.id)[0]["reason"].get<std::string>().find("names its object"),
            std::string::npos);

  const auto a4 = collect(0);  // bigger than the file the result reports
  auto r4 = file_result(a4.id, file);
  ref(r4, big_sha, big.size(), a4.id + ".collected");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r4));
  EXPECT_EQ(refusals_of(a4.id)[0]["reason"],
            "hash or size differs from what the action's result reports");

  const auto a5 = collect(1024);  // consistent, but over the action's max_bytes
  auto r5 = file_result(a5.id, big);
  ref(r5, big_sha, big.size(), a5.id + ".collected");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r5));
  EXPECT_NE(refusals_of(a5.id)[0]["reason"].get<std::string>().find("over the action's limit"),
            std::string::npos);

  const auto a6 = collect(0);  // a failed action brings nothing
  auto r6 = file_result(a6.id, file);
  r6.set_status(proto::ActionResult::STATUS_FAILED);
  ref(r6, sha, file.size(), a6.id + ".collected");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r6));
  EXPECT_EQ(refusals_of(a6.id)[0]["reason"], "only a succeeded action brings evidence");

  // memory.capture: at most the memory the result reports plus headers.
  auto capture = facts_for({"agent-1"});
  capture.kind = "memory.capture";
  capture.parameters = json{{"target", {{"pid", "42"}, {"start_ticks", "1000"}}}};
  const auto a7 = dispatcher->submit(capture).value().front();
  proto::ActionResult r7;
  r7.set_action_id(a7.id);
  r7.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  proto::MemoryCaptureResult m;
  m.set_sha256(big_sha);
  m.set_bytes(kCoreHeaderAllowance + 4096 + 1);
  m.set_memory_bytes(4096);
  r7.set_output(m.SerializeAsString());
  ref(r7, big_sha, m.bytes(), a7.id + ".core");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r7));
  EXPECT_NE(refusals_of(a7.id)[0]["reason"].get<std::string>().find("process memory"),
            std::string::npos);
  const auto a8 = dispatcher->submit(capture).value().front();
  r7.set_action_id(a8.id);
  m.set_bytes(big.size());
  m.set_memory_bytes(big.size() - 8192);
  r7.set_output(m.SerializeAsString());
  r7.clear_evidence();
  ref(r7, big_sha, big.size(), a8.id + ".core");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r7));
  EXPECT_EQ(store->find_action(a8.id).value()->evidence.size(), 1u);
  EXPECT_TRUE(refusals_of(a8.id).empty());

  // max_bytes caps the memory the agent reads, not the headers it writes besides.
  auto capped = capture;
  capped.parameters["max_bytes"] = "4096";
  const auto a9 = dispatcher->submit(capped).value().front();
  r7.set_action_id(a9.id);
  m.set_memory_bytes(4096);
  m.set_bytes(4096 + 20000);
  r7.set_output(m.SerializeAsString());
  r7.clear_evidence();
  ref(r7, big_sha, m.bytes(), a9.id + ".core");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r7));
  EXPECT_EQ(store->find_action(a9.id).value()->evidence.size(), 1u);

  // Sizes near 2^64 (which would wrap the quota sum) are refused, not wrapped.
  const auto a10 = dispatcher->submit(capture).value().front();
  r7.set_action_id(a10.id);
  m.set_memory_bytes(UINT64_MAX - 10);
  m.set_bytes(UINT64_MAX - 5);
  r7.set_output(m.SerializeAsString());
  r7.clear_evidence();
  ref(r7, big_sha, m.bytes(), a10.id + ".core");
  ASSERT_TRUE(dispatcher->handle_result("agent-1", r7));
  EXPECT_TRUE(store->find_action(a10.id).value()->evidence.empty());

  // A million objects in one result: a handful decided, the rest one refusal.
  const auto a11 = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionResult many;
  many.set_action_id(a11.id);
  many.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  for (int i = 0; i < 1'000'000; ++i) many.add_evidence();
  ASSERT_TRUE(dispatcher->handle_result("agent-1", many));
  refused = refusals_of(a11.id);
  ASSERT_EQ(refused.size(), kMaxEvidenceRefsDecided + 1);
  EXPECT_EQ(refused.back()["reason"], "999992 more objects named by one result, not looked at");
}

// Knowing an object's hash is no proof of holding it: an object stored from agent-1 is taken
// from agent-2 only by uploading it again (hash checked); agent-1's own later action needs no
// upload.
TEST_F(DispatcherTest, AStoredObjectIsTakenWithoutUploadOnlyFromTheAgentThatDeliveredIt) {
  EvidenceStore evidence(dir.path() / "evidence", *store, clock);
  ASSERT_TRUE(evidence.open());
  const std::string content = "the collected file\n";
  const auto sha = crypto::sha256_hex(content);
  const auto declare = [&](const std::string& agent) { return collected(agent, content); };
  const auto offer = [&](const std::string& agent, const std::string& action_id) {
    proto::EvidenceOffer o;
    o.set_action_id(action_id);
    o.mutable_evidence()->set_sha256(sha);
    o.mutable_evidence()->set_size(content.size());
    return evidence.offer(agent, o);
  };
  const auto first = declare("agent-1");
  auto ack = offer("agent-1", first);
  ASSERT_EQ(ack.error(), "");
  ASSERT_FALSE(ack.complete());
  std::promise<proto::EvidenceAck> stored;
  proto::EvidenceChunk chunk;
  chunk.set_action_id(first);
  chunk.set_sha256(sha);
  chunk.set_data(content);
  evidence.append("agent-1", std::move(chunk), [&](proto::EvidenceAck a) {
    if (a.complete() || !a.error().empty()) stored.set_value(a);
  });
  ASSERT_TRUE(stored.get_future().get().complete());

  const auto other = declare("agent-2");
  ack = offer("agent-2", other);
  EXPECT_EQ(ack.error(), "");
  EXPECT_FALSE(ack.complete()) << "agent-2 must send the bytes";
  EXPECT_EQ(ack.offset(), 0u);
  EXPECT_FALSE(store->find_action(other).value()->evidence.front().stored);

  const auto again = declare("agent-1");
  ack = offer("agent-1", again);
  EXPECT_TRUE(ack.complete());
  EXPECT_TRUE(store->find_action(again).value()->evidence.front().stored);
  EXPECT_FALSE(store->find_action(other).value()->evidence.front().stored);
}

TEST_F(DispatcherTest, AnAgentsEvidenceQuotaBoundsWhatItCanDeclare) {
  DispatchOptions options;
  options.evidence.agent_quota_bytes = 10 << 20;
  dispatcher = std::make_unique<ActionDispatcher>(*store, key.get(), clock, options);
  const std::string object(4 << 20, 'q');
  auto collect_of = [&](const std::string& agent) {
    return store->find_action(collected(agent, object)).value()->evidence.size();
  };
  EXPECT_EQ(collect_of("agent-1"), 1u);
  EXPECT_EQ(collect_of("agent-1"), 1u);
  EXPECT_EQ(collect_of("agent-1"), 0u);  // 12 MiB > 10 MiB
  EXPECT_EQ(collect_of("agent-2"), 1u);  // another agent's quota is its own
  clock.advance_ms(25LL * 3600 * 1000);
  EXPECT_EQ(collect_of("agent-1"), 1u);  // the window has passed
}

TEST_F(DispatcherTest, QueuedActionsExpireAndAreNeverDeliveredLate) {
  auto queued = facts_for({"agent-1"});
  queued.ttl_ms = 10'000;
  const auto action = dispatcher->submit(queued).value().front();
  clock.advance_ms(10'001);
  dispatcher->expire_due();
  auto stored = store->find_action(action.id).value().value();
  EXPECT_EQ(stored.state, ActionState::expired);
  EXPECT_NE(stored.reason.find("before the agent could receive it"), std::string::npos);
  online = {"agent-1"};
  dispatcher->agent_connected("agent-1");
  EXPECT_TRUE(sent.empty());
}

// The agent accepts an action up to its clock-skew allowance past expires_at and may finish it
// after the controller's sweep gave up on it: the result that arrives is the truth and is
// recorded (audited as after expiry), never dropped. An action never delivered stays expired.
TEST_F(DispatcherTest, AResultArrivingAfterTheExpirySweepIsRecorded) {
  online = {"agent-1"};
  auto short_lived = facts_for({"agent-1"});
  short_lived.ttl_ms = 10'000;
  const auto action = dispatcher->submit(short_lived).value().front();
  ASSERT_EQ(store->find_action(action.id).value()->state, ActionState::delivered);
  clock.advance_ms(10'000 + 60'000 + 1);  // past expiry and the unanswered grace
  dispatcher->expire_due();
  ASSERT_EQ(store->find_action(action.id).value()->state, ActionState::expired);

  proto::ActionResult result;
  result.set_action_id(action.id);
  result.set_status(proto::ActionResult::STATUS_SUCCEEDED);
  result.set_output(proto::OsFacts{}.SerializeAsString());
  ASSERT_TRUE(dispatcher->handle_result("agent-1", result).has_value());
  EXPECT_EQ(store->find_action(action.id).value()->state, ActionState::succeeded);
  const auto audit = store->audit_entries(0, 100000).value();
  EXPECT_EQ(audit.back().event, "action.succeeded");
  EXPECT_NE(audit.back().details.find("after_expiry"), std::string::npos) << audit.back().details;
  // Not another agent's to report, even so.
  EXPECT_TRUE(dispatcher->handle_result("agent-2", result).has_value());

  // Never delivered (the agent was offline): a result for it cannot be real and changes nothing.
  online.clear();
  const auto queued = dispatcher->submit(short_lived).value().front();
  clock.advance_ms(10'001);
  dispatcher->expire_due();
  dispatcher->handle_result("agent-1", [&] {
    auto r = result;
    r.set_action_id(queued.id);
    return r;
  }());
  EXPECT_EQ(store->find_action(queued.id).value()->state, ActionState::expired);
}

// A rule set goes to three agents: stored once, named by hash in three signed specs (the spec an
// agent verifies carries the hash, not the text), fetchable only by those agents while their
// actions are open.
TEST_F(DispatcherTest, AYaraFanOutStoresTheRulesOnceAndSignsTheirHash) {
  std::string rules;
  for (int i = 0; i < 2000; ++i)
    rules += "rule r" + std::to_string(i) + " { strings: $a = \"marker-" + std::to_string(i) +
             "\" condition: $a }\n";
  ASSERT_GT(rules.size(), 64u * 1024) << "bigger than the API's ordinary body limit";
  ActionSubmission scan;
  scan.agent_ids = {"agent-1", "agent-2"};
  scan.kind = "yara.scan";
  scan.requester = "alice";
  scan.parameters = json{{"rules", rules}, {"paths", {"/tmp"}}};
  const auto audit_before = audit_count();
  auto actions = dispatcher->submit(scan);
  ASSERT_TRUE(actions) << actions.error().message;
  const auto sha = crypto::sha256_hex(rules);
  auto objects = store->list_objects("yara-rules", 10).value();
  ASSERT_EQ(objects.size(), 1u);
  EXPECT_EQ(objects[0].sha256, sha);
  EXPECT_EQ(objects[0].size, rules.size());
  EXPECT_EQ(store->read_object(sha, 0, rules.size()).value(), rules);
  EXPECT_EQ(store->read_object(sha, 1000, 7).value(), rules.substr(1000, 7));
  for (const auto& a : *actions) {
    EXPECT_LT(a.spec.size(), 1024u) << "the spec names the rules, it does not carry them";
    proto::ActionSpec spec;
    ASSERT_TRUE(spec.ParseFromString(a.spec));
    proto::YaraScanParams p;
    ASSERT_TRUE(p.ParseFromString(spec.parameters()));
    EXPECT_TRUE(p.rules().empty());
    EXPECT_EQ(p.rules_sha256(), sha);
    EXPECT_EQ(p.rules_size(), rules.size());
    EXPECT_EQ(a.object_sha256, sha);
    EXPECT_TRUE(store->object_named_for_agent(a.agent_id, sha).value());
  }
  EXPECT_FALSE(store->object_named_for_agent("agent-3", sha).value());
  // The same rules again, by text or by hash: no second copy, one `rule_set.stored` entry.
  ASSERT_TRUE(dispatcher->submit(scan));
  scan.parameters = json{{"rules_sha256", sha}, {"paths", {"/tmp"}}};
  ASSERT_TRUE(dispatcher->submit(scan));
  EXPECT_EQ(store->list_objects("", 10).value().size(), 1u);
  EXPECT_EQ(audit_count() - audit_before, 1 + 3 * 2) << "one rule_set.stored, six action.created";
  // Once an action ends, its agent may no longer fetch the rules.
  for (const auto& a : *actions) {
    proto::ActionResult r;
    r.set_action_id(a.id);
    r.set_status(proto::ActionResult::STATUS_SUCCEEDED);
    dispatcher->handle_result(a.agent_id, r);
  }
  // agent-1 and agent-2 still have the two later scans open; cancel those by expiry.
  clock.advance_ms(3'600'000);
  dispatcher->expire_due();
  EXPECT_FALSE(store->object_named_for_agent("agent-1", sha).value());
}

TEST_F(DispatcherTest, RuleSetsThatAreNotThereOrNotTextAreRefused) {
  ActionSubmission scan;
  scan.agent_ids = {"agent-1"};
  scan.kind = "yara.scan";
  scan.requester = "alice";
  scan.parameters = json{{"rules_sha256", std::string(64, 'a')}, {"paths", {"/tmp"}}};
  auto missing = dispatcher->submit(scan);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("no YARA rule set with SHA-256"), std::string::npos);
  scan.parameters =
      json{{"rules", std::string("rule a { condition: true }\0junk", 32)}, {"paths", {"/tmp"}}};
  auto nul = dispatcher->submit(scan);
  ASSERT_FALSE(nul);
  EXPECT_NE(nul.error().message.find("NUL byte at offset 26"), std::string::npos)
      << nul.error().message;
  scan.parameters = json{{"rules", "rule a { condition: true }"},
                         {"rules_sha256", std::string(64, 'a')},
                         {"paths", {"/tmp"}}};
  EXPECT_FALSE(dispatcher->submit(scan));
  scan.parameters = json{{"paths", {"/tmp"}}};
  EXPECT_FALSE(dispatcher->submit(scan));
  EXPECT_TRUE(store->list_objects("", 10).value().empty());
  EXPECT_TRUE(store->list_actions(10).value().empty());
}

TEST_F(DispatcherTest, EveryChangeIsInTheAuditChainAndAnEditBreaksIt) {
  online = {"agent-1"};
  const auto action = dispatcher->submit(facts_for({"agent-1"})).value().front();
  proto::ActionResult result;
  result.set_action_id(action.id);
  result.set_status(proto::ActionResult::STATUS_FAILED);
  result.set_message("no such process");
  dispatcher->handle_result("agent-1", result);

  const auto entries = store->audit_entries(0, 100).value();
  std::vector<std::string> events;
  for (const auto& e : entries) events.push_back(e.event);
  EXPECT_EQ(events,
            (std::vector<std::string>{"action.created", "action.delivered", "action.failed"}));
  const auto created = json::parse(entries[0].details);
  EXPECT_EQ(created["signature"].get<std::string>().size(), 128u);
  EXPECT_EQ(created["kind"], "host.facts");
  EXPECT_EQ(entries[0].actor, "alice");
  EXPECT_EQ(entries[0].prev_hash, kAuditGenesisHash);
  EXPECT_EQ(entries[1].prev_hash, entries[0].hash);

  auto report = verify_audit_chain(*store).value();
  EXPECT_FALSE(report.first_broken_seq.has_value());
  EXPECT_EQ(report.entries, 3);
  EXPECT_EQ(report.head_hash, entries[2].hash);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "riposte.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "UPDATE audit_log SET details = '{}' WHERE seq = 3", nullptr, nullptr, nullptr);
  report = verify_audit_chain(*store).value();
  EXPECT_EQ(report.first_broken_seq, 3);
  EXPECT_NE(report.problem.find("edited"), std::string::npos);
  // Deleting an entry is found as well, at the entry after the gap.
  sqlite3_exec(db, "DELETE FROM audit_log WHERE seq = 2", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  report = verify_audit_chain(*store).value();
  EXPECT_EQ(report.first_broken_seq, 3);
  EXPECT_NE(report.problem.find("missing"), std::string::npos);
}

TEST(ActionCatalog, CliPairsBecomeTypedParameters) {
  auto params =
      action_catalog::parameters_from_pairs("yara.scan", {{"paths", "/tmp/a"},
                                                          {"paths", "/tmp/b"},
                                                          {"process.pid", "42"},
                                                          {"process.start_ticks", "7"},
                                                          {"rules", "rule x { condition: true }"}});
  ASSERT_TRUE(params) << params.error().message;
  EXPECT_EQ((*params)["paths"], (json{"/tmp/a", "/tmp/b"}));
  auto bytes = action_catalog::parameters_from_json("yara.scan", *params).value();
  proto::YaraScanParams typed;
  ASSERT_TRUE(typed.ParseFromString(bytes));
  EXPECT_EQ(typed.paths_size(), 2);
  EXPECT_EQ(typed.process().pid(), 42);

  auto kill = action_catalog::parameters_from_pairs("process.kill", {{"tree", "yes"}});
  EXPECT_NE(kill.error().message.find("true or false"), std::string::npos);
  auto unknown = action_catalog::parameters_from_pairs("process.kill", {{"target.pidd", "1"}});
  EXPECT_NE(unknown.error().message.find("target.pid"), std::string::npos);  // lists known ones
  auto not_number = action_catalog::parameters_from_pairs("process.kill", {{"target.pid", "abc"}});
  EXPECT_FALSE(not_number);

  // A process action without any target is refused too, before anything is signed.
  auto no_target = action_catalog::parameters_from_json("process.kill", json::object());
  ASSERT_FALSE(no_target);
  EXPECT_NE(no_target.error().message.find("target is missing"), std::string::npos);
  EXPECT_TRUE(action_catalog::parameters_from_json("yara.scan", json{{"paths", {"/tmp"}}}))
      << "an optional process reference stays optional";

  // Every process reference, whatever the kind, names the process by pid and start time.
  for (const auto& [kind, field] :
       std::vector<std::pair<std::string, std::string>>{{"process.kill", "target"},
                                                        {"process.suspend", "target"},
                                                        {"memory.capture", "target"},
                                                        {"yara.scan", "process"},
                                                        {"file.collect", "process"}}) {
    auto no_ticks = action_catalog::parameters_from_pairs(kind, {{field + ".pid", "42"}});
    ASSERT_FALSE(no_ticks) << kind;
    EXPECT_NE(no_ticks.error().message.find(field + ".start_ticks is missing for pid 42"),
              std::string::npos)
        << no_ticks.error().message;
    EXPECT_TRUE(action_catalog::parameters_from_pairs(
        kind, {{field + ".pid", "42"}, {field + ".start_ticks", "7"}}))
        << kind;
  }
}

}  // namespace
}  // namespace riposte::controller
