// Rule sets named by hash: fetched once, kept compiled and on disk, checked against their hash
// whenever they are read back, never named by anything but a SHA-256.

#include "agent/rule_set_cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::agent {
namespace {

constexpr const char* kRules = "rule marker { strings: $m = \"RULE-SET-CACHE\" condition: $m }\n";

struct CountingFetch {
  std::map<std::string, std::string> objects;
  int calls = 0;
  RuleSetCache::Fetch fn() {
    return [this](const std::string& sha, std::uint64_t) -> Result<std::string> {
      ++calls;
      auto it = objects.find(sha);
      if (it == objects.end()) return Error{"unknown object"};
      return it->second;
    };
  }
};

TEST(RuleSetCache, FetchesOnceCompilesOnceAndSurvivesARestartFromDisk) {
  testing::TempDir dir;
  CountingFetch fetch;
  const std::string sha = crypto::sha256_hex(kRules);
  fetch.objects[sha] = kRules;
  {
    RuleSetCache cache(dir.path(), fetch.fn());
    auto first = cache.get(sha, std::strlen(kRules));
    ASSERT_TRUE(first) << first.error().message;
    auto second = cache.get(sha, std::strlen(kRules));
    ASSERT_TRUE(second);
    EXPECT_EQ(first->get(), second->get()) << "the compiled rules are shared, not rebuilt";
    EXPECT_EQ(cache.compilations(), 1u);
    EXPECT_EQ(fetch.calls, 1);
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / (sha + ".yar")));
  // A restarted agent: the text comes from disk, not from the controller.
  RuleSetCache restarted(dir.path(), fetch.fn());
  ASSERT_TRUE(restarted.get(sha, std::strlen(kRules)));
  EXPECT_EQ(fetch.calls, 1);
}

TEST(RuleSetCache, TextAlteredOnDiskIsFetchedAgainNotCompiled) {
  testing::TempDir dir;
  CountingFetch fetch;
  const std::string sha = crypto::sha256_hex(kRules);
  fetch.objects[sha] = kRules;
  std::ofstream(dir.path() / (sha + ".yar")) << "rule planted { condition: true }\n";
  RuleSetCache cache(dir.path(), fetch.fn());
  auto rules = cache.get(sha, std::strlen(kRules));
  ASSERT_TRUE(rules) << rules.error().message;
  EXPECT_EQ(fetch.calls, 1) << "the planted file does not hash to the name";
  std::ifstream kept(dir.path() / (sha + ".yar"));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), kRules);
}

TEST(RuleSetCache, OnlyASha256NamesAFile) {
  testing::TempDir dir;
  CountingFetch fetch;
  RuleSetCache cache(dir.path(), fetch.fn());
  for (const std::string& name : std::vector<std::string>{"../../etc/passwd", std::string(64, 'A'),
                                                          std::string(63, 'a'),
                                                          std::string(62, 'a') + "/x"}) {
    auto rules = cache.get(name, 10);
    ASSERT_FALSE(rules) << name;
    EXPECT_NE(rules.error().message.find("not a SHA-256"), std::string::npos);
  }
  EXPECT_EQ(fetch.calls, 0);
}

TEST(RuleSetCache, CompileErrorsKeepTheirLineNumbers) {
  testing::TempDir dir;
  CountingFetch fetch;
  const std::string broken = "rule ok { condition: true }\n\nrule bad {\n  condition: $nope\n}\n";
  const auto sha = crypto::sha256_hex(broken);
  fetch.objects[sha] = broken;
  RuleSetCache cache(dir.path(), fetch.fn());
  auto rules = cache.get(sha, broken.size());
  ASSERT_FALSE(rules);
  // yarac names line 5 for this source (the rule ends there): "t.yar(5): undefined string".
  EXPECT_NE(rules.error().message.find("line 5: undefined string \"$nope\""), std::string::npos)
      << rules.error().message;
}

TEST(RuleSetCache, KeepsAtMostTheConfiguredNumberOfFiles) {
  testing::TempDir dir;
  CountingFetch fetch;
  RuleSetCache cache(dir.path(), fetch.fn(), {.compiled_sets = 1, .files = 2});
  for (int i = 0; i < 4; ++i) {
    const auto text = "rule r" + std::to_string(i) + " { condition: true }\n";
    const auto sha = crypto::sha256_hex(text);
    fetch.objects[sha] = text;
    ASSERT_TRUE(cache.get(sha, text.size()));
  }
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2);
}

}  // namespace
}  // namespace riposte::agent
