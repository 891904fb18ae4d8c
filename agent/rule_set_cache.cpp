#include "agent/rule_set_cache.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "common/secure_file.h"
#include "protocol/crypto.h"

namespace riposte::agent {

namespace fs = std::filesystem;

namespace {

// The name becomes a file name: only a real SHA-256 may.
bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

RuleSetCache::RuleSetCache(fs::path dir, Fetch fetch, RuleSetCacheOptions options)
    : dir_(std::move(dir)), fetch_(std::move(fetch)), options_(options) {}

Result<std::shared_ptr<platform::YaraRules>> RuleSetCache::get(const std::string& sha256,
                                                               std::uint64_t size) {
  if (!is_sha256_hex(sha256))
    return Error{fmt::format("rules_sha256 '{}' is not a SHA-256 in lowercase hex",
                             sha256.substr(0, 80))};
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(compiled_.begin(), compiled_.end(),
                           [&](const auto& entry) { return entry.first == sha256; });
    if (it != compiled_.end()) {
      compiled_.splice(compiled_.begin(), compiled_, it);
      return it->second;
    }
  }
  // Two scans asking for the same new set at once may both compile it; the result is the same
  // and the cache keeps one.
  auto source = source_of(sha256, size);
  if (!source) return source.error();
  auto rules = platform::YaraRules::compile(*source);
  if (!rules) return rules.error();
  ++compilations_;
  std::lock_guard lock(mutex_);
  compiled_.emplace_front(sha256, *rules);
  while (compiled_.size() > options_.compiled_sets) compiled_.pop_back();
  return *rules;
}

Result<std::string> RuleSetCache::source_of(const std::string& sha256, std::uint64_t size) {
  const auto path = dir_ / (sha256 + ".yar");
  if (auto kept = dir_.empty() ? Result<std::string>(Error{"not kept"}) : read_file(path); kept) {
    if (kept->size() == size && crypto::sha256_hex(*kept) == sha256) {
      std::error_code ignored;
      fs::last_write_time(path, fs::file_time_type::clock::now(), ignored);  // recently used
      return kept;
    }
    spdlog::warn("agent: cached rule set {} does not match its hash; fetching it again", sha256);
  }
  if (!fetch_) return Error{"this agent cannot fetch rule sets from the controller"};
  auto fetched = fetch_(sha256, size);
  if (!fetched) return fetched.error();
  ++fetches_;
  if (dir_.empty()) {
    // Not kept on disk: compiled and cached in memory only.
  } else if (auto s = ensure_private_directory(dir_); !s) {
    spdlog::warn("agent: cannot keep rule sets in {}: {}", dir_.string(), s.error().message);
  } else if (auto w = write_file_atomic(path, *fetched); !w) {
    spdlog::warn("agent: cannot keep rule set {}: {}", sha256, w.error().message);
  } else {
    prune_files();
  }
  return fetched;
}

void RuleSetCache::prune_files() {
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.path().extension() == ".yar")
      files.emplace_back(entry.last_write_time(ec), entry.path());
  }
  if (files.size() <= options_.files) return;
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = options_.files; i < files.size(); ++i) fs::remove(files[i].second, ec);
}

}  // namespace riposte::agent
