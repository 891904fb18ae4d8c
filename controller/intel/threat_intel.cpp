#include "controller/intel/threat_intel.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <bit>
#include <chrono>
#include <filesystem>
#include <unordered_map>

namespace riposte::controller {

using nlohmann::json;
namespace t = observable_type;

struct ThreatIntel::Index {
  std::vector<FeedStatus> feeds;
  double total_weight = 0;
  std::unordered_map<std::string, std::uint64_t> exact;  // canonical value -> feeds bitmask
  std::vector<std::pair<IpNetwork, std::uint64_t>> networks;
  // Indicators valid in a window only: each value or range with its feed's bit and window.
  struct Window {
    std::uint64_t bit = 0;
    std::int64_t from_ms = 0, until_ms = 0;  // 0: unbounded
    bool holds(std::int64_t now_ms) const {
      return now_ms >= from_ms && (until_ms == 0 || now_ms < until_ms);
    }
  };
  std::unordered_map<std::string, std::vector<Window>> timed_exact;
  std::vector<std::pair<IpNetwork, Window>> timed_networks;
};

ThreatIntel::ThreatIntel(std::function<std::int64_t()> clock) : clock_(std::move(clock)) {}

std::int64_t ThreatIntel::system_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view confidence_decision(double score, const ConfidenceThresholds& thresholds) {
  // A hair of tolerance so that 2 of 4 feeds (0.5) meets a 0.5 threshold despite rounding.
  constexpr double kEpsilon = 1e-9;
  if (score + kEpsilon >= thresholds.respond) return "respond";
  if (score + kEpsilon >= thresholds.analyst) return "analyst";
  return "discard";
}

Status ThreatIntel::load(const std::vector<FeedConfig>& feeds, std::int64_t now_ms) {
  if (feeds.size() > kMaxFeeds)
    return Error{fmt::format("at most {} intel feeds are supported", kMaxFeeds)};
  for (std::size_t i = 0; i < feeds.size(); ++i) {
    const auto& feed = feeds[i];
    for (std::size_t j = 0; j < i; ++j) {
      if (feeds[j].name == feed.name)
        return Error{fmt::format("two intel feeds are named '{}'", feed.name)};
    }
    if (!(feed.weight > 0))
      return Error{fmt::format("feed '{}': weight must be above 0", feed.name)};
    if (feed.format != "csv" && feed.format != "list" && feed.format != "misp" &&
        feed.format != "stix")
      return Error{fmt::format("feed '{}': unknown format '{}' (csv, list, misp or stix)",
                               feed.name, feed.format)};
    std::error_code ec;
    if (!std::filesystem::exists(feed.path, ec))
      return Error{fmt::format("feed '{}': {} does not exist", feed.name, feed.path.string())};
  }
  const auto previous = current();
  auto index = std::make_shared<Index>();
  for (std::size_t i = 0; i < feeds.size(); ++i) {
    const auto& feed = feeds[i];
    const std::uint64_t bit = 1ULL << i;
    index->total_weight += feed.weight;
    auto contents = load_feed(feed, now_ms);
    if (!contents) {
      // One bad file is not a dead controller, nor an empty feed: what it held before stays.
      FeedStatus status{feed};
      status.error = contents.error().message;
      status.failed_at_ms = now_ms;
      spdlog::error("intel: {}; {}", status.error,
                    previous ? "its previous contents stay in use" : "it has no contents yet");
      if (previous) {
        for (std::size_t old = 0; old < previous->feeds.size(); ++old) {
          const auto& was = previous->feeds[old];
          if (was.config.name != feed.name) continue;
          const std::uint64_t old_bit = 1ULL << old;
          for (const auto& [value, mask] : previous->exact)
            if (mask & old_bit) index->exact[value] |= bit;
          for (const auto& [network, mask] : previous->networks)
            if (mask & old_bit) index->networks.emplace_back(network, bit);
          for (const auto& [value, windows] : previous->timed_exact)
            for (auto window : windows)
              if (window.bit == old_bit) {
                window.bit = bit;
                index->timed_exact[value].push_back(window);
              }
          for (auto [network, window] : previous->timed_networks)
            if (window.bit == old_bit) {
              window.bit = bit;
              index->timed_networks.emplace_back(network, window);
            }
          status = was;
          status.config = feed;
          status.error = contents.error().message;
          status.failed_at_ms = now_ms;
        }
      }
      index->feeds.push_back(std::move(status));
      continue;
    }
    index->exact.reserve(index->exact.size() + contents->indicators.size());
    for (auto& indicator : contents->indicators) index->exact[std::move(indicator.value)] |= bit;
    for (const auto& network : contents->networks) index->networks.emplace_back(network, bit);
    for (auto& timed : contents->timed) {
      const Index::Window window{bit, timed.valid_from_ms, timed.valid_until_ms};
      if (timed.indicator) index->timed_exact[std::move(timed.indicator->value)].push_back(window);
      if (timed.network) index->timed_networks.emplace_back(*timed.network, window);
    }
    FeedStatus status{feed};
    status.indicators = contents->indicators.size();
    status.networks = contents->networks.size();
    status.timed = contents->timed.size();
    status.skipped = contents->skipped;
    status.skip_reasons = std::move(contents->skip_reasons);
    status.expired = contents->expired;
    status.revoked = contents->revoked;
    status.not_for_detection = contents->not_for_detection;
    status.detail = std::move(contents->detail);
    status.loaded_at_ms = now_ms;
    index->feeds.push_back(std::move(status));
  }
  std::lock_guard lock(mutex_);
  index_ = std::move(index);
  return ok_status();
}

std::shared_ptr<const ThreatIntel::Index> ThreatIntel::current() const {
  std::lock_guard lock(mutex_);
  return index_;
}

std::uint64_t ThreatIntel::mask_for(const Index& index, std::string_view type,
                                    std::string_view value, std::int64_t now_ms) const {
  std::uint64_t mask = 0;
  const std::string key(value);
  if (const auto it = index.exact.find(key); it != index.exact.end()) mask = it->second;
  if (const auto it = index.timed_exact.find(key); it != index.timed_exact.end())
    for (const auto& window : it->second)
      if (window.holds(now_ms)) mask |= window.bit;
  if (type == t::kIp) {
    for (const auto& [network, bit] : index.networks)
      if ((mask & bit) == 0 && network.contains(value)) mask |= bit;
    for (const auto& [network, window] : index.timed_networks)
      if ((mask & window.bit) == 0 && window.holds(now_ms) && network.contains(value))
        mask |= window.bit;
  }
  if (type == t::kUrl) {
    // A feed listing the URL's host (domain or IP) confirms the URL as well.
    auto rest = value.substr(value.find("://") + 3);
    auto host = std::string(rest.substr(0, rest.find_first_of("/?#:")));
    const auto host_type = guess_observable_type(host);
    if (host_type && (*host_type == t::kDomain || *host_type == t::kIp)) {
      if (auto canonical = canonical_observable(*host_type, host))
        mask |= mask_for(index, *host_type, *canonical, now_ms);
    }
  }
  return mask;
}

namespace {

// The feeds whose bits are set in `mask`, in configuration order.
template <typename Fn>
void for_each_feed(const std::vector<FeedStatus>& feeds, std::uint64_t mask, Fn fn) {
  for (; mask != 0; mask &= mask - 1) fn(feeds[static_cast<std::size_t>(std::countr_zero(mask))]);
}

}  // namespace

std::vector<std::string> ThreatIntel::confirming_feeds(std::string_view type,
                                                       std::string_view value) const {
  auto index = current();
  std::vector<std::string> names;
  if (!index) return names;
  for_each_feed(index->feeds, mask_for(*index, type, value, clock_()),
                [&](const FeedStatus& feed) { names.push_back(feed.config.name); });
  return names;
}

json ThreatIntel::assess(const std::vector<Observable>& observables,
                         const ConfidenceThresholds& thresholds) const {
  auto index = current();
  json result{{"score", 0.0},
              {"feeds_configured", index ? index->feeds.size() : 0},
              {"confirmations", json::array()},
              {"thresholds", {{"analyst", thresholds.analyst}, {"respond", thresholds.respond}}}};
  if (!index || index->feeds.empty()) {
    // Without intel there is nothing to discard on: a person decides.
    result["decision"] = "analyst";
    result["reason"] = "no threat-intel feeds are configured";
    return result;
  }
  double best = 0;
  std::string best_what;
  const auto now_ms = clock_();
  for (const auto& o : observables) {
    const auto mask = mask_for(*index, o.type, o.value, now_ms);
    if (mask == 0) continue;
    double weight = 0;
    json names = json::array();
    for_each_feed(index->feeds, mask, [&](const FeedStatus& feed) {
      weight += feed.config.weight;
      names.push_back(feed.config.name);
    });
    const double score = weight / index->total_weight;
    result["confirmations"].push_back(
        {{"type", o.type}, {"value", o.value}, {"feeds", names}, {"score", score}});
    if (score > best) {
      best = score;
      best_what = fmt::format("{} {} confirmed by {} of {} feeds (weighted {:.2f})", o.type,
                              o.value, names.size(), index->feeds.size(), score);
    }
  }
  result["score"] = best;
  const auto decision = confidence_decision(best, thresholds);
  result["decision"] = decision;
  result["reason"] =
      best_what.empty()
          ? fmt::format("no observable is listed by any of {} feeds", index->feeds.size())
          : fmt::format("{}: {} (analyst at {}, respond at {})", best_what, decision,
                        thresholds.analyst, thresholds.respond);
  return result;
}

Result<json> ThreatIntel::lookup(std::string_view raw,
                                 const ConfidenceThresholds& thresholds) const {
  auto type = guess_observable_type(raw);
  if (!type) {
    return Error{fmt::format("'{}' is not an IP address, domain, URL or MD5/SHA-1/SHA-256 hash",
                             raw.substr(0, 120))};
  }
  auto value = canonical_observable(*type, raw);
  if (!value) return Error{"not a valid indicator"};
  auto assessed = assess({{std::string(*type), *value, ""}}, thresholds);
  const auto& confirmations = assessed["confirmations"];
  return json{{"type", *type},
              {"value", *value},
              {"feeds", confirmations.empty() ? json::array() : confirmations[0]["feeds"]},
              {"confidence", assessed["score"]},
              {"decision", assessed["decision"]},
              {"reason", assessed["reason"]},
              {"feeds_configured", assessed["feeds_configured"]}};
}

std::vector<FeedStatus> ThreatIntel::feeds() const {
  auto index = current();
  return index ? index->feeds : std::vector<FeedStatus>{};
}

}  // namespace riposte::controller
