#include "agent/quarantine_keeper.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/secure_file.h"

namespace riposte::agent {

namespace {

using nlohmann::json;

json peer_json(const platform::AllowedPeer& p) {
  return {{"address", p.address}, {"port", p.port}, {"protocol", p.protocol}};
}

platform::AllowedPeer peer_from(const json& j) {
  return {j.at("address").get<std::string>(), j.at("port").get<std::uint16_t>(),
          j.at("protocol").get<std::string>()};
}

}  // namespace

QuarantineKeeper::QuarantineKeeper(platform::Firewall& firewall, std::filesystem::path state_file,
                                   const Clock& clock)
    : firewall_(firewall), state_file_(std::move(state_file)), clock_(clock) {}

Status QuarantineKeeper::quarantine(const platform::QuarantineSpec& spec,
                                    std::optional<std::int64_t> release_at_ms) {
  if (auto s = platform::validate(spec); !s) return s;
  json allow = json::array();
  for (const auto& p : spec.allow) allow.push_back(peer_json(p));
  const json state{{"controller", peer_json(spec.controller)},
                   {"allow", allow},
                   {"release_at_ms", release_at_ms ? json(*release_at_ms) : json(nullptr)}};
  if (auto s = write_file_atomic(state_file_, state.dump(2), 0600); !s) return s;
  return firewall_.quarantine(spec);
}

Status QuarantineKeeper::release() {
  std::error_code ec;
  std::filesystem::remove(state_file_, ec);
  if (ec) return Error{fmt::format("cannot remove {}: {}", state_file_.string(), ec.message())};
  return firewall_.release();
}

std::optional<QuarantineState> QuarantineKeeper::current() const {
  return read_quarantine_state(state_file_);
}

std::optional<QuarantineState> read_quarantine_state(const std::filesystem::path& state_file) {
  auto text = read_file(state_file);
  if (!text) return std::nullopt;
  try {
    const auto j = json::parse(*text);
    QuarantineState state;
    state.spec.controller = peer_from(j.at("controller"));
    for (const auto& p : j.at("allow")) state.spec.allow.push_back(peer_from(p));
    if (!j.at("release_at_ms").is_null())
      state.release_at_ms = j.at("release_at_ms").get<std::int64_t>();
    return state;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

Result<bool> QuarantineKeeper::restore() {
  if (std::filesystem::exists(state_file_) && !current()) {
    // Unreadable intent: keep the host isolated rather than guess; an operator can release.
    return Error{
        fmt::format("{} is unreadable; quarantine state left as it is", state_file_.string())};
  }
  auto state = current();
  if (!state) {
    if (auto s = firewall_.release(); !s) return s.error();
    return false;
  }
  auto released = release_if_due();
  if (!released) return released.error();
  if (*released) return false;
  if (auto s = firewall_.quarantine(state->spec); !s) return s.error();
  return true;
}

Result<bool> QuarantineKeeper::release_if_due() {
  auto state = current();
  if (!state || !state->release_at_ms || clock_.now_unix_ms() < *state->release_at_ms) return false;
  if (auto s = release(); !s) return s.error();
  return true;
}

}  // namespace riposte::agent
