#pragma once

// Reading threat-intelligence feeds from disk (no network): CSV (abuse.ch Feodo Tracker and
// ThreatFox exports: `ip:port` values, a quoted header in a comment line, `", "` separators; the
// column by its header name when it has a known one), plain indicator lists, MISP feed
// directories and STIX 2.1 bundles (as MISP and OpenCTI export them). A feed either loads whole or
// fails with a message naming the file and the problem; an indicator the feed holds in a form we
// cannot use (a STIX pattern with AND, a malformed value) is skipped and counted, never guessed at.

#include <cstddef>
#include <filesystem>
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

struct FeedContents {
  std::vector<Observable> indicators;     // canonical values
  std::vector<IpNetwork> networks;        // CIDR indicators
  std::size_t skipped = 0;                // entries that were not usable indicators
  std::vector<std::string> skip_reasons;  // the first few, for the operator
  std::string detail;  // how it was read, for the operator (csv: which column, and why)
};

Result<FeedContents> load_feed(const FeedConfig& feed);

// Splits one CSV record (RFC 4180 quoting: "a,b" and "" for a quote). Hand-written: Debian has no
// C++ CSV library in our dependency set, and feeds only need field splitting.
std::vector<std::string> split_csv_line(std::string_view line);

}  // namespace riposte::controller
