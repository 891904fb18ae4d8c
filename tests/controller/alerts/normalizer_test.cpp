#include "controller/alerts/normalizer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/utc_time.h"
#include "tests/build_paths.h"

namespace riposte::controller {
namespace {

using nlohmann::json;

json fixture(const std::string& name) {
  std::ifstream in(std::string(::riposte::testing::source_dir()) + "/tests/fixtures/alerts/" +
                   name);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

bool has(const AlertRecord& a, std::string_view type, std::string_view value) {
  for (const auto& o : a.observables)
    if (o.type == type && o.value == value) return true;
  return false;
}

bool has_type(const AlertRecord& a, std::string_view type) {
  for (const auto& o : a.observables)
    if (o.type == type) return true;
  return false;
}

constexpr std::int64_t kNow = 1'790'000'000'000;

TEST(AlertNormalizer, EcsAlertWithFlatAndNestedKeysResolvesBoth) {
  auto a = normalize_alert(fixture("ecs_malicious_ip.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "ecs");
  EXPECT_EQ(a->id, "5c1f7e0a8d0b4f2e9b8a1c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f");
  EXPECT_EQ(a->rule_name, "Connection to Known Malicious IP");  // flat dotted key
  EXPECT_EQ(a->rule_id, "b1f6c8a2-5d3e-4f7a-9c1b-2e3d4f5a6b7c");
  EXPECT_EQ(a->severity, "high");
  EXPECT_EQ(a->host_name, "web-01");  // nested object
  EXPECT_EQ(a->user_name, "www-data");
  EXPECT_EQ(format_utc_ms(a->timestamp_ms), "2026-11-20T09:13:58.000Z");  // the event's time
  EXPECT_TRUE(has(*a, "ip", "185.220.101.47"));
  EXPECT_TRUE(has(*a, "domain", "update-check.badcdn.example"));
  EXPECT_TRUE(has(*a, "process", "48213"));
  EXPECT_TRUE(has(*a, "file_path", "/usr/bin/curl"));
  // Upper-case hex is still a SHA-256; it is emitted lower-cased.
  EXPECT_TRUE(
      has(*a, "sha256", "b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2"));
  // "not-a-real-md5" is not emitted as an md5, and the note says why.
  EXPECT_FALSE(has_type(*a, "md5"));
  ASSERT_FALSE(a->notes.empty());
  EXPECT_NE(a->notes.front().find("process.hash.md5"), std::string::npos);
  EXPECT_EQ(a->host_ips, (std::vector<std::string>{"10.20.1.15", "fe80::a00:27ff:fe4e:66a1"}));
  EXPECT_EQ(json::parse(a->raw), fixture("ecs_malicious_ip.json"));
}

// A process start time is what proves a live pid is the alert's process: one that does not read
// as a date (overflowing numbers, epoch nanoseconds, year 1) is dropped with a note, never kept as
// some wrapped-around time. The entity id is kept beside it.
TEST(AlertNormalizer, AProcessStartThatIsNoDateIsDroppedNotWrapped) {
  for (const auto& start :
       {json(1e308), json(-1e308), json(1e19), json(9223372036854775807LL),
        json(18446744073709551615ULL), json(1796686113920000000LL), json(-5),
        json("0001-01-01T00:00:00Z"), json("18446744073709551615")}) {
    const json doc{{"@timestamp", "2026-12-01T00:00:00Z"},
                   {"kibana.alert.uuid", "a1"},
                   {"kibana.alert.rule.name", "r"},
                   {"host", {{"name", "web-01"}}},
                   {"process", {{"pid", 4242}, {"start", start}, {"entity_id", "e-1"}}}};
    auto a = normalize_alert(doc, std::nullopt, kNow);
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_TRUE(has(*a, "process", "4242")) << start.dump();
    for (const auto& o : a->observables) {
      if (o.type != "process") continue;
      EXPECT_EQ(o.start, "") << start.dump();
      EXPECT_EQ(o.entity_id, "e-1");
    }
    bool noted = false;
    for (const auto& n : a->notes) noted = noted || n.find("process.start") != std::string::npos;
    EXPECT_TRUE(noted) << start.dump();
  }
  const json good{{"@timestamp", "2026-12-01T00:00:00Z"},
                  {"kibana.alert.uuid", "a2"},
                  {"host", {{"name", "web-01"}}},
                  {"process", {{"pid", 4242}, {"start", 1796686113920LL}}}};
  auto a = normalize_alert(good, std::nullopt, kNow);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->observables.back().start, "2026-12-07T23:28:33.920Z");
}

TEST(AlertNormalizer, ElasticsearchHitIsUnwrappedAndItsIdUsed) {
  auto a = normalize_alert(fixture("ecs_search_hit.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "ecs");
  EXPECT_EQ(a->id, "e1b2c3d4f5a6");
  EXPECT_EQ(a->rule_name, "Malware Prevention Alert");
  EXPECT_EQ(a->severity, "critical");
  EXPECT_EQ(a->host_name, "FIN-LAPTOP-07");
  EXPECT_TRUE(has(*a, "file_path", "C:\\Users\\jdoe\\AppData\\Local\\Temp\\invoice.exe"));
  EXPECT_TRUE(has(*a, "url", "http://invoice-portal.example.net/download/invoice.exe"));
  EXPECT_TRUE(
      has(*a, "sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

TEST(AlertNormalizer, WazuhAlertMapsLevelsAndDataFields) {
  auto a = normalize_alert(fixture("wazuh_sshd.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "wazuh");
  EXPECT_EQ(a->id, "1732092312.4417823");
  EXPECT_EQ(a->rule_id, "5712");
  EXPECT_EQ(a->severity, "medium");  // level 10
  EXPECT_EQ(a->host_name, "db-02");
  EXPECT_EQ(a->user_name, "oracle");
  EXPECT_EQ(format_utc_ms(a->timestamp_ms), "2026-11-20T08:45:12.123Z");  // "+0000" offset
  EXPECT_TRUE(has(*a, "ip", "203.0.113.77"));
  EXPECT_TRUE(has(*a, "user", "oracle"));
  EXPECT_EQ(a->host_ips, std::vector<std::string>{"10.20.2.31"});
}

TEST(AlertNormalizer, WazuhActiveResponseMessageIsUnwrapped) {
  auto a = normalize_alert(fixture("wazuh_active_response.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "wazuh");
  EXPECT_EQ(a->id, "1732102200.99123");
  EXPECT_EQ(a->severity, "critical");  // level 15
  EXPECT_EQ(a->host_name, "app-03");
  EXPECT_TRUE(has(*a, "file_path", "/tmp/.x/kit.so"));
  EXPECT_TRUE(has(*a, "md5", "5d41402abc4b2a76b9719d911017c592"));
  EXPECT_TRUE(has(*a, "sha1", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"));
  EXPECT_FALSE(has_type(*a, "sha256"));  // "zz-not-hex"
}

TEST(AlertNormalizer, GenericShapeKeepsValidObservablesOnly) {
  auto a = normalize_alert(fixture("generic.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "generic");
  EXPECT_EQ(a->id, "gen-2026-0001");
  EXPECT_EQ(a->rule_name, "Periodic beaconing");
  EXPECT_EQ(a->severity, "medium");
  EXPECT_EQ(format_utc_ms(a->timestamp_ms), "2026-11-20T11:00:00.000Z");  // +01:00
  EXPECT_TRUE(has(*a, "domain", "c2.beacon-example.org"));
  EXPECT_TRUE(has(*a, "ip", "198.51.100.23"));
  EXPECT_TRUE(has(*a, "process", "4242"));
  EXPECT_TRUE(has(*a, "user", "mallory"));
  EXPECT_FALSE(has_type(*a, "sha1"));  // "0123"
}

TEST(AlertNormalizer, ForcedFormatOverridesDetection) {
  // Looks like ECS (@timestamp) but the caller says generic.
  json doc{
      {"@timestamp", "2026-11-20T00:00:00Z"}, {"title", "x"}, {"severity", 90}, {"host", "web-01"}};
  auto a = normalize_alert(doc, "generic", kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "generic");
  EXPECT_EQ(a->severity, "critical");
  EXPECT_FALSE(normalize_alert(doc, "splunk", kNow));
}

// A format forced on a document of another shape must not store an alert about nothing: every
// fixture forced to every other format either reads a host or an observable, or is refused
// naming what is missing and the format the document looks like.
TEST(AlertNormalizer, AForcedFormatThatReadsNothingIsRefusedSayingWhy) {
  auto wazuh_as_ecs = normalize_alert(fixture("wazuh_sshd.json"), "ecs", kNow);
  ASSERT_FALSE(wazuh_as_ecs) << "stored with rule id " << wazuh_as_ecs->rule_id << " only";
  EXPECT_NE(wazuh_as_ecs.error().message.find("names no host and no observable"), std::string::npos)
      << wazuh_as_ecs.error().message;
  EXPECT_NE(wazuh_as_ecs.error().message.find("it looks like wazuh"), std::string::npos)
      << wazuh_as_ecs.error().message;
  for (const char* name :
       {"ecs_malicious_ip.json", "ecs_search_hit.json", "elastic_endpoint_epoch_start.json",
        "ecs_indicator_match.json", "wazuh_sshd.json", "wazuh_active_response.json",
        "wazuh_indexer_hit.json", "wazuh_manager_remote_syslog.json",
        "wazuh_sysmon_linux_network.json", "generic.json"}) {
    const auto doc = fixture(name);
    const auto detected = detect_alert_format(doc);
    ASSERT_TRUE(detected) << name;
    for (const char* format : {"ecs", "wazuh", "generic"}) {
      auto a = normalize_alert(doc, format, kNow);
      if (*detected == format) {
        EXPECT_TRUE(a) << name << " as its own format " << format;
      } else if (a) {
        EXPECT_TRUE(!a->host_name.empty() || !a->host_ips.empty() || !a->observables.empty())
            << name << " forced to " << format << " read nothing and was kept";
      } else {
        EXPECT_NE(a.error().message.find(fmt::format("it looks like {}", *detected)),
                  std::string::npos)
            << name << " as " << format << ": " << a.error().message;
      }
    }
  }
}

// One odd field never loses the alert: the value is dropped with a note naming the field.
TEST(AlertNormalizer, AValueOfTheWrongTypeIsDroppedWithANoteNotTheAlert) {
  auto a = normalize_alert(json{{"@timestamp", "2026-11-20T00:00:00Z"},
                                {"kibana.alert.rule.name", "r"},
                                {"host", {{"name", 42}}}},
                           std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host_name, "");
  ASSERT_FALSE(a->notes.empty());
  EXPECT_NE(a->notes[0].find("'host.name' must be a string, got number 42; dropped"),
            std::string::npos)
      << a->notes[0];

  auto pid = normalize_alert(
      json::parse(R"({"kibana.alert.rule.name": "r", "process.pid": "abc"})"), std::nullopt, kNow);
  ASSERT_TRUE(pid) << pid.error().message;
  EXPECT_FALSE(has_type(*pid, "process"));
  EXPECT_NE(pid->notes[0].find("process.pid"), std::string::npos);

  auto time = normalize_alert(json{{"title", "t"}, {"timestamp", "yesterday"}}, std::nullopt, kNow);
  ASSERT_TRUE(time);
  EXPECT_EQ(time->timestamp_ms, kNow) << "the received time stands in";
  EXPECT_NE(time->notes[0].find("a date (ISO 8601 text or epoch milliseconds)"),
            std::string::npos);

  auto severity = normalize_alert(json{{"title", "t"}, {"severity", "urgent"}}, std::nullopt, kNow);
  ASSERT_TRUE(severity);
  EXPECT_EQ(severity->severity, "medium");
  EXPECT_NE(severity->notes[0].find("severity"), std::string::npos);

  // Nothing usable left once the odd values are dropped: refused, and the reason says what was.
  auto useless = normalize_alert(json{{"@timestamp", "2026-11-20T00:00:00Z"}, {"host", {{"name", 7}}}},
                                 std::nullopt, kNow);
  ASSERT_FALSE(useless);
  EXPECT_NE(useless.error().message.find("'host.name' must be a string"), std::string::npos)
      << useless.error().message;
}

// Elasticsearch `date` fields take ISO 8601 and epoch milliseconds (numbers or numeric strings).
TEST(AlertNormalizer, ElasticEndpointAlertWithEpochMillisecondDatesIsKept) {
  auto a = normalize_alert(fixture("elastic_endpoint_epoch_start.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->source, "ecs");
  EXPECT_EQ(a->severity, "high");
  EXPECT_EQ(a->host_name, "web-03");
  EXPECT_EQ(a->host_ips, (std::vector<std::string>{"10.20.1.33", "10.20.1.34"}));
  bool process = false;
  for (const auto& o : a->observables) {
    if (o.type == "process") {
      process = o.value == "48211" && o.start == "2023-11-14T22:13:20.000Z";
      EXPECT_TRUE(process) << o.value << " " << o.start;
    }
  }
  EXPECT_TRUE(process);
  EXPECT_TRUE(has(*a, "ip", "198.51.100.23")) << "IPv4-mapped destination is the IPv4 address";
  EXPECT_TRUE(has(*a, "sha256", "4f2b3c1d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809"));
  bool noted = false;
  for (const auto& n : a->notes) noted |= n.find("'related.ip'") != std::string::npos;
  EXPECT_TRUE(noted) << "the number in related.ip is dropped with a note";
  for (const char* ms : {"1700000000000", "2023-11-14T22:13:20Z", "2023-11-14T22:13:20.000+0000"}) {
    auto doc = json{{"kibana.alert.rule.name", "r"}, {"@timestamp", ms}};
    auto parsed = normalize_alert(doc, std::nullopt, kNow);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->timestamp_ms, 1'700'000'000'000) << ms;
  }
}

const Observable* process_of(const AlertRecord& a) {
  for (const auto& o : a.observables)
    if (o.type == "process") return &o;
  return nullptr;
}

// Sysmon for Linux through Wazuh: the community decoders write `data.eventdata.*` and
// `data.system.eventId`, with `DestinationIp` capitalised beside `sourceIp`. The alert is read
// as the Windows one is (`data.win.eventdata.*`): addresses, image, user and the process.
TEST(AlertNormalizer, SysmonForLinuxThroughWazuhReadsLikeWindowsSysmon) {
  auto linux_alert =
      normalize_alert(fixture("wazuh_sysmon_linux_network.json"), std::nullopt, kNow);
  ASSERT_TRUE(linux_alert) << linux_alert.error().message;
  auto windows_alert =
      normalize_alert(fixture("wazuh_sysmon_windows_network.json"), std::nullopt, kNow);
  ASSERT_TRUE(windows_alert) << windows_alert.error().message;
  for (const auto* a : {&*linux_alert, &*windows_alert}) {
    EXPECT_EQ(a->source, "wazuh");
    EXPECT_TRUE(has(*a, "ip", "203.0.113.50")) << a->host_name << ": the destination";
  }
  const auto& a = *linux_alert;
  EXPECT_EQ(a.host_name, "web-01");
  EXPECT_TRUE(has(a, "ip", "10.20.2.40"));
  EXPECT_TRUE(has(a, "file_path", "/usr/bin/curl"));
  EXPECT_TRUE(has(a, "user", "deploy"));
  EXPECT_EQ(a.user_name, "deploy");
  const auto* process = process_of(a);
  ASSERT_NE(process, nullptr);
  EXPECT_EQ(process->value, "24518");
  EXPECT_EQ(process->entity_id, "{6f0a2c1e-7a3e-6706-c5e1-5b3f00000000}");
  EXPECT_EQ(process->start, "") << "a network event's UtcTime is not the process's start";
  EXPECT_TRUE(has(*windows_alert, "user", "EXAMPLE\\deploy"));

  auto created = normalize_alert(fixture("wazuh_sysmon_linux_process.json"), std::nullopt, kNow);
  ASSERT_TRUE(created) << created.error().message;
  const auto* started = process_of(*created);
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->value, "24519");
  EXPECT_EQ(started->start, "2026-11-21T10:15:42.118Z") << "UtcTime without a zone is UTC";
  EXPECT_TRUE(
      has(*created, "sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
  EXPECT_TRUE(has(*created, "file_path", "/tmp/.x/dropper"));
}

// Decoders differ in key case (`destinationIp`, `DestinationIp`, `DESTINATIONIP`, `eventID`,
// `eventId`): every spelling is the same field.
TEST(AlertNormalizer, SysmonFieldNamesAreReadInAnyCase) {
  auto doc = fixture("wazuh_sysmon_linux_process.json");
  auto& data = doc["data"];
  data["system"] = json{{"EVENTID", "1"}};
  json eventdata;
  for (auto& [key, value] : data["eventdata"].items()) {
    std::string upper = key;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    eventdata[upper] = value;
  }
  eventdata["destinationip"] = "198.51.100.9";
  data["eventdata"] = eventdata;
  auto a = normalize_alert(doc, std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(has(*a, "ip", "198.51.100.9"));
  EXPECT_TRUE(has(*a, "file_path", "/tmp/.x/dropper"));
  const auto* started = process_of(*a);
  ASSERT_NE(started, nullptr);
  EXPECT_EQ(started->start, "2026-11-21T10:15:42.118Z");
  EXPECT_EQ(started->entity_id, "{6f0a2c1e-7a3e-6706-c5e1-5b3f00000001}");
}

// Wazuh alerts read back from the Wazuh indexer (or shipped by Filebeat) carry `@timestamp` and
// arrive as search hits: still Wazuh, with their host, rule, level and addresses.
TEST(AlertNormalizer, WazuhAlertFromTheIndexerIsReadAsWazuh) {
  const auto hit = fixture("wazuh_indexer_hit.json");
  EXPECT_EQ(detect_alert_format(hit).value(), "wazuh");
  for (auto format : {std::optional<std::string_view>{}, std::optional<std::string_view>{"wazuh"}}) {
    auto a = normalize_alert(hit, format, kNow);
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->source, "wazuh");
    EXPECT_EQ(a->source_id, "1732092312.4417901") << "the producer's own id";
    EXPECT_EQ(a->rule_id, "5712");
    EXPECT_EQ(a->severity, "medium");
    EXPECT_EQ(a->host_name, "app-07");
    EXPECT_EQ(a->host_ips, std::vector<std::string>{"10.20.3.17"});
    EXPECT_TRUE(has(*a, "ip", "198.51.100.23"));
    EXPECT_TRUE(has(*a, "user", "test"));
  }
}

// A Wazuh manager (agent 000) alert about a device that sent it syslog: the host is that device
// (its address from `location`, no name), never the manager.
TEST(AlertNormalizer, WazuhManagerAlertAboutAnotherDeviceNamesThatDevice) {
  auto a = normalize_alert(fixture("wazuh_manager_remote_syslog.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->host_name, "") << "not wazuh-manager";
  EXPECT_EQ(a->host_ips, std::vector<std::string>{"192.0.2.10"});
  auto v6 = fixture("wazuh_manager_remote_syslog.json");
  v6["location"] = "2001:db8::10";
  EXPECT_EQ(normalize_alert(v6, std::nullopt, kNow)->host_ips,
            std::vector<std::string>{"2001:db8::10"});
  // With the sender's name from the predecoder: that name, and not the manager's address.
  auto named = fixture("wazuh_manager_remote_syslog.json");
  named["predecoder"] = {{"hostname", "edge-fw-1"}};
  named["agent"]["ip"] = "10.0.0.2";
  auto n = normalize_alert(named, std::nullopt, kNow);
  EXPECT_EQ(n->host_name, "edge-fw-1");
  EXPECT_EQ(n->host_ips, std::vector<std::string>{"192.0.2.10"});
  // The manager's own log file: the manager is the host.
  auto local = fixture("wazuh_manager_remote_syslog.json");
  local["location"] = "/var/log/auth.log";
  EXPECT_EQ(normalize_alert(local, std::nullopt, kNow)->host_name, "wazuh-manager");
}

// Indicator-match alerts: each enrichment's indicator and matched value become observables.
TEST(AlertNormalizer, ThreatEnrichmentsContributeTheirIndicators) {
  auto a = normalize_alert(fixture("ecs_indicator_match.json"), std::nullopt, kNow);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(has(*a, "ip", "203.0.113.99"));
  EXPECT_TRUE(has(*a, "url", "http://c2.example.net/gate.php"));
  EXPECT_TRUE(has(*a, "domain", "c2.example.net"));
  int dropped = 0;
  for (const auto& n : a->notes) dropped += n.find("threat.enrichments[2]") != std::string::npos;
  EXPECT_EQ(dropped, 2) << "the numeric hash and the unusable atomic, each with a note";
}

TEST(AlertNormalizer, DocumentWithNothingUsableIsRefused) {
  auto a = normalize_alert(json{{"@timestamp", "2026-11-20T00:00:00Z"}, {"message", "hello"}},
                           std::nullopt, kNow);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("no usable fields"), std::string::npos);
  auto unknown = normalize_alert(json{{"foo", 1}}, std::nullopt, kNow);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("cannot tell the alert format"), std::string::npos);
  EXPECT_FALSE(normalize_alert(json::array(), std::nullopt, kNow));
}

TEST(AlertNormalizer, AlertWithoutIdGetsAStableIdFromItsContent) {
  json doc{{"title", "no id"}, {"host", "h1"}};
  auto first = normalize_alert(doc, std::nullopt, kNow);
  auto second = normalize_alert(doc, std::nullopt, kNow + 5000);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->id, second->id);
  EXPECT_EQ(first->id.size(), 32u);
  doc["title"] = "another";
  EXPECT_NE(normalize_alert(doc, std::nullopt, kNow)->id, first->id);
}

TEST(Observables, OnlyValuesOfTheirTypeAreCanonicalized) {
  EXPECT_EQ(canonical_observable("ip", " 10.0.0.1 "), "10.0.0.1");
  EXPECT_EQ(canonical_observable("ip", "2001:DB8:0:0::1"), "2001:db8::1");
  EXPECT_FALSE(canonical_observable("ip", "999.1.1.1"));
  EXPECT_FALSE(canonical_observable("ip", "10.0.0.1/24"));
  EXPECT_EQ(canonical_observable("domain", "Evil.Example.COM."), "evil.example.com");
  EXPECT_FALSE(canonical_observable("domain", "localhost"));
  EXPECT_FALSE(canonical_observable("domain", "1.2.3.4"));
  EXPECT_FALSE(canonical_observable("domain", "bad_domain..com"));
  EXPECT_TRUE(canonical_observable("url", "https://user@[2001:db8::1]:8443/x"));
  EXPECT_FALSE(canonical_observable("url", "javascript:alert(1)"));
  EXPECT_FALSE(canonical_observable("md5", "5d41402abc4b2a76b9719d911017c59"));    // 31
  EXPECT_FALSE(canonical_observable("md5", "5d41402abc4b2a76b9719d911017c59g"));   // not hex
  EXPECT_FALSE(canonical_observable("sha1", "5d41402abc4b2a76b9719d911017c592"));  // md5 length
  EXPECT_FALSE(canonical_observable("file_path", "relative/path"));
  EXPECT_FALSE(canonical_observable("process", "0"));
  EXPECT_FALSE(canonical_observable("process", "12a"));
}

TEST(Timestamps, Rfc3339VariantsParse) {
  EXPECT_EQ(parse_rfc3339_ms("1970-01-01T00:00:01Z"), 1000);
  EXPECT_EQ(parse_rfc3339_ms("1970-01-01T01:00:00.5+01:00"), 500);
  EXPECT_EQ(parse_rfc3339_ms("1970-01-01 00:00:00.123456-0000"), 123);
  EXPECT_FALSE(parse_rfc3339_ms("1970-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339_ms("Nov 20 08:45:12"));
  EXPECT_FALSE(parse_rfc3339_ms("1970-01-01T00:00:00Zjunk"));
}

}  // namespace
}  // namespace riposte::controller
