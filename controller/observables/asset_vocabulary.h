#pragma once

// The values an asset's environment and criticality take: in the asset map (asset_map.h) and in
// autonomy ceilings that match on them (autonomy_policy.h). One list for both, so a ceiling can
// only name a value an asset can have: `environment: prod` would never match and production hosts
// would quietly fall back to the default ceiling.

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

namespace riposte::controller {

inline constexpr std::array<std::string_view, 3> kAssetEnvironments = {"production", "staging",
                                                                       "lab"};
inline constexpr std::array<std::string_view, 4> kAssetCriticalities = {"mission-critical", "high",
                                                                        "medium", "low"};

template <std::size_t N>
bool is_one_of(const std::array<std::string_view, N>& values, std::string_view value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// "production, staging, lab": for error messages.
template <std::size_t N>
std::string one_of_text(const std::array<std::string_view, N>& values) {
  std::string out;
  for (auto v : values) out += (out.empty() ? "" : ", ") + std::string(v);
  return out;
}

}  // namespace riposte::controller
