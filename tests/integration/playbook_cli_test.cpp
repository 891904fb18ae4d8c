// `riposte playbooks validate DIR`: the operator's offline check, on the shipped playbooks and on
// a directory with a broken file. No controller is involved.

#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

namespace fs = std::filesystem;

TEST(PlaybookCli, ValidateAcceptsTheShippedPlaybooks) {
  const auto result = run_command({bin("riposte"), "playbooks", "validate",
                                   (fs::path(RIPOSTE_SOURCE_DIR) / "playbooks").string()});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("3 playbook(s) valid, 0 error(s)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("process.kill (approve)"), std::string::npos) << result.out;
}

TEST(PlaybookCli, ValidateNamesTheBrokenFileAndLineAndExitsOne) {
  TempDir dir;
  std::ofstream(dir.path() / "broken.yaml")
      << "name: broken\ntrigger: {}\nsteps:\n  - {id: a, kind: wait, duration: 1m}\n"
         "  - {id: b, kind: decide, when: \"len(alert) >\", then: a}\n";
  const auto result =
      run_command({bin("riposte"), "playbooks", "validate", dir.path().string(), "--json"});
  EXPECT_EQ(result.exit_code, 1);
  const auto out = nlohmann::json::parse(result.out);
  ASSERT_EQ(out["errors"].size(), 1u) << result.out;
  EXPECT_EQ(out["errors"][0], (dir.path() / "broken.yaml").string() +
                                  ":5: step 'b' when: column 13: expected a value, found the end");
}

}  // namespace
}  // namespace riposte::testing
