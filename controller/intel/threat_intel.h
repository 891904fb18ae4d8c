#pragma once

// Threat-intelligence confirmations and the confidence they give. Feeds are loaded into one
// in-memory index (hash map of canonical values to a bitmask of feeds, plus CIDR ranges), built
// off to the side and swapped in whole, so lookups never wait for a reload and a reload that
// fails leaves the previous feeds in place.
//
// Confidence of an observable = weight of the feeds that list it / weight of all feeds. The alert
// takes its best observable. With the default thresholds and four equal feeds this is the common
// SOC rule: fewer than two confirmations discard, two go to an analyst, three or more respond.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/intel/feeds.h"
#include "controller/observables/observable.h"

namespace riposte::controller {

struct ConfidenceThresholds {
  double analyst = 0.5;   // at or above: an analyst looks
  double respond = 0.75;  // at or above: respond automatically
};

// "discard", "analyst" or "respond".
std::string_view confidence_decision(double score, const ConfidenceThresholds& thresholds);

struct FeedStatus {
  FeedConfig config;
  std::size_t indicators = 0;
  std::size_t networks = 0;
  std::size_t timed = 0;  // indicators that confirm only inside a validity window
  std::size_t skipped = 0;
  std::vector<std::string> skip_reasons;
  std::size_t expired = 0;  // see FeedContents: held out on the feed's own word
  std::size_t revoked = 0;
  std::size_t not_for_detection = 0;
  std::string detail;             // how it was read (csv: the column chosen and why)
  std::int64_t loaded_at_ms = 0;  // when the contents in use were read; 0: never
  // The last load failed (which file, which line, why): the contents in use are the previous
  // ones (or none, the first time).
  std::string error;
  std::int64_t failed_at_ms = 0;
};

class ThreatIntel {
 public:
  static constexpr std::size_t kMaxFeeds = 64;  // one bit each in the index

  // `clock` (Unix ms) decides, at each lookup, whether a timed indicator is inside its window.
  explicit ThreatIntel(std::function<std::int64_t()> clock = system_clock_ms);
  static std::int64_t system_clock_ms();

  // Loads every feed. A feed whose file cannot be read as its format says is reported in its
  // FeedStatus (error) and keeps its previous contents; the others load. Only configuration
  // errors fail the whole load (and leave the previous index in use): too many feeds, two with
  // one name, a weight not above 0, an unknown format, a file or directory that does not exist.
  Status load(const std::vector<FeedConfig>& feeds, std::int64_t now_ms);

  // Names of the feeds listing `value` (as `type`; guessed when empty).
  std::vector<std::string> confirming_feeds(std::string_view type, std::string_view value) const;

  // {"score", "decision", "feeds_configured", "confirmations": [{type, value, feeds, score}]}.
  nlohmann::json assess(const std::vector<Observable>& observables,
                        const ConfidenceThresholds& thresholds) const;

  // What `riposte intel lookup VALUE` prints: the value's type, feeds that list it, confidence.
  Result<nlohmann::json> lookup(std::string_view value,
                                const ConfidenceThresholds& thresholds) const;

  std::vector<FeedStatus> feeds() const;

 private:
  struct Index;
  std::shared_ptr<const Index> current() const;
  std::uint64_t mask_for(const Index& index, std::string_view type, std::string_view value,
                         std::int64_t now_ms) const;

  std::function<std::int64_t()> clock_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Index> index_;
};

}  // namespace riposte::controller
