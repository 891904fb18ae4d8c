#pragma once

// Reading threat-intelligence feeds from disk (no network): CSV (abuse.ch Feodo Tracker and
// ThreatFox exports: `ip:port` values, a quoted header in a comment line, `", "` separators; the
// column by its header name when it has a known one), plain indicator lists, MISP feed
// directories and STIX 2.1 bundles (as MISP and OpenCTI export them). A feed either loads whole or
// fails with a message naming the file and the problem; an indicator the feed holds in a form we
// cannot use (a STIX pattern with AND, a malformed value) is skipped and counted, never guessed at.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/observables/ip_network.h"
#include "controller/observables/observable.h"

namespace riposte::controller {

struct FeedConfig {
  std::string name;
  std::filesystem::path path;  // file, or directory for misp (and stix: every *.json in it)
  std::string format;          // csv, list, misp, stix
  double weight = 1.0;
  std::string column;  // csv only: the indicator column's header name; detected when empty
};

// An indicator the feed says is good for a time only (STIX `valid_from`/`valid_until`, a MISP
// expiration sighting) and whose window has not ended at load: it confirms only inside
// [valid_from_ms, valid_until_ms), judged at each lookup, so one that expires between two reloads
// stops confirming when it expires. 0 means no bound on that side.
struct TimedIndicator {
  std::optional<Observable> indicator;  // a value, or
  std::optional<IpNetwork> network;     // a range
  std::int64_t valid_from_ms = 0;
  std::int64_t valid_until_ms = 0;
};

struct FeedContents {
  std::vector<Observable> indicators;     // canonical values, valid whenever looked up
  std::vector<IpNetwork> networks;        // CIDR indicators, valid whenever looked up
  std::vector<TimedIndicator> timed;      // valid in a window only
  std::size_t skipped = 0;                // entries that were not usable indicators
  std::vector<std::string> skip_reasons;  // the first few, for the operator
  // Entries read but held out of matching on the feed's own word (counted, not "skipped"):
  std::size_t expired = 0;            // STIX valid_until, MISP expiration sighting: passed
  std::size_t revoked = 0;            // STIX revoked: true, MISP deleted: true
  std::size_t not_for_detection = 0;  // OpenCTI x_opencti_detection: false, MISP to_ids: false
  std::string detail;  // how it was read, for the operator (csv: which column, and why)
};

// `now_ms` (Unix ms) decides which indicators have already expired when the feed is read.
Result<FeedContents> load_feed(const FeedConfig& feed, std::int64_t now_ms);

// Splits one CSV record (RFC 4180 quoting: "a,b" and "" for a quote). Hand-written: Debian has no
// C++ CSV library in our dependency set, and feeds only need field splitting.
std::vector<std::string> split_csv_line(std::string_view line);

}  // namespace riposte::controller
