// The Store contract, run unchanged against every implementation: SQLite, and PostgreSQL in the
// throwaway cluster scripts/test.sh starts (tests/postgres_test_db.h). Plus SQLite migrations.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <latch>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "controller/store/audit_chain.h"
#include "controller/store/postgres_store.h"
#include "controller/store/sqlite_store.h"
#include "controller/store/store_copy.h"
#include "tests/postgres_test_db.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

enum class Backend { sqlite, postgresql };
void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::sqlite ? "sqlite" : "postgresql");
}

class StoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::sqlite) {
      store = SqliteStore::open(dir.path() / "store.db").value();
      return;
    }
    auto cluster = POSTGRES_CLUSTER_OR_SKIP();
    database.emplace(*cluster);
    ASSERT_FALSE(database->url().empty()) << database->error();
    auto opened = PostgresStore::open(database->url());
    ASSERT_TRUE(opened) << opened.error().message;
    store = std::move(*opened);
  }
  testing::TempDir dir;
  std::optional<testing::PostgresTestDatabase> database;  // outlives the store's connection
  std::unique_ptr<Store> store;
};

AgentRecord sample_agent(const std::string& id, const std::string& hostname) {
  AgentRecord a;
  a.id = id;
  a.facts.hostname = hostname;
  a.cert_serial = "01";
  a.cert_fingerprint = "sha256:00";
  a.enrolled_at_ms = 1000;
  return a;
}

ActionRecord sample_action(const std::string& id, const std::string& agent_id,
                           std::int64_t issued_at_ms, ActionState state = ActionState::queued) {
  ActionRecord a;
  a.id = id;
  a.agent_id = agent_id;
  a.kind = "network.status";
  a.batch_id = "batch";
  a.issued_at_ms = issued_at_ms;
  a.expires_at_ms = 1'000'000;
  a.state = state;
  return a;
}

TEST_P(StoreContract, AgentLifecycleIsRecorded) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "web-1")));
  AgentFactsRecord facts;
  facts.hostname = "web-1";
  facts.kernel = "6.1.0";
  facts.ip_addresses = {"10.0.0.5", "fe80::1"};
  facts.capabilities = {"host.facts"};
  facts.agent_version = "0.1.0";
  facts.protocol_version = 1;
  ASSERT_TRUE(store->record_agent_connected("a1", facts, "10.0.0.5:5555", 2000));
  ASSERT_TRUE(store->record_agent_heartbeats({{"a1", 3000}}));

  auto found = store->find_agent("a1");
  ASSERT_TRUE(found && found->has_value());
  const auto& a = **found;
  EXPECT_TRUE(a.connected);
  EXPECT_EQ(a.connected_since_ms, 2000);
  EXPECT_EQ(a.last_heartbeat_ms, 3000);
  EXPECT_EQ(a.facts.kernel, "6.1.0");
  EXPECT_EQ(a.facts.ip_addresses, (std::vector<std::string>{"10.0.0.5", "fe80::1"}));
  EXPECT_EQ(a.facts.capabilities, (std::vector<std::string>{"host.facts"}));
  EXPECT_EQ(a.remote_address, "10.0.0.5:5555");

  ASSERT_TRUE(store->record_agent_disconnected("a1", "network lost", 4000));
  found = store->find_agent("a1");
  EXPECT_FALSE((*found)->connected);
  EXPECT_FALSE((*found)->connected_since_ms.has_value());
  EXPECT_EQ((*found)->last_disconnect_reason, "network lost");
}

// Which addresses an agent held when: a span opens when a report first lists an address and
// closes when one no longer does; list_agents carries them (host resolution at the alert's time).
TEST_P(StoreContract, AgentAddressesAreKeptWithWhenTheyWereHeld) {
  auto agent = sample_agent("a1", "web-1");
  agent.facts.ip_addresses = {"10.0.0.5"};
  agent.enrolled_at_ms = 1000;
  ASSERT_TRUE(store->insert_agent(agent));
  AgentFactsRecord facts;
  facts.hostname = "web-1";
  facts.ip_addresses = {"10.0.0.5", "10.0.0.6"};
  ASSERT_TRUE(store->record_agent_connected("a1", facts, "10.0.0.5:5555", 2000));
  facts.ip_addresses = {"10.0.0.6"};
  ASSERT_TRUE(store->record_agent_facts("a1", facts, 3000));
  ASSERT_TRUE(store->record_agent_facts("a1", facts, 4000));  // unchanged: no new span
  facts.ip_addresses = {"10.0.0.5", "10.0.0.6"};
  ASSERT_TRUE(store->record_agent_connected("a1", facts, "10.0.0.5:5555", 5000));

  const auto agents = store->list_agents().value();
  ASSERT_EQ(agents.size(), 1u);
  std::vector<std::string> spans;
  for (const auto& span : agents[0].address_history)
    spans.push_back(fmt::format("{} {}-{}", span.ip, span.since_ms, span.until_ms));
  std::sort(spans.begin(), spans.end());
  EXPECT_EQ(spans,
            (std::vector<std::string>{"10.0.0.5 1000-3000", "10.0.0.5 5000-0", "10.0.0.6 2000-0"}));
}

TEST_P(StoreContract, RevocationIsPersistedAndFirstTimeKept) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "h")));
  ASSERT_TRUE(store->insert_agent(sample_agent("a2", "h")));
  ASSERT_TRUE(store->revoke_agent("a1", 5000));
  ASSERT_TRUE(store->revoke_agent("a1", 6000));
  EXPECT_EQ((*store->find_agent("a1"))->revoked_at_ms, 5000);
  EXPECT_EQ(store->revoked_agent_ids().value(), std::vector<std::string>{"a1"});
  auto unknown = store->revoke_agent("nope", 1);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("no agent"), std::string::npos);
}

// A fan-out's deliveries are recorded together: only what was still queued changes, each with
// its audit entry.
TEST_P(StoreContract, DeliveriesAreMarkedInOneBatch) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "one")));
  std::vector<ActionRecord> actions;
  std::vector<AuditEvent> audit;
  for (const char* id : {"x1", "x2", "x3"}) {
    actions.push_back(sample_action(id, "a1", 1000));
    audit.push_back({"rita", "action.created", id, "{}"});
  }
  ASSERT_TRUE(store->insert_actions(actions, audit, 1000));
  ASSERT_TRUE(store->mark_actions_delivered({"x2"}, 1500));  // already on its way
  auto marked = store->mark_actions_delivered({"x1", "x2", "x3", "unknown"}, 2000);
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_EQ(*marked, (std::vector<std::string>{"x1", "x3"}));
  EXPECT_EQ((*store->find_action("x1"))->state, ActionState::delivered);
  EXPECT_EQ((*store->find_action("x1"))->delivered_at_ms, 2000);
  EXPECT_EQ((*store->find_action("x2"))->delivered_at_ms, 1500);
  int delivered_entries = 0;
  for (const auto& e : store->audit_entries(0, 100).value())
    delivered_entries += e.event == "action.delivered";
  EXPECT_EQ(delivered_entries, 3);
}

// A group of results is one transaction: each report is judged as record_action_outcome judges
// one (its agent's own open action, once), in order, each ending with its audit entry.
TEST_P(StoreContract, ResultsAreRecordedInOneGroup) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "one")));
  ASSERT_TRUE(store->insert_agent(sample_agent("a2", "two")));
  std::vector<ActionRecord> actions{sample_action("r1", "a1", 1000), sample_action("r2", "a1", 1000),
                                    sample_action("r3", "a2", 1000)};
  ASSERT_TRUE(store->insert_actions(actions, {}, 1000));
  ActionOutcome done;
  done.state = ActionState::succeeded;
  done.result = "ok";
  done.finished_at_ms = 2000;
  ActionOutcome failed = done;
  failed.state = ActionState::failed;
  const std::vector<ActionOutcomeReport> group{
      {"r1", "a1", done},  {"r3", "a1", done},   // another agent's action: no change
      {"r2", "a1", done},  {"r2", "a1", failed},  // a second result for r2: no change
      {"nope", "a1", done}, {"r3", "a2", failed}};
  const auto audit_before = store->audit_entries(0, 100).value().size();
  auto changed = store->record_action_outcomes(group, 2000);
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_EQ(*changed, (std::vector<bool>{true, false, true, false, false, true}));
  EXPECT_EQ((*store->find_action("r1"))->state, ActionState::succeeded);
  EXPECT_EQ((*store->find_action("r2"))->state, ActionState::succeeded);
  EXPECT_EQ((*store->find_action("r3"))->state, ActionState::failed);
  EXPECT_EQ((*store->find_action("r3"))->finished_at_ms, 2000);
  const auto audit = store->audit_entries(0, 100).value();
  ASSERT_EQ(audit.size(), audit_before + 3);
  EXPECT_EQ(audit.back().event, "action.failed");
  EXPECT_EQ(audit.back().actor, "agent:a2");
  EXPECT_TRUE(store->record_action_outcomes({}, 3000).value().empty());
}

TEST_P(StoreContract, HeartbeatsAreWrittenInBatchesAndNeverGoBack) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "one")));
  ASSERT_TRUE(store->insert_agent(sample_agent("a2", "two")));
  ASSERT_TRUE(store->record_agent_heartbeats({{"a1", 5000}, {"a2", 6000}, {"gone", 7000}}));
  EXPECT_EQ((*store->find_agent("a1"))->last_heartbeat_ms, 5000);
  EXPECT_EQ((*store->find_agent("a2"))->last_heartbeat_ms, 6000);
  EXPECT_EQ((*store->find_agent("a2"))->last_seen_ms, 6000);
  // A batch gathered before a later write (a disconnect, say) does not move times back.
  ASSERT_TRUE(store->record_agent_disconnected("a2", "closed", 9000));
  ASSERT_TRUE(store->record_agent_heartbeats({{"a2", 6500}}));
  EXPECT_EQ((*store->find_agent("a2"))->last_heartbeat_ms, 6500);
  EXPECT_EQ((*store->find_agent("a2"))->last_seen_ms, 9000);
  ASSERT_TRUE(store->record_agent_heartbeats({{"a1", 4000}}));
  EXPECT_EQ((*store->find_agent("a1"))->last_heartbeat_ms, 5000);
}

TEST_P(StoreContract, AgentPagesAreFilteredAndCountedByTheStore) {
  for (int i = 0; i < 7; ++i) {
    auto a = sample_agent("id-" + std::to_string(i), fmt::format("web-{}", 6 - i));
    if (i % 2 == 0) a.labels = {"pci", "web"};
    ASSERT_TRUE(store->insert_agent(a));
  }
  AgentFactsRecord facts;
  facts.hostname = "web-0";
  ASSERT_TRUE(store->record_agent_connected("id-6", facts, "10.0.0.1:1", 10));
  facts.hostname = "web-1";
  ASSERT_TRUE(store->record_agent_connected("id-5", facts, "10.0.0.1:2", 10));
  ASSERT_TRUE(store->revoke_agent("id-4", 20));

  auto all = store->find_agents({}, Page{3, 0});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->total, 7u);
  ASSERT_EQ(all->agents.size(), 3u);  // by hostname: web-0 (id-6), web-1 (id-5), web-2 (id-4)
  EXPECT_EQ(all->agents[0].id, "id-6");
  EXPECT_EQ(all->agents[2].id, "id-4");
  auto last = store->find_agents({}, Page{3, 6});
  ASSERT_EQ(last->agents.size(), 1u);
  EXPECT_EQ(last->agents[0].id, "id-0");

  EXPECT_EQ(store->find_agents({"online", "", ""}, Page{10, 0})->total, 2u);
  EXPECT_EQ(store->find_agents({"revoked", "", ""}, Page{10, 0})->total, 1u);
  EXPECT_EQ(store->find_agents({"offline", "", ""}, Page{10, 0})->total, 4u);
  auto pci = store->find_agents({"", "pci", ""}, Page{10, 0});
  EXPECT_EQ(pci->total, 4u);  // id-0, 2, 4, 6
  for (const auto& a : pci->agents) EXPECT_EQ(a.labels, (std::vector<std::string>{"pci", "web"}));
  EXPECT_EQ(store->find_agents({"", "pc", ""}, Page{10, 0})->total, 0u);  // whole labels only
  EXPECT_EQ(store->find_agents({"online", "pci", ""}, Page{10, 0})->total, 1u);  // id-6
  EXPECT_EQ(store->find_agents({"", "", "eb-3"}, Page{10, 0})->agents.at(0).id, "id-3");
}

TEST_P(StoreContract, MissingAgentIsEmptyNotAnError) {
  auto found = store->find_agent("missing");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
}

TEST_P(StoreContract, HostileStringsAreStoredVerbatim) {
  auto agent = sample_agent("a1", "x'); DROP TABLE agents; --\n\x01 ?1 $1 \\x41 \xc3\xa9\xf0\x9f\x94\xa5");
  ASSERT_TRUE(store->insert_agent(agent));
  EXPECT_EQ((*store->find_agent("a1"))->facts.hostname, agent.facts.hostname);
  EXPECT_EQ(store->list_agents()->size(), 1u);
}

// Text that is not UTF-8 (every caller repairs or refuses it before: agents' protobuf strings and
// the API's JSON are UTF-8 by construction) is never silently altered: SQLite keeps the bytes,
// PostgreSQL refuses the write with its reason.
TEST_P(StoreContract, TextThatIsNotUtf8IsKeptOrRefusedNeverAltered) {
  auto agent = sample_agent("a1", "host-\xff\xfe");
  auto inserted = store->insert_agent(agent);
  if (inserted) {
    EXPECT_EQ((*store->find_agent("a1"))->facts.hostname, agent.facts.hostname);
  } else {
    EXPECT_NE(inserted.error().message.find("UTF8"), std::string::npos) << inserted.error().message;
    EXPECT_FALSE(store->find_agent("a1")->has_value());
  }
}

// Nor text holding a NUL byte (a JSON "\u0000" in an alert's title): never cut at the NUL.
TEST_P(StoreContract, TextWithANulIsKeptOrRefusedNeverCut) {
  auto agent = sample_agent("a1", std::string("before\0after", 12));
  auto inserted = store->insert_agent(agent);
  if (inserted) {
    EXPECT_EQ((*store->find_agent("a1"))->facts.hostname, agent.facts.hostname);
  } else {
    EXPECT_NE(inserted.error().message.find("NUL"), std::string::npos) << inserted.error().message;
    EXPECT_FALSE(store->find_agent("a1")->has_value());
  }
}

// Signed specs and results are bytes: every byte value, NUL included, comes back.
TEST_P(StoreContract, BinaryColumnsKeepEveryByte) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "h")));
  auto action = sample_action("x1", "a1", 1000);
  for (int b = 0; b < 256; ++b) action.spec.push_back(static_cast<char>(b));
  action.signature = std::string("\0\x01\xff\\x00", 7);
  ASSERT_TRUE(store->insert_actions({action}, {{"t", "action.created", "x1", "{}"}}, 1000));
  ActionOutcome outcome;
  outcome.state = ActionState::succeeded;
  outcome.result = std::string("\0result\xfe", 8);
  outcome.finished_at_ms = 1001;
  ASSERT_TRUE(store->record_action_outcome("x1", "a1", outcome, 1002).value());
  auto found = store->find_action("x1").value();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->spec, action.spec);
  EXPECT_EQ(found->signature, action.signature);
  EXPECT_EQ(found->result, outcome.result);
}

TEST_P(StoreContract, DuplicateAgentIdIsRefused) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "h")));
  EXPECT_FALSE(store->insert_agent(sample_agent("a1", "h")));
}

TEST_P(StoreContract, MarkAllDisconnectedClearsStaleSessions) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "h")));
  ASSERT_TRUE(store->record_agent_connected("a1", {}, "r", 1));
  ASSERT_TRUE(store->mark_all_agents_disconnected("controller restarted"));
  EXPECT_FALSE((*store->find_agent("a1"))->connected);
  EXPECT_EQ((*store->find_agent("a1"))->last_disconnect_reason, "controller restarted");
}

TEST_P(StoreContract, ApiTokensAreFoundByHash) {
  ASSERT_TRUE(store->insert_api_token({"t1", "admin", "admin", "hash-1", 1}));
  EXPECT_EQ(store->count_api_tokens().value(), 1);
  auto found = store->find_api_token("hash-1");
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((*found)->role, "admin");
  EXPECT_FALSE(store->find_api_token("hash-2")->has_value());
}

// Controllers sharing a store: each clears only the sessions it held, and a controller that
// stopped answering has its agents marked offline by the others.
TEST_P(StoreContract, EachControllerClearsOnlyItsOwnSessions) {
  ASSERT_TRUE(store->insert_agent(sample_agent("on-a", "h1")));
  ASSERT_TRUE(store->insert_agent(sample_agent("on-b", "h2")));
  store->set_controller_id("controller-a");
  ASSERT_TRUE(store->record_agent_connected("on-a", {}, "r", 1));
  store->set_controller_id("controller-b");
  ASSERT_TRUE(store->record_agent_connected("on-b", {}, "r", 1));
  EXPECT_EQ((*store->find_agent("on-a"))->controller_id, "controller-a");
  // B restarts: its own sessions are gone, A's are not; nor does B's late notice of a session
  // that has moved to A change anything.
  ASSERT_TRUE(store->mark_all_agents_disconnected("controller restarted"));
  EXPECT_TRUE((*store->find_agent("on-a"))->connected);
  EXPECT_FALSE((*store->find_agent("on-b"))->connected);
  ASSERT_TRUE(store->record_agent_disconnected("on-a", "timed out", 2));
  EXPECT_TRUE((*store->find_agent("on-a"))->connected);
  // Sessions recorded by the other controller: A holds on-a; then on-b connects to A (a newer
  // session than any B had), which B's look finds, and A's does not.
  using Ids = std::vector<std::string>;
  EXPECT_EQ(store->agents_connected_elsewhere(0).value(), Ids{"on-a"});
  store->set_controller_id("controller-a");
  ASSERT_TRUE(store->record_agent_connected("on-b", {}, "r", 5));
  EXPECT_TRUE(store->agents_connected_elsewhere(0).value().empty());
  store->set_controller_id("controller-b");
  EXPECT_EQ(store->agents_connected_elsewhere(0).value(), (Ids{"on-a", "on-b"}));
  EXPECT_EQ(store->agents_connected_elsewhere(5).value(), Ids{"on-b"});
  EXPECT_TRUE(store->agents_connected_elsewhere(6).value().empty());     // none since then
  ASSERT_TRUE(store->record_agent_disconnected("on-b", "replaced", 7));  // B's late notice
  EXPECT_TRUE((*store->find_agent("on-b"))->connected);

  // A falls silent; B's heartbeats sweep A's agents once A is older than the threshold.
  ASSERT_EQ(store->controller_heartbeat({"controller-a", "a:7443", "https://a:8443", 0, 0}, 1'000,
                                        0)
                .value(),
            0);
  EXPECT_EQ(store->controller_heartbeat({"controller-b", "b:7443", "https://b:8443", 0, 0},
                                        20'000, 20'000 - 30'000)
                .value(),
            0);  // A was seen 19 s ago: still alive
  EXPECT_EQ(store
                ->controller_heartbeat({"controller-b", "b:7443", "https://b:8443", 0, 0}, 40'000,
                                       40'000 - 30'000)
                .value(),
            2);  // on-a and on-b
  auto swept = *store->find_agent("on-a");
  EXPECT_FALSE(swept->connected);
  EXPECT_EQ(swept->last_disconnect_reason, "controller controller-a stopped answering");
  auto controllers = store->list_controllers().value();
  ASSERT_EQ(controllers.size(), 2u);
  EXPECT_EQ(controllers[1].id, "controller-b");
  EXPECT_EQ(controllers[1].last_seen_ms, 40'000);
  EXPECT_EQ(controllers[1].api, "https://b:8443");
}

AlertRecord sample_alert(const std::string& id, const std::string& host, std::int64_t at_ms,
                         const std::string& hash) {
  AlertRecord a;
  a.id = id;
  a.source = "ecs";
  a.rule_name = "rule " + id;
  a.severity = "low";
  a.timestamp_ms = at_ms;
  a.host_name = host;
  a.observables = {{"file.hash.sha256", hash, ""}};
  a.raw = "{}";
  a.received_at_ms = at_ms;
  return a;
}

// Two admins disabling each other at the same moment (through two controllers, or two
// connections of one) leave one enabled admin, never none; the last one is never disabled.
TEST_P(StoreContract, TheLastEnabledAdminIsNeverDisabledEvenByTwoAtOnce) {
  const auto add_admin = [&](const std::string& name) {
    ApiTokenRecord token{"tok-" + name, name, "admin", "hash-" + name, 1'000, std::nullopt, ""};
    return store->insert_operator({name, "admin", 1'000, "init", std::nullopt, ""}, token,
                                  {"init", "operator.created", name, "{}"}, 1'000);
  };
  const auto enabled_admins = [&] {
    std::vector<std::string> out;
    for (const auto& op : store->list_operators().value())
      if (op.role == "admin" && !op.disabled_at_ms) out.push_back(op.name);
    return out;
  };
  std::string survivor;
  for (int round = 0; round < 10; ++round) {
    const auto x = fmt::format("x{}", round), y = fmt::format("y{}", round);
    ASSERT_TRUE(add_admin(x));
    ASSERT_TRUE(add_admin(y));
    if (!survivor.empty()) {
      ASSERT_TRUE(store->disable_operator(survivor, {"t", "d", "", "{}"}, 2));
    }
    ASSERT_EQ(enabled_admins().size(), 2u);
    std::latch start(2);
    std::atomic<int> disabled{0};
    const auto disable = [&](const std::string& name) {
      start.arrive_and_wait();
      if (store->disable_operator(name, {"t", "operator.disabled", name, "{}"}, 2'000)) ++disabled;
    };
    std::thread one(disable, x), two(disable, y);
    one.join();
    two.join();
    EXPECT_EQ(disabled.load(), 1) << "round " << round;
    const auto left = enabled_admins();
    ASSERT_EQ(left.size(), 1u) << "round " << round;
    survivor = left.front();
    const auto refused = store->disable_operator(survivor, {"t", "d", "", "{}"}, 3);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("last enabled admin"), std::string::npos)
        << refused.error().message;
  }
}

// Two writers updating the same agents in opposite orders at once (two controllers' gateways, or
// two pool connections) deadlock on PostgreSQL; the database fails one of them, and the store
// runs that one again rather than lose the heartbeats (or results) it was writing.
TEST_P(StoreContract, ConcurrentWritesInOppositeOrdersAllSucceed) {
  std::vector<std::pair<std::string, std::int64_t>> forward;
  for (int i = 0; i < 40; ++i) {
    const auto id = fmt::format("agent-{:02}", i);
    ASSERT_TRUE(store->insert_agent(sample_agent(id, id)));
    forward.emplace_back(id, 0);
  }
  auto backward = forward;
  std::reverse(backward.begin(), backward.end());
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex mutex;
  std::latch start(2);
  const auto writer = [&](std::vector<std::pair<std::string, std::int64_t>> beats) {
    start.arrive_and_wait();
    for (int round = 1; round <= 20; ++round) {
      for (auto& beat : beats) beat.second = round;
      if (auto s = store->record_agent_heartbeats(beats); !s) {
        std::lock_guard lock(mutex);
        if (failures++ == 0) first_failure = s.error().message;
      }
    }
  };
  std::thread one(writer, forward), two(writer, backward);
  one.join();
  two.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  for (const char* id : {"agent-00", "agent-39"})
    EXPECT_EQ(store->find_agent(id).value()->last_heartbeat_ms, 20) << id;
}

// Console sessions: found until they expire (then dropped), deleted once, and beyond the limit
// an operator's own sessions that expire first make room, never another operator's.
TEST_P(StoreContract, ConsoleSessionsExpireAreDeletedAndBoundedPerOperator) {
  const auto session = [](const std::string& hash, std::int64_t expires,
                          const std::string& who = "ann") {
    return ConsoleSessionRecord{hash, "csrf-" + hash, "token-" + hash, who, expires};
  };
  ASSERT_TRUE(store->insert_console_session(session("s1", 10'000), 1'000, 3));
  auto found = store->find_console_session("s1", 9'999).value();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->csrf_token, "csrf-s1");
  EXPECT_EQ(found->token_hash, "token-s1");
  EXPECT_EQ(found->operator_name, "ann");
  EXPECT_FALSE(store->find_console_session("s1", 10'000).value()) << "expired, still found";
  EXPECT_FALSE(store->delete_console_session("s1").value()) << "the expired one was not dropped";
  EXPECT_FALSE(store->find_console_session("nobody", 0).value());

  ASSERT_TRUE(store->insert_console_session(session("bob-1", 20'000, "bob"), 2'000, 3));
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(store->insert_console_session(session("b" + std::to_string(i), 20'000 + i), 2'000,
                                              3));
  ASSERT_TRUE(store->insert_console_session(session("b4", 20'004), 2'000, 3));
  EXPECT_FALSE(store->find_console_session("b1", 2'000).value()) << "the limit was not kept";
  for (const char* kept : {"b2", "b3", "b4"})
    EXPECT_TRUE(store->find_console_session(kept, 2'000).value()) << kept;
  EXPECT_TRUE(store->find_console_session("bob-1", 2'000).value())
      << "ann's sign-ins ended bob's session";
  EXPECT_TRUE(store->delete_console_session("b3").value());
  EXPECT_FALSE(store->delete_console_session("b3").value());
  EXPECT_FALSE(store->find_console_session("b3", 2'000).value());
}

// Several shippers (on PostgreSQL: several pool connections, or controllers) sending related
// alerts at once: every batch is stored, none fails on a deadlock, and they all join one case —
// no batch opens a second case for a host and indicator another batch committed meanwhile.
TEST_P(StoreContract, ConcurrentBatchesOfRelatedAlertsJoinOneCase) {
  const AuditEvent audit{"ingest", "alerts.received", "", "{}"};
  std::mutex mutex;
  std::set<std::string> cases;
  std::vector<std::string> errors;
  std::vector<std::thread> shippers;
  std::latch start(4);
  for (int t = 0; t < 4; ++t) {
    shippers.emplace_back([&, t] {
      start.arrive_and_wait();  // all at once: the first batches race for the first case
      for (int b = 0; b < 15; ++b) {
        // Two indicators in either order: batches upsert the same observable rows in opposite
        // orders, the pattern that deadlocks two unserialized transactions.
        auto one = sample_alert(fmt::format("c-{}-{}-1", t, b), "web-9", 50'000 + b, "shared");
        auto two = sample_alert(fmt::format("c-{}-{}-2", t, b), "web-9", 50'000 + b, "other");
        one.observables.push_back({"domain", "bad.example", ""});
        two.observables.insert(two.observables.begin(), {"domain", "bad.example", ""});
        auto stored =
            store->insert_alerts(t % 2 == 0 ? std::vector{one, two} : std::vector{two, one},
                                 3'600'000, audit, 50'000 + b);
        std::lock_guard lock(mutex);
        if (!stored) {
          errors.push_back(stored.error().message);
          continue;
        }
        for (const auto& outcome : *stored) cases.insert(outcome.case_id);
      }
    });
  }
  for (auto& s : shippers) s.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " batches failed, first: " << errors.front();
  EXPECT_EQ(cases.size(), 1u) << "related alerts were split over " << cases.size() << " cases";
  EXPECT_EQ(store->list_alerts("", {500, 0}).value().size(), 120u);
}

// A batch is grouped in memory and written in multi-row statements; it must group exactly as the
// rule reads for one alert after another: an alert joins the open case of the newest alert on its
// host sharing a linking observable within the window (the first observable that has one), else
// opens a case; the case's severity is the highest of its alerts'. Random alerts over a few hosts,
// indicators and times, in random batches, with copies of one id within and across batches and a
// resolved case, are checked against that rule written out here.
TEST_P(StoreContract, ABatchGroupsIntoCasesExactlyAsOneAlertAfterAnother) {
  constexpr std::int64_t kWindow = 60'000;
  const AuditEvent audit{"ingest", "alerts.received", "", "{}"};
  auto first =
      store->insert_alerts({sample_alert("old", "host-0", 1'000, "h0")}, kWindow, audit, 1);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(store->update_case((*first)[0].case_id, {"resolved", "", "ana", ""}, "ana",
                                 {"ana", "case.updated", "", "{}"}, 2));
  // The rule, one alert at a time. Cases are numbered in order of opening; -1 is the resolved one.
  struct Sighting {
    int case_number;
    std::int64_t at_ms;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Sighting> newest{
      {{"file.hash.sha256", "h0", "host-0"}, {-1, 1'000}}};
  std::map<std::string, int> case_of_id{{"old", -1}};
  std::vector<std::string> case_severity;
  std::vector<int> case_alerts;
  const auto rank = [](const std::string& s) {
    return s == "low" ? 0 : s == "medium" ? 1 : s == "high" ? 2 : 3;
  };
  const auto expect = [&](const AlertRecord& a) -> std::pair<int, bool> {
    if (auto it = case_of_id.find(a.id); it != case_of_id.end()) return {it->second, true};
    int number = -2;
    for (const auto& o : a.observables) {
      if (a.host_name.empty()) break;
      auto it = newest.find({o.type, o.value, a.host_name});
      if (it == newest.end() || it->second.case_number < 0) continue;
      if (std::abs(it->second.at_ms - a.timestamp_ms) > kWindow) continue;
      number = it->second.case_number;
      break;
    }
    if (number == -2) {
      number = static_cast<int>(case_severity.size());
      case_severity.push_back(a.severity);
      case_alerts.push_back(0);
    } else if (rank(a.severity) > rank(case_severity[number])) {
      case_severity[number] = a.severity;
    }
    ++case_alerts[number];
    for (const auto& o : a.observables) {
      auto [it, added] = newest.try_emplace({o.type, o.value, a.host_name}, Sighting{number, a.timestamp_ms});
      if (!added && (a.timestamp_ms >= it->second.at_ms || it->second.case_number != number))
        it->second = {number, a.timestamp_ms};
    }
    case_of_id[a.id] = number;
    return {number, false};
  };

  std::mt19937 random(20261202);
  const auto pick = [&](int n) { return static_cast<int>(random() % n); };
  // Mostly low: a case's severity keeps changing instead of reaching critical at once.
  const char* severities[] = {"low", "low",    "low",    "low",  "low",
                              "low", "medium", "medium", "high", "critical"};
  std::vector<AlertRecord> all;
  for (int i = 0; i < 400; ++i) {
    // Every 25th a copy of an earlier id (a duplicate, whatever it says).
    const std::string id = i % 25 == 24 ? all[pick(i)].id : fmt::format("a-{}", i);
    auto a = sample_alert(id, fmt::format("host-{}", pick(3)), 1'000 + pick(400) * 1'000,
                          fmt::format("h{}", pick(6)));
    if (pick(3) == 0) a.observables.push_back({"domain", fmt::format("d{}.example", pick(4)), ""});
    if (pick(10) == 0) a.host_name = "";
    a.severity = severities[pick(10)];
    all.push_back(a);
  }
  std::map<std::string, int> number_of;  // store case id -> the rule's case number
  int joined = 0;
  for (std::size_t at = 0; at < all.size();) {
    const std::size_t count = std::min<std::size_t>(1 + pick(60), all.size() - at);
    const std::vector<AlertRecord> batch(all.begin() + at, all.begin() + at + count);
    auto stored = store->insert_alerts(batch, kWindow, audit, 10);
    ASSERT_TRUE(stored) << stored.error().message;
    for (std::size_t i = 0; i < count; ++i) {
      const auto [number, duplicate] = expect(batch[i]);
      const auto& got = (*stored)[i];
      EXPECT_EQ(got.duplicate, duplicate) << batch[i].id;
      if (number == -1) number_of.emplace(got.case_id, -1);
      const auto known = number_of.try_emplace(got.case_id, number).first;
      ASSERT_EQ(known->second, number) << "alert " << at + i << " (" << batch[i].id << ")";
      joined += !duplicate && case_alerts[number] > 1;
    }
    // Each case as the batch left it.
    std::set<std::string> touched;
    for (const auto& outcome : *stored) touched.insert(outcome.case_id);
    for (const auto& case_id : touched) {
      const int number = number_of.at(case_id);
      if (number < 0) continue;
      const auto got = store->find_case(case_id).value();
      ASSERT_TRUE(got);
      EXPECT_EQ(got->severity, case_severity[number]) << "case " << number;
      EXPECT_EQ(got->alert_count, case_alerts[number]) << "case " << number;
    }
    at += count;
  }
  EXPECT_GT(case_severity.size(), 10u);  // the data made several cases
  EXPECT_GT(joined, 100);                // and joined many alerts to earlier ones
}

// Two unrelated alerts on one host that share only values every alert there carries (`root`,
// `localhost`, a loopback address, the empty file's hash, /bin/bash) stay two cases; a value
// that does say "same thing" (an outside address) still joins them.
TEST_P(StoreContract, UbiquitousValuesDoNotLinkAlertsIntoOneCase) {
  const AuditEvent audit{"ingest", "alerts.received", "", "{}"};
  const auto alert = [](const std::string& id, std::vector<Observable> observables) {
    AlertRecord a = sample_alert(id, "web-1", 10'000, "");
    a.host_ips = {"10.20.1.5"};
    a.observables = std::move(observables);
    return a;
  };
  const std::vector<Observable> everywhere = {
      {"user", "root", ""},
      {"domain", "localhost", ""},
      {"ip", "127.0.0.1", ""},
      {"ip", "10.20.1.5", ""},
      {"sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ""},
      {"file_path", "/bin/bash", ""},
      {"process", "4242", ""}};
  auto one = everywhere, two = everywhere;
  one.push_back({"ip", "198.51.100.7", ""});
  two.push_back({"domain", "updates.example.org", ""});
  auto first = store->insert_alerts({alert("ub-1", one)}, 60'000, audit, 10'000);
  ASSERT_TRUE(first) << first.error().message;
  auto second = store->insert_alerts({alert("ub-2", two)}, 60'000, audit, 11'000);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE((*second)[0].case_id, (*first)[0].case_id)
      << "only root, localhost, loopback, the host's own address, the empty hash and bash shared";
  auto related = everywhere;
  related.push_back({"ip", "198.51.100.7", ""});
  auto third = store->insert_alerts({alert("ub-3", related)}, 60'000, audit, 12'000);
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ((*third)[0].case_id, (*first)[0].case_id) << "the same outside address";
}

// Case grouping (observable_cases upserts), arrival order, duplicates, notes and milestones.
TEST_P(StoreContract, AlertsGroupIntoCasesAndListNewestFirst) {
  const AuditEvent audit{"ingest", "alerts.received", "", "{}"};
  auto first = store->insert_alerts({sample_alert("al-1", "web-1", 10'000, "aa")}, 60'000, audit,
                                    10'000);
  ASSERT_TRUE(first) << first.error().message;
  auto second = store->insert_alerts(
      {sample_alert("al-2", "web-1", 20'000, "aa"), sample_alert("al-3", "web-2", 20'000, "aa"),
       sample_alert("al-1", "web-1", 10'000, "aa")},
      60'000, audit, 20'000);
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(second->size(), 3u);
  EXPECT_EQ((*second)[0].case_id, (*first)[0].case_id);  // same host, same hash, in the window
  EXPECT_NE((*second)[1].case_id, (*first)[0].case_id);  // another host: its own case
  EXPECT_TRUE((*second)[2].duplicate);
  auto listed = store->list_alerts("", 10).value();
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[2].id, "al-1");  // received first, listed last
  auto the_case = store->find_case((*first)[0].case_id).value();
  ASSERT_TRUE(the_case);
  EXPECT_EQ(the_case->alert_count, 2);
  EXPECT_EQ(the_case->alert_ids, (std::vector<std::string>{"al-1", "al-2"}));
  ASSERT_TRUE(store->update_case(the_case->id, {"resolved", "high", "ana", "first note"}, "ana",
                                 {"ana", "case.updated", the_case->id, "{}"}, 30'000));
  ASSERT_TRUE(store->update_case(the_case->id, {"", "", "", "second note"}, "bob",
                                 {"bob", "case.updated", the_case->id, "{}"}, 30'000));
  auto notes = store->case_notes(the_case->id).value();
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0].text, "first note");
  EXPECT_EQ(notes[1].author, "bob");
  auto resolved = store->find_case(the_case->id).value();
  EXPECT_EQ(resolved->status, "resolved");
  EXPECT_EQ(resolved->contained_at_ms, 30'000);  // a resolved case was contained by then
  EXPECT_EQ(resolved->resolved_at_ms, 30'000);
  // A resolved case takes no new alert: the next one on that host opens another.
  auto third = store->insert_alerts({sample_alert("al-4", "web-1", 25'000, "aa")}, 60'000, audit,
                                    40'000);
  EXPECT_NE((*third)[0].case_id, the_case->id);
  auto related = store->related_alerts("web-1", {{"file.hash.sha256", "aa", ""}}, "al-4", 10);
  ASSERT_TRUE(related) << related.error().message;
  EXPECT_EQ(related->size(), 3u);
  EXPECT_TRUE(store->update_case("no-such-case", {"contained", "", "", ""}, "ana",
                                 {"ana", "case.updated", "x", "{}"}, 1)
                  .error()
                  .message.starts_with("no case"));
}

// Runs, their steps, and the four-eyes rule on approvals.
TEST_P(StoreContract, RunsStepsAndApprovalsFollowTheirRules) {
  PlaybookRunRecord run;
  run.id = "run-1";
  run.playbook = "contain";
  run.alert_id = "al-1";
  run.case_id = "case-1";
  run.started_by = "controller";
  run.requested_by = "ingest";
  run.step = "kill";
  run.waiting_for = "approval";
  run.state = "waiting";
  run.wake_at_ms = 5'000;
  run.context = "{}";
  run.started_at_ms = 1'000;
  ASSERT_TRUE(store->insert_run(run, {"controller", "run.started", "run-1", "{}"}, 1'000));
  EXPECT_EQ(store->runs_due(4'999).value().size(), 0u);
  EXPECT_EQ(store->runs_due(5'000).value(), std::vector<std::string>{"run-1"});
  RunStepRecord step{"run-1", 0, "triage", "enrich", 1, "succeeded", "", "", "{}", 1'000, 2'000};
  ASSERT_TRUE(store->update_run(run, &step, nullptr, 2'000));
  ASSERT_TRUE(store->update_run(run, &step, nullptr, 2'001));
  auto steps = store->run_steps("run-1").value();
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].seq, 1);
  EXPECT_EQ(steps[1].seq, 2);

  ApprovalRecord approval;
  approval.id = "ap-1";
  approval.run_id = "run-1";
  approval.step_id = "kill";
  approval.requested_by = "ingest";
  approval.not_deciders = {"ingest", "carol"};
  approval.what = "{}";
  approval.impact = "{}";
  approval.created_at_ms = 2'000;
  approval.expires_at_ms = 10'000;
  ASSERT_TRUE(store->insert_approval(approval, {"controller", "approval.requested", "ap-1", "{}"},
                                     2'000));
  approval.reason = "asked again";
  EXPECT_EQ(store->insert_approval(approval, {"controller", "approval.requested", "ap-1", "{}"},
                                   2'001)
                ->reason,
            "");  // the stored one
  EXPECT_FALSE(store->decide_approval("ap-1", true, "carol", "mine", 3'000));
  EXPECT_FALSE(store->decide_approval("ap-1", true, "dave", "late", 10'000));
  auto decided = store->decide_approval("ap-1", true, "dave", "ok", 3'000);
  ASSERT_TRUE(decided) << decided.error().message;
  EXPECT_EQ(decided->state, "approved");
  EXPECT_FALSE(store->decide_approval("ap-1", false, "erin", "again", 3'001));
  EXPECT_EQ(store->list_approvals("approved", "", 10).value().size(), 1u);

  run.state = "succeeded";
  run.step = "";
  run.finished_at_ms = 4'000;
  ASSERT_TRUE(store->update_run(run, nullptr, nullptr, 4'000));
  EXPECT_TRUE(store->unfinished_runs().value().empty());
  EXPECT_EQ(store->runs_of_alert("al-1", "contain").value().size(), 1u);
}

// Leases on runs for controllers sharing a store: one works on a run at a time, another takes it
// over once the lease expires, and an event seen elsewhere makes it due for the holder.
TEST_P(StoreContract, RunLeasesLetOneControllerWorkOnARunAndAnotherTakeItOver) {
  PlaybookRunRecord run;
  run.id = "run-1";
  run.playbook = "contain";
  run.state = "waiting";
  run.waiting_for = "actions";
  run.wake_at_ms = 50'000;
  run.context = "{}";
  ASSERT_TRUE(store->insert_run(run, {"controller", "run.started", "run-1", "{}"}, 1'000));
  store->set_controller_id("a");
  EXPECT_TRUE(store->claim_run("run-1", 1'000, 30'000).value());
  EXPECT_TRUE(store->claim_run("run-1", 2'000, 30'000).value());  // extends its own
  store->set_controller_id("b");
  EXPECT_FALSE(store->claim_run("run-1", 3'000, 30'000).value());
  EXPECT_TRUE(store->runs_to_take_over(31'000).value().empty());  // a's lease runs to 32 s
  // b saw the run's action end: the run is due now for whoever holds it.
  EXPECT_TRUE(store->runs_due(3'000).value().empty());
  ASSERT_TRUE(store->wake_run("run-1", 3'000));
  EXPECT_EQ(store->runs_due(3'000).value(), std::vector<std::string>{"run-1"});
  // a renews, then stops renewing; b takes the run over after the lease.
  store->set_controller_id("a");
  ASSERT_TRUE(store->renew_run_leases(10'000, 30'000));
  store->set_controller_id("b");
  EXPECT_TRUE(store->runs_to_take_over(39'999).value().empty());
  EXPECT_EQ(store->runs_to_take_over(40'001).value(), std::vector<std::string>{"run-1"});
  EXPECT_TRUE(store->claim_run("run-1", 40'001, 30'000).value());
  EXPECT_TRUE(store->runs_to_take_over(40'002).value().empty());  // b's own now
  store->set_controller_id("a");
  EXPECT_FALSE(store->claim_run("run-1", 40'002, 30'000).value());
  // A backoff is never cut short by a wake.
  run.waiting_for = "backoff";
  run.wake_at_ms = 90'000;
  ASSERT_TRUE(store->update_run(run, nullptr, nullptr, 40'003));
  ASSERT_TRUE(store->wake_run("run-1", 40'004));
  EXPECT_TRUE(store->runs_due(40'004).value().empty());
  // A cancel asked through a, which does not hold the run: due for b, the holder, until b has
  // carried it out (the run undoing its steps), then no longer looked at each tick.
  const AuditEvent asked{"ana", "run.cancel_requested", "run-1", "{}"};
  EXPECT_TRUE(store->request_run_cancel("run-1", R"({"by":"ana"})", asked, 40'005).value());
  EXPECT_FALSE(store->request_run_cancel("run-1", R"({"by":"ana"})", asked, 40'005).value());
  EXPECT_TRUE(store->runs_due(40'006).value().empty());  // a does not hold it
  store->set_controller_id("b");
  EXPECT_EQ(store->runs_due(40'006).value(), std::vector<std::string>{"run-1"});
  run.state = "running";
  run.step = "undo:isolate";
  ASSERT_TRUE(store->update_run(run, nullptr, nullptr, 40'007));
  EXPECT_TRUE(store->runs_due(40'008).value().empty());
}

// Leases on alerts for controllers sharing a store: the controller that stored an alert holds it
// while it is processed, another takes it over only once that lease has expired, one that lost
// the lease cannot store a decision, and processing ends with the enrichment or not_relevant.
TEST_P(StoreContract, AlertLeasesLetOneControllerProcessAnAlertAndAnotherTakeItOver) {
  using Ids = std::vector<std::string>;
  const AuditEvent audit{"ingest", "alerts.received", "", "{}"};
  const auto decision = [](const char* id) {
    return AuditEvent{"controller", "alert.validated", id, "{}"};
  };
  store->set_controller_id("a");
  ASSERT_TRUE(store->insert_alerts(
      {sample_alert("al-1", "web-1", 10'000, "aa"), sample_alert("al-2", "web-2", 10'000, "bb")},
      60'000, audit, 10'000));
  EXPECT_EQ(store->unfinished_alerts(10'001).value(), (Ids{"al-1", "al-2"}));
  // b, starting while a works on them (a's leases run to 40 s): nothing for it.
  store->set_controller_id("b");
  EXPECT_TRUE(store->unfinished_alerts(11'000).value().empty());
  EXPECT_TRUE(store->take_over_alerts(11'000, 30'000).value().empty());
  EXPECT_FALSE(store->claim_alert("al-1", 11'000, 30'000).value());
  auto refused =
      store->update_alert("al-1", "validating", "validation", "{}", decision("al-1"), 11'000);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("held by another controller (a)"), std::string::npos)
      << refused.error().message;
  // A confidence (intel) is not processing: any controller stores it.
  EXPECT_TRUE(
      store->update_alert("al-1", "new", "confidence", R"({"score":1})", decision("al-1"), 11'000));
  // a renews, and ends al-2 (not relevant): nothing left of it to claim.
  store->set_controller_id("a");
  ASSERT_TRUE(store->renew_alert_leases(20'000, 30'000));  // to 50 s
  ASSERT_TRUE(
      store->update_alert("al-2", "not_relevant", "validation", "{}", decision("al-2"), 20'000));
  EXPECT_FALSE(store->claim_alert("al-2", 20'001, 30'000).value());
  // a stops renewing; b takes al-1 over once the lease has expired.
  store->set_controller_id("b");
  EXPECT_TRUE(store->take_over_alerts(49'999, 30'000).value().empty());
  EXPECT_EQ(store->unfinished_alerts(50'001).value(), Ids{"al-1"});  // free to take up
  EXPECT_EQ(store->take_over_alerts(50'001, 30'000).value(), Ids{"al-1"});
  EXPECT_TRUE(store->take_over_alerts(50'002, 30'000).value().empty());  // b's own now
  EXPECT_TRUE(store->claim_alert("al-1", 50'002, 30'000).value());
  // a, back after freezing past its lease, neither claims nor decides it.
  store->set_controller_id("a");
  EXPECT_FALSE(store->claim_alert("al-1", 50'002, 30'000).value());
  EXPECT_FALSE(
      store->update_alert("al-1", "qualified", "validation", "{}", decision("al-1"), 50'002));
  EXPECT_TRUE(store->unfinished_alerts(50'002).value().empty());
  // b decides; a qualified alert is still being processed until its enrichment is stored.
  store->set_controller_id("b");
  ASSERT_TRUE(
      store->update_alert("al-1", "qualified", "validation", "{}", decision("al-1"), 50'003));
  EXPECT_EQ(store->unfinished_alerts(50'004).value(), Ids{"al-1"});
  ASSERT_TRUE(
      store->update_alert("al-1", "qualified", "enrichment", "{}", decision("al-1"), 50'005));
  EXPECT_TRUE(store->unfinished_alerts(50'006).value().empty());
  // Nor does a, after b has finished with it.
  store->set_controller_id("a");
  EXPECT_FALSE(
      store->update_alert("al-1", "undetermined", "validation", "{}", decision("al-1"), 50'007));
  EXPECT_FALSE(
      store->update_alert("al-1", "undetermined", "enrichment", "{}", decision("al-1"), 50'007));
  store->set_controller_id("b");
  EXPECT_TRUE(store->take_over_alerts(500'000, 30'000).value().empty());
  EXPECT_EQ(store->find_alert("al-1").value()->status, "qualified");
  EXPECT_EQ(store->find_alert("al-1").value()->confidence, R"({"score":1})");
}

// What GET /metrics reads: counts through the dialects' aggregate syntax, the latest network
// action per agent, duration buckets.
TEST_P(StoreContract, MetricsCountWhatIsStored) {
  ASSERT_TRUE(store->insert_agent(sample_agent("a1", "h1")));
  ASSERT_TRUE(store->insert_agent(sample_agent("a2", "h2")));
  ASSERT_TRUE(store->record_agent_connected("a1", {}, "r", 1));
  auto quarantine = sample_action("q1", "a1", 1'000);
  quarantine.kind = "network.quarantine";
  ASSERT_TRUE(store->insert_actions({quarantine, sample_action("s1", "a2", 1'000)}, {}, 1'000));
  ASSERT_TRUE(store->record_action_progress("q1", "a1", 0, 0, "", 1'000));
  ActionOutcome done;
  done.state = ActionState::succeeded;
  done.finished_at_ms = 1'700;  // 0.7 s after it started
  ASSERT_TRUE(store->record_action_outcome("q1", "a1", done, 1'700).value());
  auto alert = sample_alert("al-1", "h1", 1'000, "aa");
  alert.confidence = R"({"decision":"confirmed","score":90})";
  ASSERT_TRUE(store->insert_alerts({alert}, 1'000, {"i", "alerts.received", "", "{}"}, 1'000));
  auto m = store->metrics();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->agents_online, 1u);
  EXPECT_EQ(m->agents_offline, 1u);
  EXPECT_EQ(m->agents_revoked, 0u);
  EXPECT_EQ(m->agents_quarantined, 1u);
  EXPECT_EQ(m->alerts_by_source.at("ecs"), 1u);
  EXPECT_EQ(m->alerts_by_decision.at("confirmed"), 1u);
  EXPECT_EQ((m->actions_by_kind_state.at({"network.quarantine", "succeeded"})), 1u);
  EXPECT_EQ((m->actions_by_kind_state.at({"network.status", "queued"})), 1u);
  const auto& d = m->action_durations.at("network.quarantine");
  EXPECT_EQ(d.count, 1u);
  EXPECT_DOUBLE_EQ(d.sum_s, 0.7);
  EXPECT_EQ(d.at_or_below[0], 0u);  // <= 0.1 s
  EXPECT_EQ(d.at_or_below[1], 0u);  // <= 0.5 s
  EXPECT_EQ(d.at_or_below[2], 1u);  // <= 1 s
  EXPECT_GE(m->audit_entries, 3u);
}

// Content objects are stored once by hash and read back in slices; the chain verifies.
TEST_P(StoreContract, ContentObjectsAreReadInSlicesAndTheAuditChainVerifies) {
  std::string bytes;
  for (int i = 0; i < 300'000; ++i) bytes.push_back(static_cast<char>(i * 7));
  ContentObjectRecord meta{"ab12", "yara-rules", bytes.size(), "rules.yar", "ana", 0};
  EXPECT_TRUE(store->put_object(meta, bytes, {"ana", "object.stored", "ab12", "{}"}, 1).value());
  EXPECT_FALSE(store->put_object(meta, bytes, {"ana", "object.stored", "ab12", "{}"}, 2).value());
  EXPECT_EQ(store->read_object("ab12", 0, 10).value(), bytes.substr(0, 10));
  EXPECT_EQ(store->read_object("ab12", 299'995, 100).value(), bytes.substr(299'995));
  EXPECT_EQ(store->read_object("ab12", 300'000, 100).value(), "");
  EXPECT_FALSE(store->read_object("cd34", 0, 10));
  EXPECT_EQ(store->list_objects("yara-rules", 10).value().size(), 1u);
  EXPECT_EQ(store->list_objects("other", 10).value().size(), 0u);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(store->append_audit({"ana", "thing.done", std::to_string(i), "{}"}, 10 + i));
  auto verified = verify_audit_chain(*store);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->entries, 21);
  EXPECT_FALSE(verified->first_broken_seq.has_value()) << verified->problem;
  EXPECT_EQ(store->audit_entries_about("7", 10).value().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract,
                         ::testing::Values(Backend::sqlite, Backend::postgresql),
                         [](const auto& info) {
                           return std::string(info.param == Backend::sqlite ? "SqliteStore"
                                                                            : "PostgresStore");
                         });

// A SQLite store whose audit chain is broken is not copied into PostgreSQL: the target stays
// empty, so the migration can be done again once the source is looked into (found by a
// reviewer: "nothing was copied" was said after the rows were committed).
TEST(StoreCopy, ASourceWithABrokenAuditChainIsRefusedAndNothingIsCopied) {
  auto cluster = POSTGRES_CLUSTER_OR_SKIP();
  testing::PostgresTestDatabase database(*cluster);
  ASSERT_FALSE(database.url().empty()) << database.error();
  testing::TempDir dir;
  const auto path = dir.path() / "riposte.db";
  {
    auto source = SqliteStore::open(path).value();
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(source->append_audit({"admin", "test.entry", std::to_string(i), "{}"}, 1'000));
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE audit_log SET subject = 'edited' WHERE seq = 2", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto source = SqliteStore::open(path).value();
  auto target = PostgresStore::open(database.url()).value();
  const auto copied = copy_store(*source, *target, {});
  ASSERT_FALSE(copied);
  EXPECT_NE(copied.error().message.find("broken at entry 2"), std::string::npos)
      << copied.error().message;
  EXPECT_NE(copied.error().message.find("nothing was copied"), std::string::npos);
  EXPECT_TRUE(target->audit_entries(0, 10).value().empty()) << "rows were copied after all";
}

// --- migrations -------------------------------------------------------------------------------

std::string journal_mode(const std::filesystem::path& db) {
  sqlite3* raw = nullptr;
  sqlite3_open(db.c_str(), &raw);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &stmt, nullptr);
  sqlite3_step(stmt);
  std::string mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return mode;
}

// What an agent's session asks of the store (connect, heartbeat, the actions waiting for it, a
// result, disconnect) is answered through indexes: with 50,000 agents reconnecting, a scan of the
// action history per connection was most of the controller's CPU.
TEST(SqliteStoreScale, AnAgentsSessionScansNoTable) {
  testing::TempDir dir;
  auto store = SqliteStore::open(dir.path() / "riposte.db").value();
  std::vector<ActionRecord> history;
  std::vector<AuditEvent> audit;
  for (int agent = 0; agent < 50; ++agent) {
    ASSERT_TRUE(store->insert_agent(sample_agent("agent-" + std::to_string(agent), "h")));
    for (int n = 0; n < 40; ++n) {
      history.push_back(sample_action(fmt::format("action-{}-{}", agent, n),
                                      "agent-" + std::to_string(agent), 1000 + n,
                                      n == 39 ? ActionState::queued : ActionState::succeeded));
      audit.push_back({"bench", "action.created", history.back().id, "{}"});
    }
  }
  ASSERT_TRUE(store->insert_actions(history, audit, 1000));
  const auto before = store->full_scan_steps();

  AgentFactsRecord facts;
  facts.hostname = "h";
  ASSERT_TRUE(store->find_agent("agent-7"));
  ASSERT_TRUE(store->record_agent_connected("agent-7", facts, "127.0.0.1:1", 2000));
  auto waiting = store->actions_to_deliver("agent-7");
  ASSERT_TRUE(waiting);
  ASSERT_EQ(waiting->size(), 1u);
  EXPECT_EQ(waiting->front().id, "action-7-39");
  ASSERT_TRUE(store->mark_actions_delivered({"action-7-39"}, 2001));
  ASSERT_TRUE(store->record_agent_heartbeats({{"agent-7", 2002}}));
  ActionOutcome outcome;
  outcome.state = ActionState::succeeded;
  ASSERT_TRUE(store->record_action_outcome("action-7-39", "agent-7", outcome, 2003));
  ASSERT_TRUE(store->record_agent_disconnected("agent-7", "closed", 2004));
  EXPECT_EQ(store->full_scan_steps() - before, 0u);

  // The controller's expiry sweep, every second: nothing due, and then one due.
  const auto before_sweep = store->full_scan_steps();
  EXPECT_TRUE(store->expire_actions(2005, 60'000).value().empty());
  auto due = sample_action("late", "agent-7", 2006);
  due.expires_at_ms = 3000;
  ASSERT_TRUE(store->insert_actions({due}, {}, 2006));
  EXPECT_EQ(store->expire_actions(3001, 60'000).value(), std::vector<std::string>{"late"});
  EXPECT_EQ(store->full_scan_steps() - before_sweep, 0u);
}

TEST(SqliteMigrations, EmptyDatabaseReachesTheLatestSchemaInWalMode) {
  testing::TempDir dir;
  auto store = SqliteStore::open(dir.path() / "new.db");
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->schema_version(), SqliteStore::latest_schema_version());
  EXPECT_GE(SqliteStore::latest_schema_version(), 2);
  EXPECT_EQ(journal_mode(dir.path() / "new.db"), "wal");
}

TEST(SqliteMigrations, ExistingDatabaseIsUpgradedKeepingItsRows) {
  testing::TempDir dir;
  const auto path = dir.path() / "old.db";
  {
    auto v1 = SqliteStore::open_at_version(path, 1);
    ASSERT_TRUE(v1);
    ASSERT_EQ((*v1)->schema_version(), 1);
  }
  {
    // An agent and a token as version 1 stored them (no disconnect reason, no labels; before
    // operators existed), written as that version would: today's insert names newer columns.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw,
                           "INSERT INTO agents (id, hostname, cert_serial, cert_fingerprint, "
                           "enrolled_at_ms, ip_addresses) VALUES ('old-agent', 'legacy-host', "
                           "'01', 'sha256:00', 1000, '[\"10.0.0.7\"]')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw,
                           "INSERT INTO api_tokens (id, name, role, token_hash, created_at_ms) "
                           "VALUES ('t1', 'admin', 'admin', 'h', 1)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
  }
  auto upgraded = SqliteStore::open(path);
  ASSERT_TRUE(upgraded) << upgraded.error().message;
  EXPECT_EQ((*upgraded)->schema_version(), SqliteStore::latest_schema_version());
  auto agent = (*upgraded)->find_agent("old-agent");
  ASSERT_TRUE(agent && agent->has_value()) << (agent ? "" : agent.error().message);
  EXPECT_EQ((*agent)->facts.hostname, "legacy-host");
  EXPECT_EQ((*agent)->last_disconnect_reason, "");
  // Schema 15's address history starts with what agents held at the upgrade, as held since ever.
  const auto agents = (*upgraded)->list_agents().value();
  ASSERT_EQ(agents.size(), 1u);
  ASSERT_EQ(agents[0].address_history.size(), 1u);
  EXPECT_EQ(agents[0].address_history[0].ip, "10.0.0.7");
  EXPECT_EQ(agents[0].address_history[0].since_ms, 0);
  EXPECT_EQ(agents[0].address_history[0].until_ms, 0);
  EXPECT_EQ((*upgraded)->count_api_tokens().value(), 1);
  // The old token's holder became an operator of its role, and the token still authenticates.
  auto operators = (*upgraded)->list_operators();
  ASSERT_TRUE(operators);
  ASSERT_EQ(operators->size(), 1u);
  EXPECT_EQ((*operators)[0].name, "admin");
  EXPECT_EQ((*operators)[0].role, "admin");
  EXPECT_EQ((*operators)[0].tokens, 1);
  auto token = (*upgraded)->find_api_token("h");
  ASSERT_TRUE(token && token->has_value());
  EXPECT_FALSE((*token)->operator_disabled_at_ms.has_value());
  // Re-opening an up-to-date database applies nothing and changes nothing.
  upgraded->reset();
  auto again = SqliteStore::open(path);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->schema_version(), SqliteStore::latest_schema_version());
}

// Schema 14 leases alerts being processed: those a controller of schema 13 would have resumed
// ("new", "validating") are still to process after the upgrade, free for any controller; decided
// ones are not processed again.
TEST(SqliteMigrations, AlertsBeingProcessedBeforeAlertLeasesAreStillTakenUp) {
  testing::TempDir dir;
  const auto path = dir.path() / "v13.db";
  ASSERT_TRUE(SqliteStore::open_at_version(path, 13));
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    std::string sql =
        "INSERT INTO cases (id, title, status, severity, host_name, created_at_ms, "
        "updated_at_ms) VALUES ('c1', 't', 'open', 'low', 'h', 1, 1);";
    for (const char* status : {"new", "validating", "qualified", "not_relevant"}) {
      sql += fmt::format(
          "INSERT INTO alerts (id, source, source_id, rule_id, rule_name, severity, "
          "timestamp_ms, host_name, host_ips, user_name, observables, notes, raw, case_id, "
          "status, assets, confidence, validation, enrichment, received_at_ms, updated_at_ms) "
          "VALUES ('{0}', 'ecs', '', '', 'r', 'low', 1, 'h', '[]', '', '[]', '[]', '{{}}', 'c1', "
          "'{0}', '[]', '{{}}', '{{}}', '{{}}', 1, 1);",
          status);
    }
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(raw);
    sqlite3_close(raw);
  }
  auto upgraded = SqliteStore::open(path);
  ASSERT_TRUE(upgraded) << upgraded.error().message;
  (*upgraded)->set_controller_id("any");
  EXPECT_EQ((*upgraded)->unfinished_alerts(2).value(),
            (std::vector<std::string>{"new", "validating"}));
}

TEST(SqliteMigrations, DatabaseFromANewerControllerIsRefused) {
  testing::TempDir dir;
  const auto path = dir.path() / "future.db";
  ASSERT_TRUE(SqliteStore::open(path));
  sqlite3* raw = nullptr;
  sqlite3_open(path.c_str(), &raw);
  sqlite3_exec(raw, "INSERT INTO schema_migrations (version, description) VALUES (999, 'future')",
               nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  auto store = SqliteStore::open(path);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
}

TEST(SqliteMigrations, FileThatIsNotADatabaseIsAClearError) {
  testing::TempDir dir;
  const auto path = dir.path() / "junk.db";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("this is not sqlite, just some text long enough to look like a header.......", f);
  std::fclose(f);
  auto store = SqliteStore::open(path);
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("database"), std::string::npos) << store.error().message;
}

}  // namespace
}  // namespace riposte::controller
