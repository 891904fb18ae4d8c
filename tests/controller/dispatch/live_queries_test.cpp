// Live queries on a real store and dispatcher, answered as an agent's session would: an alert
// storm's identical questions share the one action in flight, distinct questions do not, and an
// answer once given is never reused for a later question.

#include "controller/dispatch/live_queries.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "controller/store/sqlite_store.h"
#include "protocol/actions.pb.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

class LiveQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store = SqliteStore::open(dir.path() / "riposte.db").value();
    key = crypto::generate_ed25519().value();
    AgentRecord a;
    a.id = "agent-1";
    a.cert_serial = "01";
    a.cert_fingerprint = "sha256:00";
    a.enrolled_at_ms = 1;
    ASSERT_TRUE(store->insert_agent(a));
    dispatcher = std::make_unique<ActionDispatcher>(*store, key.get(), clock);
    dispatcher->set_sender([this](const std::string&, proto::Envelope e) {
      sent.push_back(std::move(e));
      return true;
    });
    queries = std::make_unique<LiveQueries>(io, *store, *dispatcher);
  }

  // Asks "did you talk to `ip`?" and returns where the answers will land.
  std::shared_ptr<std::vector<LiveAnswer>> ask(const std::string& ip) {
    auto out = std::make_shared<std::vector<LiveAnswer>>();
    queries->ask({{"agent-1", "network.connections", json{{"history_address", ip}}}}, "t", "",
                 30'000, [out](std::vector<LiveAnswer> answers) { *out = std::move(answers); });
    return out;
  }
  void agent_answers(const std::string& action_id, bool succeeded) {
    proto::ActionResult result;
    result.set_action_id(action_id);
    result.set_status(succeeded ? proto::ActionResult::STATUS_SUCCEEDED
                                : proto::ActionResult::STATUS_FAILED);
    dispatcher->handle_result("agent-1", result);
    io.poll();
  }
  std::string action_of(const proto::Envelope& e) {
    proto::ActionSpec spec;
    spec.ParseFromString(e.action_request().action_spec());
    return spec.action_id();
  }

  testing::TempDir dir;
  ManualClock clock{1'700'000'000'000};
  boost::asio::io_context io;
  std::unique_ptr<SqliteStore> store;
  crypto::PkeyPtr key;
  std::unique_ptr<ActionDispatcher> dispatcher;
  std::unique_ptr<LiveQueries> queries;
  std::vector<proto::Envelope> sent;
};

TEST_F(LiveQueriesTest, AStormOfTheSameQuestionAsksTheAgentOnce) {
  std::vector<std::shared_ptr<std::vector<LiveAnswer>>> storm;
  for (int i = 0; i < 50; ++i) storm.push_back(ask("203.0.113.9"));
  ASSERT_EQ(sent.size(), 1u);  // fifty alerts, one question in flight
  const auto other = ask("198.51.100.7");
  ASSERT_EQ(sent.size(), 2u);  // a different question is asked
  agent_answers(action_of(sent[0]), true);
  for (const auto& answers : storm) {
    ASSERT_EQ(answers->size(), 1u);
    EXPECT_EQ(answers->at(0).state, "succeeded");
    EXPECT_EQ(answers->at(0).action_id, action_of(sent[0]));
  }
  EXPECT_TRUE(other->empty());  // still waiting for its own answer
  // Asked again after the answer: asked again (a process may have started since).
  ask("203.0.113.9");
  EXPECT_EQ(sent.size(), 3u);
  agent_answers(action_of(sent[1]), false);
  EXPECT_EQ(other->at(0).state, "failed");
}

}  // namespace
}  // namespace riposte::controller
