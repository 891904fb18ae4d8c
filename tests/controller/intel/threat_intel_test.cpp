#include "controller/intel/threat_intel.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/utc_time.h"
#include "tests/build_paths.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

const std::filesystem::path kIntel =
    std::filesystem::path(::riposte::testing::source_dir()) / "tests/fixtures/intel";

constexpr std::int64_t kNow = 1'795'564'800'000;  // 2026-11-25T00:00:00Z

std::vector<std::string> values(const FeedContents& f) {
  std::vector<std::string> out;
  for (const auto& i : f.indicators) out.push_back(i.type + ":" + i.value);
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

TEST(IntelFeeds, FeodoCsvWithCommentedHeaderAndQuotedFields) {
  auto feed = load_feed({"feodo", kIntel / "feodo.csv", "csv", 1, "dst_ip"}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  EXPECT_EQ(values(*feed),
            (std::vector<std::string>{"ip:185.220.101.47", "ip:203.0.113.77", "ip:192.0.2.200"}));
  EXPECT_EQ(feed->skipped, 1u);  // "not-an-ip"
  // Without `column` the indicator column is detected.
  auto detected = load_feed({"feodo", kIntel / "feodo.csv", "csv", 1, ""}, kNow);
  ASSERT_TRUE(detected) << detected.error().message;
  EXPECT_EQ(values(*detected), values(*feed));
}

TEST(IntelFeeds, CsvErrorsNameTheProblem) {
  auto missing_column = load_feed({"feodo", kIntel / "feodo.csv", "csv", 1, "ip_address"}, kNow);
  ASSERT_FALSE(missing_column);
  EXPECT_NE(missing_column.error().message.find("no column 'ip_address'"), std::string::npos);
  EXPECT_NE(missing_column.error().message.find("dst_port"), std::string::npos);  // lists them
  testing::TempDir dir;
  std::ofstream(dir.path() / "junk.csv") << "a,b\nhello,world\nfoo,bar\n";
  auto junk = load_feed({"junk", dir.path() / "junk.csv", "csv", 1, ""}, kNow);
  ASSERT_FALSE(junk);
  EXPECT_NE(junk.error().message.find("no column holds indicators"), std::string::npos);
  EXPECT_FALSE(load_feed({"none", dir.path() / "absent.csv", "csv", 1, ""}, kNow));
  EXPECT_FALSE(load_feed({"x", dir.path() / "junk.csv", "yaml", 1, ""}, kNow));
}

TEST(IntelFeeds, CsvSplitterFollowsRfc4180Quoting) {
  EXPECT_EQ(split_csv_line(R"("a,b","say ""hi""",c)"),
            (std::vector<std::string>{"a,b", "say \"hi\"", "c"}));
  EXPECT_EQ(split_csv_line("x,,y"), (std::vector<std::string>{"x", "", "y"}));
}

TEST(IntelFeeds, PlainListKeepsIndicatorsAndRanges) {
  auto feed = load_feed({"list", kIntel / "blocklist.txt", "list", 1, ""}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  const auto v = values(*feed);
  EXPECT_TRUE(contains(v, "ip:185.220.101.47"));
  EXPECT_TRUE(contains(v, "domain:evil-updates.example.com"));
  EXPECT_TRUE(contains(v, "url:http://invoice-portal.example.net/download/invoice.exe"));
  EXPECT_TRUE(
      contains(v, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  ASSERT_EQ(feed->networks.size(), 1u);
  EXPECT_TRUE(feed->networks[0].contains("198.51.100.23"));
  EXPECT_EQ(feed->skipped, 1u);  // "this is not an indicator"
}

// Hosts-file blocklists (`0.0.0.0 domain`, URLhaus's shape) yield their names, never the sink
// address in front; every line not used is counted with its reason.
TEST(IntelFeeds, HostsFileListYieldsDomainsNeverTheSinkAddress) {
  auto feed = load_feed({"hosts", kIntel / "hosts_blocklist.txt", "list", 1, ""}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  const auto v = values(*feed);
  for (const auto* domain : {"domain:malware-drop.example.net", "domain:c2-panel.example.org",
                             "domain:a.payload.example.com", "domain:b.payload.example.com"})
    EXPECT_TRUE(contains(v, domain)) << domain;
  EXPECT_EQ(v.size(), 4u) << "no sink address and no name of the machine itself";
  EXPECT_TRUE(feed->networks.empty()) << "0.0.0.0/0 would confirm every address";
  // localhost, ip6-localhost, ip6-loopback, a bare 0.0.0.0, 0.0.0.0/0.
  ASSERT_EQ(feed->skipped, 5u);
  EXPECT_NE(feed->skip_reasons[0].find("line 4: \"localhost\" is the hosts file's name"),
            std::string::npos)
      << feed->skip_reasons[0];
  EXPECT_NE(feed->skip_reasons[3].find("line 9: 0.0.0.0 (unspecified address)"), std::string::npos)
      << feed->skip_reasons[3];
  EXPECT_NE(feed->skip_reasons[4].find("0.0.0.0/0 is a range of unspecified addresses"),
            std::string::npos)
      << feed->skip_reasons[4];
  EXPECT_NE(feed->detail.find("10 lines: 3 comments or blank, 5 in hosts-file form"),
            std::string::npos)
      << feed->detail;
}

// A sink or host-local address is never an indicator in any format: a CSV row, a MISP attribute,
// a STIX pattern; nor a range holding one or broader than /8 (IPv4) or /16 (IPv6).
TEST(IntelFeeds, SinkAddressesAndHugeRangesAreNeverIndicators) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "c2.csv") << "# first_seen,dst_ip\n2026-01-01,0.0.0.0\n"
                                          "2026-01-01,127.0.0.53\n2026-01-01,198.51.100.7\n"
                                          "2026-01-01,::1\n2026-01-01,128.0.0.0/1\n";
  auto csv = load_feed({"c", dir.path() / "c2.csv", "csv", 1, "dst_ip"}, kNow);
  ASSERT_TRUE(csv) << csv.error().message;
  EXPECT_EQ(values(*csv), std::vector<std::string>{"ip:198.51.100.7"});
  EXPECT_TRUE(csv->networks.empty());
  EXPECT_EQ(csv->skipped, 4u);
  EXPECT_NE(csv->skip_reasons[3].find("broader than /8"), std::string::npos)
      << csv->skip_reasons[3];

  const std::string uuid = "5f0c1b2a-3333-4c3d-9e8f-0a1b2c3d4e5f";
  std::ofstream(dir.path() / "manifest.json") << "{\"" << uuid << "\": {}}";
  std::ofstream(dir.path() / (uuid + ".json")) << R"({"Event": {"Attribute": [
      {"type": "ip-dst", "value": "127.0.0.1"}, {"type": "domain|ip",
       "value": "sinkholed.example.org|0.0.0.0"}, {"type": "ip-dst", "value": "198.51.100.8"}]}})";
  auto misp = load_feed({"m", dir.path(), "misp", 1, ""}, kNow);
  ASSERT_TRUE(misp) << misp.error().message;
  EXPECT_EQ(values(*misp),
            (std::vector<std::string>{"domain:sinkholed.example.org", "ip:198.51.100.8"}));
  EXPECT_EQ(misp->skipped, 2u);

  std::ofstream(dir.path() / "s.json") << R"({"type": "bundle", "objects": [
      {"type": "indicator", "spec_version": "2.1", "id": "indicator--1", "pattern_type": "stix",
       "pattern": "[ipv6-addr:value = '::1']"},
      {"type": "indicator", "spec_version": "2.1", "id": "indicator--2", "pattern_type": "stix",
       "pattern": "[ipv4-addr:value ISSUBSET '0.0.0.0/0']"}]})";
  auto stix = load_feed({"s", dir.path() / "s.json", "stix", 1, ""}, kNow);
  EXPECT_FALSE(stix) << "nothing usable";
}

// What the producer says about an indicator's life is obeyed: STIX revoked, valid_until passed,
// OpenCTI x_opencti_detection false and MISP deleted, to_ids false or an expiration sighting
// passed hold it out (counted); a window still open confirms only inside it, at each lookup.
TEST(IntelFeeds, IndicatorLifetimesDecideWhatConfirms) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "s.json") << R"({"type": "bundle", "objects": [
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--past", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value = '198.51.100.1']", "valid_from": "2025-01-01T00:00:00Z",
     "valid_until": "2026-01-01T00:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--revoked", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value = '198.51.100.2']", "valid_from": "2025-01-01T00:00:00Z",
     "revoked": true},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--nodetect", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value = '198.51.100.3']", "valid_from": "2025-01-01T00:00:00Z",
     "x_opencti_detection": false},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--future", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value = '198.51.100.4']", "valid_from": "2026-12-01T00:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--ending", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value ISSUBSET '198.51.100.128/25']",
     "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2026-11-28T00:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--plain", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value = '198.51.100.6']", "valid_from": "2025-01-01T00:00:00Z",
     "x_opencti_detection": true},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--inverted", "pattern_type": "stix",
     "pattern": "[ipv4-addr:value = '198.51.100.7']", "valid_from": "2026-01-01T00:00:00Z",
     "valid_until": "2025-01-01T00:00:00Z"}]})";
  auto stix = load_feed({"s", dir.path() / "s.json", "stix", 1, ""}, kNow);
  ASSERT_TRUE(stix) << stix.error().message;
  EXPECT_EQ(values(*stix), std::vector<std::string>{"ip:198.51.100.6"});
  EXPECT_EQ(stix->expired, 1u);
  EXPECT_EQ(stix->revoked, 1u);
  EXPECT_EQ(stix->not_for_detection, 1u);
  EXPECT_EQ(stix->timed.size(), 2u);
  EXPECT_EQ(stix->skipped, 1u) << "valid_until before valid_from";

  const std::string uuid = "5f0c1b2a-4444-4c3d-9e8f-0a1b2c3d4e5f";
  std::ofstream(dir.path() / "manifest.json") << "{\"" << uuid << "\": {}}";
  // date_sighting: 1767225600 = 2026-01-01 (passed), 1798761600 = 2027-01-01 (to come).
  std::ofstream(dir.path() / (uuid + ".json")) << R"({"Event": {"Attribute": [
      {"type": "ip-dst", "value": "203.0.113.1", "Sighting": [
        {"type": "0", "date_sighting": "1700000000"}, {"type": "2", "date_sighting": "1767225600"}]},
      {"type": "ip-dst", "value": "203.0.113.2", "Sighting": [
        {"type": "2", "date_sighting": "1798761600"}, {"type": "1", "date_sighting": "1700000000"}]},
      {"type": "ip-dst", "value": "203.0.113.3", "deleted": true},
      {"type": "ip-dst", "value": "203.0.113.4", "to_ids": false},
      {"type": "ip-dst", "value": "203.0.113.5", "Sighting": [{"type": "2", "date_sighting": "soon"}]}]}})";
  auto misp = load_feed({"m", dir.path(), "misp", 1, ""}, kNow);
  ASSERT_TRUE(misp) << misp.error().message;
  EXPECT_TRUE(values(*misp).empty());
  EXPECT_EQ(misp->expired, 1u);
  EXPECT_EQ(misp->revoked, 1u);
  EXPECT_EQ(misp->not_for_detection, 1u);
  EXPECT_EQ(misp->timed.size(), 1u);
  EXPECT_EQ(misp->skipped, 1u) << "an expiration date that is not a date";

  // The windows are judged when an alert is assessed, not when the feed was read.
  std::int64_t now = kNow;
  ThreatIntel intel([&] { return now; });
  ASSERT_TRUE(intel.load(
      {{"s", dir.path() / "s.json", "stix", 1, ""}, {"m", dir.path(), "misp", 1, ""}}, kNow));
  const auto feeds_for = [&](const std::string& ip) {
    return intel.confirming_feeds("ip", ip).size();
  };
  for (const auto* held_out : {"198.51.100.1", "198.51.100.2", "198.51.100.3", "203.0.113.1",
                               "203.0.113.3", "203.0.113.4"})
    EXPECT_EQ(feeds_for(held_out), 0u) << held_out;
  EXPECT_EQ(feeds_for("198.51.100.6"), 1u);
  EXPECT_EQ(feeds_for("198.51.100.4"), 0u) << "valid_from still to come";
  EXPECT_EQ(feeds_for("198.51.100.200"), 1u) << "inside the range until 2026-11-28";
  EXPECT_EQ(feeds_for("203.0.113.2"), 1u) << "expires 2027-01-01";
  now = *parse_rfc3339_ms("2026-12-02T00:00:00Z");
  EXPECT_EQ(feeds_for("198.51.100.4"), 1u) << "valid from 2026-12-01";
  EXPECT_EQ(feeds_for("198.51.100.200"), 0u) << "valid_until 2026-11-28 passed after the load";
  EXPECT_EQ(feeds_for("203.0.113.2"), 1u);
  now = *parse_rfc3339_ms("2027-01-01T00:00:00Z");
  EXPECT_EQ(feeds_for("203.0.113.2"), 0u) << "the expiration sighting's date";
  const auto status = intel.feeds();
  EXPECT_EQ(status[0].expired, 1u);
  EXPECT_EQ(status[0].timed, 2u);
  EXPECT_EQ(status[1].revoked, 1u);
}

// Review findings of the same classes: ranges of addresses every host has or no host owns
// (link-local with the cloud metadata address, multicast, broadcast) and of private space; a
// hosts-file line that sends names to a block page's address; text after an indicator; a byte
// order mark; a deleted MISP object; a newer STIX version that revokes or expires.
TEST(IntelFeeds, ReviewedMembersOfTheSinkAndLifetimeClasses) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "list.txt")
      << "\xEF\xBB\xBF"
         "198.51.100.40\n"
         "169.254.0.0/16\n169.254.169.254/32\n224.0.0.0/8\n255.255.255.255/32\nfe80::/16\n"
         "ff02::/16\n10.0.0.0/8\n192.168.1.0/24\nfd00::/8\n10.20.2.40\n"
         "203.0.113.9 blocked.example.net\n"
         "evil.example.net 0.0.0.0\n";
  auto list = load_feed({"l", dir.path() / "list.txt", "list", 1, ""}, kNow);
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(values(*list),
            (std::vector<std::string>{"ip:198.51.100.40", "ip:10.20.2.40",
                                      "domain:blocked.example.net", "domain:evil.example.net"}))
      << "the byte order mark is not part of line 1; a single private address may be an indicator";
  EXPECT_TRUE(list->networks.empty());
  ASSERT_EQ(list->skipped, 11u);  // nine ranges, the block page's address, the text after a value
  std::string reasons;
  for (const auto& r : list->skip_reasons) reasons += r + "\n";
  EXPECT_NE(reasons.find("169.254.0.0/16 is a range of link-local addresses"), std::string::npos)
      << reasons;

  const std::string uuid = "5f0c1b2a-5555-4c3d-9e8f-0a1b2c3d4e5f";
  std::ofstream(dir.path() / "manifest.json") << "{\"" << uuid << "\": {}}";
  std::ofstream(dir.path() / (uuid + ".json")) << R"({"Event": {"Object": [
      {"name": "ip-port", "deleted": true, "Attribute": [{"type": "ip-dst", "value": "198.18.0.30"}]},
      {"name": "ip-port", "Attribute": [{"type": "ip-dst", "value": "198.18.0.31"}]}]}})";
  auto misp = load_feed({"m", dir.path(), "misp", 1, ""}, kNow);
  ASSERT_TRUE(misp) << misp.error().message;
  EXPECT_EQ(values(*misp), std::vector<std::string>{"ip:198.18.0.31"});
  EXPECT_EQ(misp->revoked, 1u);

  // Two versions of one indicator, the newer revoking (or expiring) it, in either order and in
  // two files of a directory: the newest version decides, and a revocation is final.
  const auto indicator = [](const std::string& id, const std::string& ip,
                            const std::string& modified, const std::string& extra) {
    return R"({"type": "indicator", "spec_version": "2.1", "id": ")" + id +
           R"(", "pattern_type": "stix", "pattern": "[ipv4-addr:value = ')" + ip +
           R"(']", "valid_from": "2025-01-01T00:00:00Z", "created": "2025-01-01T00:00:00Z", )"
           R"("modified": ")" +
           modified + "\"" + extra + "}";
  };
  const auto stix_dir = dir.path() / "stix";
  std::filesystem::create_directories(stix_dir);
  std::ofstream(stix_dir / "a-day2.json")
      << R"({"type": "bundle", "objects": [)"
      << indicator("indicator--1", "203.0.113.19", "2025-06-02T00:00:00Z", R"(, "revoked": true)")
      << ", "
      << indicator("indicator--2", "203.0.113.20", "2025-06-02T00:00:00Z",
                   R"(, "valid_until": "2025-06-02T00:00:00Z")")
      << ", "
      << indicator("indicator--3", "203.0.113.21", "2025-06-01T00:00:00Z", R"(, "revoked": true)")
      << "]}";
  std::ofstream(stix_dir / "b-day1.json")
      << R"({"type": "bundle", "objects": [)"
      << indicator("indicator--1", "203.0.113.19", "2025-06-01T00:00:00Z", "") << ", "
      << indicator("indicator--2", "203.0.113.20", "2025-06-01T00:00:00Z", "") << ", "
      << indicator("indicator--3", "203.0.113.21", "2025-06-09T00:00:00Z", "") << ", "
      << indicator("indicator--4", "203.0.113.22", "2025-06-01T00:00:00Z", "") << "]}";
  auto stix = load_feed({"s", stix_dir, "stix", 1, ""}, kNow);
  ASSERT_TRUE(stix) << stix.error().message;
  EXPECT_EQ(values(*stix), std::vector<std::string>{"ip:203.0.113.22"});
  EXPECT_EQ(stix->revoked, 2u) << "the newer revocation, and a revocation a later version omits";
  EXPECT_EQ(stix->expired, 1u);
}

TEST(IntelFeeds, MispFeedDirectoryReadsEventsAndObjects) {
  auto feed = load_feed({"misp", kIntel / "misp", "misp", 1, ""}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  const auto v = values(*feed);
  EXPECT_TRUE(contains(v, "ip:185.220.101.47"));
  EXPECT_TRUE(contains(v, "ip:203.0.113.77"));               // ip-dst|port
  EXPECT_TRUE(contains(v, "domain:c2.beacon-example.org"));  // domain|ip, both halves
  EXPECT_TRUE(contains(v, "ip:198.51.100.23"));
  EXPECT_TRUE(contains(v, "url:https://login-verify.example.info/qb"));  // inside an Object
  EXPECT_TRUE(
      contains(v, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_FALSE(contains(v, "ip:192.0.2.99"));  // to_ids false: context only
  EXPECT_EQ(feed->skipped, 1u);                // sha1 "xyz"
}

TEST(IntelFeeds, BadMispFeedsAreRefusedWhole) {
  testing::TempDir dir;
  EXPECT_FALSE(load_feed({"m", dir.path(), "misp", 1, ""}, kNow));  // no manifest.json
  std::ofstream(dir.path() / "manifest.json") << R"({"5f0c1b2a-9999-4c3d-9e8f-0a1b2c3d4e5f": {}})";
  auto missing_event = load_feed({"m", dir.path(), "misp", 1, ""}, kNow);
  ASSERT_FALSE(missing_event);
  EXPECT_NE(missing_event.error().message.find("5f0c1b2a-9999"), std::string::npos);
  std::ofstream(dir.path() / "manifest.json") << R"({"../../etc/passwd": {}})";
  EXPECT_FALSE(load_feed({"m", dir.path(), "misp", 1, ""}, kNow));
  std::ofstream(dir.path() / "manifest.json") << "{not json";
  auto broken = load_feed({"m", dir.path(), "misp", 1, ""}, kNow);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("not valid JSON"), std::string::npos);
}

TEST(IntelFeeds, Stix21PatternsBecomeIndicatorsAndCorrelationsAreSkipped) {
  auto feed = load_feed({"stix", kIntel / "stix", "stix", 1, ""}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  const auto v = values(*feed);
  EXPECT_TRUE(contains(v, "ip:185.220.101.47"));
  EXPECT_TRUE(contains(v, "domain:c2.beacon-example.org"));  // OR of two observations
  EXPECT_TRUE(contains(v, "url:https://login-verify.example.info/qb"));
  EXPECT_TRUE(
      contains(v, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_FALSE(contains(v, "ip:192.0.2.66"));  // revoked
  ASSERT_EQ(feed->networks.size(), 1u);        // ISSUBSET '203.0.113.0/24'
  EXPECT_TRUE(feed->networks[0].contains("203.0.113.77"));
  EXPECT_FALSE(contains(v, "md5:5d41402abc4b2a76b9719d911017c592"));  // only inside an AND
  EXPECT_EQ(feed->skipped, 2u);  // the AND pattern and the snort pattern
}

TEST(IntelFeeds, Stix20AndNonBundlesAreReportedNotHalfLoaded) {
  // Judged per object: a bundle of STIX 2.0 objects has nothing usable, and says why.
  auto old = load_feed({"old", kIntel / "stix20_bundle.json", "stix", 1, ""}, kNow);
  ASSERT_FALSE(old);
  EXPECT_NE(old.error().message.find("STIX 2.0"), std::string::npos) << old.error().message;
  testing::TempDir dir;
  std::ofstream(dir.path() / "x.json")
      << R"({"type": "indicator", "pattern": "[ipv4-addr:value = '1.2.3.4']"})";
  auto not_bundle = load_feed({"x", dir.path() / "x.json", "stix", 1, ""}, kNow);
  ASSERT_FALSE(not_bundle);
  EXPECT_NE(not_bundle.error().message.find("not a STIX bundle"), std::string::npos);
  // Each object by its own spec_version: the 2.1 one loads, the one without is skipped (named).
  std::ofstream(dir.path() / "mixed.json") << R"({"type": "bundle", "id": "bundle--1", "spec_version": "2.0", "objects": [
      {"type": "indicator", "spec_version": "2.1", "id": "indicator--1", "pattern": "[ipv4-addr:value = '1.2.3.4']", "pattern_type": "stix"},
      {"type": "indicator", "id": "indicator--2", "pattern": "[ipv4-addr:value = '5.6.7.8']", "pattern_type": "stix"}]})";
  auto mixed = load_feed({"mixed", dir.path() / "mixed.json", "stix", 1, ""}, kNow);
  ASSERT_TRUE(mixed) << mixed.error().message;
  EXPECT_TRUE(contains(values(*mixed), "ip:1.2.3.4"));
  EXPECT_FALSE(contains(values(*mixed), "ip:5.6.7.8"));
  ASSERT_EQ(mixed->skipped, 1u);
  EXPECT_NE(mixed->skip_reasons[0].find("indicator--2"), std::string::npos);
}

// A number too large for a double is valid JSON syntax the parser refuses by throwing: an error
// for that feed, never an exception out of the loader (found by scripts/fuzz.sh).
TEST(IntelFeeds, AnOutOfRangeNumberIsAnErrorNotACrash) {
  testing::TempDir dir;
  std::ofstream(dir.path() / "big.json") << "{\"type\": \"bundle\", \"n\": 2E2222222222}";
  auto feed = load_feed({"big", dir.path() / "big.json", "stix", 1, ""}, kNow);
  ASSERT_FALSE(feed);
  EXPECT_NE(feed.error().message.find("not usable JSON"), std::string::npos)
      << feed.error().message;
}

// A field of another JSON type than the format's ("type": true, "value": 5, "pattern": [])
// skips that attribute or object with a reason naming the field; the rest of the feed loads
// (a MISP event like this one aborted the controller: found by scripts/fuzz.sh).
TEST(IntelFeeds, WrongTypedFieldsAreSkippedWithAReason) {
  testing::TempDir dir;
  const std::string uuid = "5f0c1b2a-2222-4c3d-9e8f-0a1b2c3d4e5f";
  std::ofstream(dir.path() / "manifest.json") << "{\"" << uuid << "\": {}}";
  std::ofstream(dir.path() / (uuid + ".json")) << R"({"Event": {"uuid": "x", "Attribute": [
      {"type": true, "value": "198.51.100.1"},
      {"type": "ip-dst", "value": 5},
      {"type": "text", "value": 7},
      {"type": "ip-dst", "value": "198.51.100.2", "deleted": 1},
      {"type": "ip-dst", "value": "198.51.100.3", "to_ids": "yes"},
      {"type": "domain", "value": "ok.example.org"}]}})";
  auto misp = load_feed({"m", dir.path(), "misp", 1, ""}, kNow);
  ASSERT_TRUE(misp) << misp.error().message;
  EXPECT_TRUE(contains(values(*misp), "domain:ok.example.org"));
  // A flag that is not a boolean is neither true nor false: that attribute is skipped (a
  // retracted indicator must not come back).
  EXPECT_FALSE(contains(values(*misp), "ip:198.51.100.2"));
  EXPECT_FALSE(contains(values(*misp), "ip:198.51.100.3"));
  EXPECT_FALSE(contains(values(*misp), "ip:198.51.100.1"));
  ASSERT_EQ(misp->skipped, 4u);  // the "text" one is context, not skipped
  EXPECT_NE(misp->skip_reasons[2].find("\"deleted\" is not a boolean (number)"),
            std::string::npos)
      << misp->skip_reasons[2];
  EXPECT_NE(misp->skip_reasons[0].find("\"type\" is not a string (boolean)"), std::string::npos)
      << misp->skip_reasons[0];
  EXPECT_NE(misp->skip_reasons[1].find("\"value\" is not a string (number)"), std::string::npos)
      << misp->skip_reasons[1];

  std::ofstream(dir.path() / "stix.json") << R"({"type": "bundle", "objects": [
      {"type": 1},
      {"type": "indicator", "spec_version": 2.1, "id": "indicator--1"},
      {"type": "indicator", "spec_version": "2.1", "id": 7, "pattern_type": ["stix"]},
      {"type": "indicator", "spec_version": "2.1", "id": "indicator--3", "pattern_type": "stix",
       "pattern": ["x"]},
      {"type": "indicator", "spec_version": "2.1", "id": "indicator--5", "pattern_type": "stix",
       "pattern": "[ipv4-addr:value = '198.51.100.10']", "revoked": "true"},
      {"type": "indicator", "spec_version": "2.1", "id": "indicator--4", "pattern_type": "stix",
       "pattern": "[ipv4-addr:value = '198.51.100.9']"}]})";
  auto stix = load_feed({"s", dir.path() / "stix.json", "stix", 1, ""}, kNow);
  ASSERT_TRUE(stix) << stix.error().message;
  EXPECT_TRUE(contains(values(*stix), "ip:198.51.100.9"));
  EXPECT_FALSE(contains(values(*stix), "ip:198.51.100.10"));  // "revoked" not a boolean
  ASSERT_EQ(stix->skipped, 4u);
  EXPECT_NE(stix->skip_reasons[3].find("\"revoked\" is not a boolean"), std::string::npos)
      << stix->skip_reasons[3];
  EXPECT_NE(stix->skip_reasons[2].find("\"pattern\" is not a string (array)"), std::string::npos)
      << stix->skip_reasons[2];
  std::ofstream(dir.path() / "typed.json") << R"({"type": ["bundle"], "objects": []})";
  EXPECT_FALSE(load_feed({"s", dir.path() / "typed.json", "stix", 1, ""}, kNow));
}

// MISP's STIX 2.1 export writes an address as an AND that only narrows one network-traffic
// object (type, value, port): that is the address. ANDs that correlate two things stay skipped.
TEST(IntelFeeds, MispStix21ExportAddressesAreRead) {
  auto feed =
      load_feed({"misp-stix", kIntel / "stix_misp" / "misp_export_21.json", "stix", 1, ""}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  const auto v = values(*feed);
  EXPECT_TRUE(contains(v, "ip:203.0.113.5"));
  EXPECT_TRUE(contains(v, "ip:2001:db8::77"));
  EXPECT_TRUE(contains(v, "domain:c2.example.net"));
  EXPECT_FALSE(contains(v, "ip:198.51.100.1")) << "two addresses ANDed: a correlation";
  EXPECT_FALSE(contains(v, "md5:5d41402abc4b2a76b9719d911017c592")) << "file name AND hash";
  EXPECT_EQ(feed->skipped, 2u);
}

// ThreatFox's CSV export: a quoted header in a comment line, `", "` separators, `ip:port` and
// `[v6]:port` values, and malware families (`win.asyncrat`) that read like domains.
TEST(IntelFeeds, ThreatFoxCsvTakesTheIocColumnAndAddressesFromIpPort) {
  auto feed = load_feed({"threatfox", kIntel / "threatfox_export.csv", "csv", 1, ""}, kNow);
  ASSERT_TRUE(feed) << feed.error().message;
  const auto v = values(*feed);
  EXPECT_TRUE(contains(v, "ip:198.51.100.23"));
  EXPECT_TRUE(contains(v, "ip:203.0.113.45"));
  EXPECT_TRUE(contains(v, "ip:2001:db8::45"));
  EXPECT_TRUE(contains(v, "domain:c2.example.net"));
  EXPECT_TRUE(contains(v, "url:http://dl.example.org/payload.bin"));
  EXPECT_TRUE(contains(v, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(contains(v, "domain:win.asyncrat"));
  EXPECT_EQ(feed->skipped, 0u);
  EXPECT_NE(feed->detail.find("'ioc_value' (by its header name)"), std::string::npos)
      << feed->detail;
  // Only ip:port rows: loads (used to stop the controller's start).
  auto ports = load_feed({"ports", kIntel / "threatfox_ports_only.csv", "csv", 1, ""}, kNow);
  ASSERT_TRUE(ports) << ports.error().message;
  EXPECT_EQ(ports->indicators.size(), 2u);
  // Without a header, the column that holds indicators, never the family names.
  testing::TempDir dir;
  std::ofstream(dir.path() / "bare.csv") << "win.asyncrat,198.51.100.23:443\nwin.remcos,198.51.100.24:80\n";
  auto bare = load_feed({"bare", dir.path() / "bare.csv", "csv", 1, ""}, kNow);
  ASSERT_TRUE(bare);
  EXPECT_TRUE(contains(values(*bare), "ip:198.51.100.23"));
}

// Four feeds of weight 1, as in the SOC rule the default thresholds mirror.
class Confidence : public ::testing::Test {
 protected:
  void SetUp() override {
    // Each list holds the IPs 10.0.0.1 .. 10.0.0.k for its own k, so 10.0.0.n is listed by
    // exactly (5 - n) feeds: .1 by four, .2 by three, .3 by two, .4 by one, .5 by none.
    for (int k = 1; k <= 4; ++k) {
      const auto path = dir.path() / ("feed" + std::to_string(k) + ".txt");
      std::ofstream out(path);
      for (int n = 1; n <= k; ++n) out << "10.0.0." << n << "\n";
      feeds.push_back({"feed" + std::to_string(k), path, "list", 1, ""});
    }
    ASSERT_TRUE(intel.load(feeds, 1000));
  }
  std::string decision_for(const std::string& ip) {
    return intel.assess({{"ip", ip, ""}}, ConfidenceThresholds{})["decision"];
  }
  testing::TempDir dir;
  std::vector<FeedConfig> feeds;
  ThreatIntel intel;
};

TEST_F(Confidence, ThresholdsAtEachBoundary) {
  EXPECT_EQ(decision_for("10.0.0.5"), "discard");  // 0 of 4
  EXPECT_EQ(decision_for("10.0.0.4"), "discard");  // 1 of 4
  EXPECT_EQ(decision_for("10.0.0.3"), "analyst");  // exactly 2
  EXPECT_EQ(decision_for("10.0.0.2"), "respond");  // 3
  EXPECT_EQ(decision_for("10.0.0.1"), "respond");  // 4
  const auto two = intel.assess({{"ip", "10.0.0.3", ""}}, ConfidenceThresholds{});
  EXPECT_DOUBLE_EQ(two["score"].get<double>(), 0.5);
  EXPECT_EQ(two["confirmations"][0]["feeds"], (nlohmann::json{"feed3", "feed4"}));
}

TEST_F(Confidence, WeightsAndPerPlaybookThresholdsChangeTheDecision) {
  feeds[3].weight = 2;  // feed4 counts double: total 5
  ASSERT_TRUE(intel.load(feeds, 2000));
  const auto one = intel.assess({{"ip", "10.0.0.4", ""}}, ConfidenceThresholds{});
  EXPECT_DOUBLE_EQ(one["score"].get<double>(), 0.4);
  EXPECT_EQ(one["decision"], "discard");
  EXPECT_EQ(intel.assess({{"ip", "10.0.0.4", ""}}, ConfidenceThresholds{0.4, 0.9})["decision"],
            "analyst");
}

TEST_F(Confidence, AlertTakesItsBestObservableAndLookupGuessesTheType) {
  const auto both = intel.assess({{"ip", "10.0.0.4", ""}, {"ip", "10.0.0.2", ""}}, {});
  EXPECT_DOUBLE_EQ(both["score"].get<double>(), 0.75);
  auto found = intel.lookup("10.0.0.3", {});
  ASSERT_TRUE(found);
  EXPECT_EQ((*found)["type"], "ip");
  EXPECT_EQ((*found)["feeds"].size(), 2u);
  EXPECT_FALSE(intel.lookup("not an indicator", {}));
}

TEST_F(Confidence, FailedReloadKeepsThePreviousFeeds) {
  // A feed file named in the configuration but missing is a configuration error: nothing changes.
  auto broken = feeds;
  broken.push_back({"gone", dir.path() / "missing.txt", "list", 1, ""});
  EXPECT_FALSE(intel.load(broken, 3000));
  EXPECT_EQ(intel.feeds().size(), 4u);
  EXPECT_EQ(decision_for("10.0.0.2"), "respond");
}

// One feed file turns bad (a truncated export): it is reported with its file, line and why, its
// previous contents stay in use, the other feeds reload, and a first load without previous
// contents still starts.
TEST_F(Confidence, ABadFeedFileKeepsItsPreviousContentsAndDoesNotStopTheOthers) {
  std::ofstream(dir.path() / "feed2.txt") << "not an indicator\nnor this\n";
  std::ofstream(dir.path() / "feed4.txt") << "10.0.0.1\n10.0.0.9\n";  // a good reload
  ASSERT_TRUE(intel.load(feeds, 5000));
  const auto status = intel.feeds();
  ASSERT_EQ(status.size(), 4u);
  EXPECT_NE(status[1].error.find("feed 'feed2'"), std::string::npos) << status[1].error;
  EXPECT_NE(status[1].error.find("line 1"), std::string::npos) << status[1].error;
  EXPECT_EQ(status[1].failed_at_ms, 5000);
  EXPECT_EQ(status[1].loaded_at_ms, 1000) << "the contents in use are from the first load";
  EXPECT_EQ(status[1].indicators, 2u);
  EXPECT_EQ(intel.confirming_feeds("ip", "10.0.0.2"), (std::vector<std::string>{"feed2", "feed3"}));
  EXPECT_EQ(intel.confirming_feeds("ip", "10.0.0.9"), (std::vector<std::string>{"feed4"}));
  EXPECT_TRUE(status[3].error.empty());

  ThreatIntel fresh;
  std::ofstream(dir.path() / "broken.json") << "{\n  \"type\": \"bundle\",\n  \"objects\": [\n";
  ASSERT_TRUE(fresh.load({feeds[0], {"stix", dir.path() / "broken.json", "stix", 1, ""}}, 10));
  EXPECT_NE(fresh.feeds()[1].error.find("not valid JSON at line"), std::string::npos)
      << fresh.feeds()[1].error;
  EXPECT_EQ(fresh.feeds()[1].loaded_at_ms, 0);
  EXPECT_EQ(fresh.confirming_feeds("ip", "10.0.0.1"), std::vector<std::string>{"feed1"});
}

TEST(ThreatIntelScale, AMillionIndicatorsLoadAndLookUp) {
  testing::TempDir dir;
  {
    std::ofstream out(dir.path() / "big.txt");
    for (int i = 0; i < 1'000'000; ++i)
      out << (10 + i / 65536 % 200) << "." << (i / 256 % 256) << "." << (i % 256) << ".7\n";
  }
  ThreatIntel intel;
  ASSERT_TRUE(intel.load({{"big", dir.path() / "big.txt", "list", 1, ""}}, 0));
  EXPECT_EQ(intel.feeds()[0].indicators, 1'000'000u);
  EXPECT_EQ(intel.confirming_feeds("ip", "24.66.64.7").size(), 1u);
  EXPECT_TRUE(intel.confirming_feeds("ip", "24.66.64.8").empty());
}

}  // namespace
}  // namespace riposte::controller
