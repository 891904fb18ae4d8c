// libyara on real files and a real process, checked against the `yara` command-line tool.

#include "platform/yara_scanner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>

#include "tests/integration/harness.h"
#include "tests/platform/capture_target_process.h"

namespace riposte::platform {
namespace {

using riposte::testing::run_command;

constexpr const char* kRules = R"(
rule planted_marker : test memory
{
  meta:
    author = "riposte tests"
    severity = 7
  strings:
    $m = "RIPOSTE-MEMORY-MARKER-7f3a9c"
  condition:
    $m
}

rule never_matches
{
  strings:
    $x = { DE AD BE EF 00 11 22 33 44 55 }
  condition:
    $x
}
)";

TEST(YaraRules, CompileErrorsNameTheLineAsYaracDoes) {
  const std::string source =
      "rule ok { condition: true }\n\nrule broken {\n  condition: $missing\n}\n";
  auto rules = YaraRules::compile(source);
  ASSERT_FALSE(rules);
  // yarac reports the same error at the same line: "...rules.yar(5): undefined string".
  testing::TempDir dir;
  std::ofstream(dir.path() / "rules.yar") << source;
  const auto yarac =
      run_command({"yarac", (dir.path() / "rules.yar").string(), (dir.path() / "out").string()});
  std::smatch line;
  ASSERT_TRUE(std::regex_search(yarac.err, line, std::regex(R"(\.yar\((\d+)\))"))) << yarac.err;
  EXPECT_NE(rules.error().message.find("line " + line[1].str() + ":"), std::string::npos)
      << rules.error().message << " vs " << yarac.err;
  EXPECT_NE(rules.error().message.find("$missing"), std::string::npos) << rules.error().message;
  auto syntax = YaraRules::compile("rule { condition: }");
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().message.find("line 1"), std::string::npos) << syntax.error().message;
}

// `include` would compile files of the endpoint into a rule set its hash does not cover, tell
// which files exist, and hang on a FIFO: refused, whatever the file.
TEST(YaraRules, IncludesAreRefusedWhateverTheyName) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "other.yar") << "rule other { condition: true }\n";
  ASSERT_EQ(::mkfifo((dir.path() / "fifo").c_str(), 0600), 0);
  for (const auto& target : {(dir.path() / "other.yar").string(), (dir.path() / "fifo").string(),
                             std::string("/nonexistent/x.yar"), std::string("/etc/hostname")}) {
    const auto started = std::chrono::steady_clock::now();
    auto rules = YaraRules::compile("rule a { condition: true }\ninclude \"" + target + "\"\n");
    ASSERT_FALSE(rules) << target;
    EXPECT_NE(rules.error().message.find("include is not allowed"), std::string::npos)
        << rules.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2)) << target;
  }
}

TEST(YaraRules, CompilesTheRulesItIsGiven) {
  auto rules = YaraRules::compile(kRules);
  ASSERT_TRUE(rules) << rules.error().message;
  EXPECT_EQ((*rules)->rule_count(), 2);
}

TEST(YaraScanner, FindsThePlantedStringInAFileWithTagsMetadataAndOffset) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "sub");
  const std::string content =
      std::string(1000, 'a') + "RIPOSTE-MEMORY-MARKER-7f3a9c" + std::string(10, 'b');
  std::ofstream(dir.path() / "sub" / "planted.bin") << content;
  std::ofstream(dir.path() / "clean.bin") << std::string(5000, 'c');
  auto rules = YaraRules::compile(kRules).value();

  auto report = make_yara_scanner()->scan_path(*rules, dir.path().string(), {});
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->targets_scanned, 2);
  ASSERT_EQ(report->matches.size(), 1u);
  const auto& m = report->matches[0];
  EXPECT_EQ(m.rule, "planted_marker");
  EXPECT_EQ(m.tags, (std::vector<std::string>{"test", "memory"}));
  EXPECT_EQ(m.metadata.at("author"), "riposte tests");
  EXPECT_EQ(m.metadata.at("severity"), "7");
  EXPECT_EQ(m.target, (dir.path() / "sub" / "planted.bin").string());
  ASSERT_EQ(m.strings.size(), 1u);
  EXPECT_EQ(m.strings[0].identifier, "$m");
  EXPECT_EQ(m.strings[0].offset, 1000u);
  EXPECT_EQ(m.strings[0].data, "RIPOSTE-MEMORY-MARKER-7f3a9c");

  auto flat = make_yara_scanner()->scan_path(*rules, dir.path().string(), {.recursive = false});
  ASSERT_TRUE(flat);
  EXPECT_TRUE(flat->matches.empty());
  EXPECT_FALSE(make_yara_scanner()->scan_path(*rules, (dir.path() / "missing").string(), {}));
}

using Target = testing::CaptureTarget;

TEST(YaraScanner, ProcessScanFindsTheMarkerExactlyWhereTheYaraCliDoes) {
  Target target(96);  // large enough to be split across two threads
  auto rules = YaraRules::compile(kRules).value();
  auto report = make_yara_scanner()->scan_process(*rules, target.ref(), {});
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->errors.empty()) << report->errors.front();
  EXPECT_GT(report->bytes_scanned, 96u << 20);
  testing::YaraMatchSet ours;
  for (const auto& m : report->matches)
    for (const auto& s : m.strings) ours.insert({m.rule + s.identifier, s.offset});
  ASSERT_FALSE(ours.empty());

  testing::TempDir dir;
  std::ofstream(dir.path() / "rules.yar") << kRules;
  const auto cli =
      run_command({"yara", "-s", (dir.path() / "rules.yar").string(), std::to_string(target.pid())},
                  std::chrono::seconds(120));
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(ours, testing::parse_yara_cli_matches(cli.out)) << cli.out;
}

// A rule written for LOKI/THOR (signature-base style): it tests the scanner's externals.
constexpr const char* kLokiStyleRules = R"(
rule loki_style_exe_name {
  strings:
    $m = "RIPOSTE-EXTERNALS-MARKER"
  condition:
    $m and filename == "Dropper.EXE" and extension == ".exe" and filetype == "EXE"
      and filepath endswith "/drop" and owner == "root"
}
rule loki_style_elf_in_proc {
  condition: filetype == "ELF" and filename == "capture_target" and owner == "root"
}
rule script_by_extension {
  condition: extension == ".sh" and filetype == "SCRIPT"
}
)";

TEST(YaraScanner, LokiExternalsAreDefinedPerFileAsTheYaraCliDefinesThem) {
  ASSERT_EQ(::geteuid(), 0u) << "the owner external is checked against root-owned files";
  auto rules = YaraRules::compile(kLokiStyleRules);
  ASSERT_TRUE(rules) << rules.error().message;  // undefined identifiers without the externals
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "drop");
  std::ofstream(dir.path() / "drop" / "Dropper.EXE") << "MZ\x90" << "RIPOSTE-EXTERNALS-MARKER";
  std::ofstream(dir.path() / "drop" / "other.exe") << "MZ\x90" << "RIPOSTE-EXTERNALS-MARKER";
  std::ofstream(dir.path() / "drop" / "run.sh") << "#!/bin/sh\necho hi\n";
  auto report = make_yara_scanner()->scan_path(**rules, dir.path().string(), {});
  ASSERT_TRUE(report) << report.error().message;
  std::set<std::pair<std::string, std::string>> ours;
  for (const auto& m : report->matches)
    ours.insert({m.rule, std::filesystem::path(m.target).filename().string()});
  EXPECT_EQ(ours, (std::set<std::pair<std::string, std::string>>{
                      {"loki_style_exe_name", "Dropper.EXE"}, {"script_by_extension", "run.sh"}}));

  // The yara CLI, given the same values with -d, agrees file by file.
  std::ofstream(dir.path() / "rules.yar") << kLokiStyleRules;
  for (const auto* name : {"Dropper.EXE", "other.exe"}) {
    const auto file = dir.path() / "drop" / name;
    std::string ext = file.extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto cli = run_command({"yara", "-d", std::string("filename=") + name,
                                  "-d", "filepath=" + file.parent_path().string(),
                                  "-d", "extension=" + ext, "-d", "filetype=EXE", "-d",
                                  "owner=root", (dir.path() / "rules.yar").string(), file.string()});
    ASSERT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_EQ(cli.out.find("loki_style_exe_name") != std::string::npos,
              ours.count({"loki_style_exe_name", name}) == 1)
        << name << ": " << cli.out;
  }

  // A process is described by its executable (through /proc/PID/exe) and its owner.
  Target target(4);
  auto process = make_yara_scanner()->scan_process(**rules, target.ref(), {});
  ASSERT_TRUE(process) << process.error().message;
  ASSERT_EQ(process->matches.size(), 1u);
  EXPECT_EQ(process->matches[0].rule, "loki_style_elf_in_proc");
}

TEST(YaraScanner, LinksFoundWhileWalkingADirectoryAreNotFollowed) {
  testing::TempDir dir, outside;
  std::filesystem::create_directories(dir.path() / "tree");
  std::ofstream(outside.path() / "secret") << "RIPOSTE-MEMORY-MARKER-7f3a9c";
  std::filesystem::create_symlink(outside.path() / "secret", dir.path() / "tree" / "link");
  auto rules = YaraRules::compile(kRules).value();
  auto walked = make_yara_scanner()->scan_path(*rules, (dir.path() / "tree").string(), {});
  ASSERT_TRUE(walked) << walked.error().message;
  EXPECT_EQ(walked->targets_scanned, 0);
  EXPECT_TRUE(walked->matches.empty());
  // Named by the responder, the link is what they asked for.
  auto named = make_yara_scanner()->scan_path(*rules, (dir.path() / "tree" / "link").string(), {});
  ASSERT_TRUE(named);
  EXPECT_EQ(named->matches.size(), 1u);
}

TEST(YaraScanner, WrongStartTimeScansNothing) {
  Target target(4);
  auto rules = YaraRules::compile(kRules).value();
  auto ref = target.ref();
  ref.start_ticks += 3;
  EXPECT_FALSE(make_yara_scanner()->scan_process(*rules, ref, {}));
}

}  // namespace
}  // namespace riposte::platform
