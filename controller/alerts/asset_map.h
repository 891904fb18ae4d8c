#pragma once

// Application dependency mapping: which business application, environment, criticality, owner
// and stakeholders a host belongs to. Loaded from an assets YAML file (README "Asset map"), matched
// by hostname, agent id, IP address or CIDR, and merged with the live agent inventory.

#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/observables/ip_network.h"
#include "controller/store/store.h"

namespace riposte::controller {

struct AssetEntry {
  std::string name;
  std::vector<std::string> hostnames;  // compared case-insensitively
  std::vector<std::string> agent_ids;
  std::vector<std::string> ips;
  std::vector<IpNetwork> cidrs;
  std::string application;
  std::string environment;  // production, staging, lab
  std::string criticality;  // mission-critical, high, medium, low
  std::string owner;
  std::vector<std::string> stakeholders;
  int line = 0;  // where it is in the file, for messages
};

class AssetMap {
 public:
  // Errors give the file, line and what is wrong (unknown key, bad environment, bad CIDR, ...).
  static Result<AssetMap> load(const std::filesystem::path& path);

  // The entries covering a host known by any of these (empty strings are ignored).
  std::vector<const AssetEntry*> match(std::string_view hostname, std::string_view agent_id,
                                       const std::vector<std::string>& ips) const;
  const std::vector<AssetEntry>& entries() const { return entries_; }

 private:
  std::vector<AssetEntry> entries_;
};

// The asset map in use, swapped whole on reload so readers never see half a file.
class AssetCatalog {
 public:
  // Loads `path` (empty: no asset map). On error the previous map stays in use.
  Status load(const std::filesystem::path& path);
  std::shared_ptr<const AssetMap> current() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const AssetMap> map_ = std::make_shared<AssetMap>();
  std::filesystem::path path_;
};

nlohmann::json asset_json(const AssetEntry& entry);

// The merged view for `riposte assets list`: each agent with the entries covering it, agents no
// entry covers, and entries with no agent.
nlohmann::json merged_asset_view(const AssetMap& assets, const std::vector<AgentRecord>& agents);

}  // namespace riposte::controller
