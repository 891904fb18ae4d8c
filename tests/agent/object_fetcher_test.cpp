// Fetching a rule set over the session: chunk by chunk, resumed across sessions, refused when the
// bytes are not the ones the signed action named, and never holding up a stopping agent.

#include "agent/object_fetcher.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <future>
#include <thread>

#include "protocol/crypto.h"

namespace riposte::agent {
namespace {

using namespace std::chrono_literals;

// The io thread of the test: runs the fetcher's posts and records its requests.
struct Harness {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  ObjectFetcher fetcher{io};
  std::vector<proto::ObjectRequest> requests;
  std::thread thread;
  Harness() {
    fetcher.set_sender([this](proto::Envelope e) {
      requests.push_back(e.object_request());
      return true;
    });
    thread = std::thread([this] { io.run(); });
  }
  ~Harness() {
    work.reset();
    io.stop();
    thread.join();
  }
  // Runs `f` on the io thread and waits for it.
  void on_io(std::function<void()> f) {
    std::promise<void> done;
    boost::asio::post(io, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::size_t request_count() {
    std::size_t n = 0;
    on_io([&] { n = requests.size(); });
    return n;
  }
  proto::ObjectChunk chunk(const std::string& sha, std::uint64_t offset, std::uint64_t size,
                           std::string data) {
    proto::ObjectChunk c;
    c.set_sha256(sha);
    c.set_offset(offset);
    c.set_size(size);
    c.set_data(std::move(data));
    return c;
  }
};

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 200; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(ObjectFetcher, AssemblesChunksResumesAfterADisconnectAndChecksTheHash) {
  Harness h;
  const std::string object = std::string(3000, 'x') + "tail";
  const auto sha = crypto::sha256_hex(object);
  h.on_io([&] { h.fetcher.session_started(); });
  auto result = std::async(std::launch::async,
                           [&] { return h.fetcher.fetch(sha, object.size(), 10s); });
  ASSERT_TRUE(eventually([&] { return h.request_count() == 1; }));
  h.on_io([&] {
    EXPECT_EQ(h.requests[0].offset(), 0u);
    h.fetcher.on_chunk(h.chunk(sha, 0, object.size(), object.substr(0, 1000)));
    // The session drops with the second request in flight; the next one asks again from 1000.
    h.fetcher.session_ended();
    h.fetcher.session_started();
  });
  h.on_io([&] {
    ASSERT_EQ(h.requests.size(), 3u);
    EXPECT_EQ(h.requests[1].offset(), 1000u);
    EXPECT_EQ(h.requests[2].offset(), 1000u);
    h.fetcher.on_chunk(h.chunk(sha, 1000, object.size(), object.substr(1000)));
  });
  auto bytes = result.get();
  ASSERT_TRUE(bytes) << bytes.error().message;
  EXPECT_EQ(*bytes, object);
}

TEST(ObjectFetcher, BytesThatDoNotHashToTheSignedNameAreDiscarded) {
  Harness h;
  const std::string object = "rule a { condition: true }";
  const auto sha = crypto::sha256_hex(object);
  h.on_io([&] { h.fetcher.session_started(); });
  auto result = std::async(std::launch::async,
                           [&] { return h.fetcher.fetch(sha, object.size(), 10s); });
  ASSERT_TRUE(eventually([&] { return h.request_count() == 1; }));
  std::string forged = object;
  forged[0] = 'R';
  h.on_io([&] { h.fetcher.on_chunk(h.chunk(sha, 0, object.size(), forged)); });
  auto bytes = result.get();
  ASSERT_FALSE(bytes);
  EXPECT_NE(bytes.error().message.find("different SHA-256"), std::string::npos)
      << bytes.error().message;
}

TEST(ObjectFetcher, ASizeOtherThanTheSignedOneOrARefusalFailsTheFetch) {
  Harness h;
  h.on_io([&] { h.fetcher.session_started(); });
  const std::string sha(64, 'a');
  auto grown = std::async(std::launch::async, [&] { return h.fetcher.fetch(sha, 10, 10s); });
  ASSERT_TRUE(eventually([&] { return h.request_count() == 1; }));
  h.on_io([&] { h.fetcher.on_chunk(h.chunk(sha, 0, 20, std::string(10, 'z'))); });
  auto bytes = grown.get();
  ASSERT_FALSE(bytes);
  EXPECT_NE(bytes.error().message.find("the action says 10"), std::string::npos);

  const std::string other(64, 'b');
  auto refused = std::async(std::launch::async, [&] { return h.fetcher.fetch(other, 10, 10s); });
  ASSERT_TRUE(eventually([&] { return h.request_count() == 2; }));
  h.on_io([&] {
    proto::ObjectChunk c;
    c.set_sha256(other);
    c.set_error("no unfinished action for this agent names that object");
    h.fetcher.on_chunk(c);
  });
  bytes = refused.get();
  ASSERT_FALSE(bytes);
  EXPECT_NE(bytes.error().message.find("will not send"), std::string::npos);
}

TEST(ObjectFetcher, CancelReleasesAWaitingScanAtOnce) {
  Harness h;  // never connected: nothing will ever arrive
  const auto started = std::chrono::steady_clock::now();
  auto waiting = std::async(std::launch::async,
                            [&] { return h.fetcher.fetch(std::string(64, 'c'), 10, 10min); });
  std::this_thread::sleep_for(50ms);
  h.fetcher.cancel_all("the agent is stopping");
  auto bytes = waiting.get();
  ASSERT_FALSE(bytes);
  EXPECT_EQ(bytes.error().message, "the agent is stopping");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_FALSE(h.fetcher.fetch(std::string(64, 'd'), 10, 10min)) << "later fetches fail at once";
}

TEST(ObjectFetcher, TimesOutWhenTheControllerNeverAnswers) {
  Harness h;
  h.on_io([&] { h.fetcher.session_started(); });
  auto bytes = h.fetcher.fetch(std::string(64, 'e'), 10, 200ms);
  ASSERT_FALSE(bytes);
  EXPECT_NE(bytes.error().message.find("did not arrive"), std::string::npos);
}

}  // namespace
}  // namespace riposte::agent
