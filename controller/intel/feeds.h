#pragma once

// Reading threat-intelligence feeds from disk (no network): CSV (e.g. abuse.ch Feodo Tracker),
// plain indicator lists, MISP feed directories and STIX 2.1 bundles. A feed either loads whole or
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
};

Result<FeedContents> load_feed(const FeedConfig& feed);

// Splits one CSV record (RFC 4180 quoting: "a,b" and "" for a quote). Hand-written: Debian has no
// C++ CSV library in our dependency set, and feeds only need field splitting.
std::vector<std::string> split_csv_line(std::string_view line);

}  // namespace riposte::controller
