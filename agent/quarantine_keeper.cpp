#include "agent/quarantine_keeper.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

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

Result<platform::EnforcedQuarantine> QuarantineKeeper::quarantine(
    const platform::QuarantineSpec& spec, std::optional<std::int64_t> release_at_ms,
    const std::string& action_id) {
  if (auto s = platform::validate(spec); !s) return s.error();
  json allow = json::array();
  for (const auto& p : spec.allow) allow.push_back(peer_json(p));
  const json state{{"controller", peer_json(spec.controller)},
                   {"allow", allow},
                   {"release_at_ms", release_at_ms ? json(*release_at_ms) : json(nullptr)},
                   {"action_id", action_id}};
  std::lock_guard lock(mutex_);
  const auto previous = read_file(state_file_);
  if (auto s = write_file_atomic(state_file_, state.dump(2), 0600); !s) return s.error();
  auto enforced = apply_locked(spec);
  if (!enforced) {
    // nftables refused the whole transaction, so the kernel still holds what it held: the intent
    // goes back to match it, or the watch would keep "restoring" a quarantine that never was.
    std::error_code ignored;
    if (previous) {
      (void)write_file_atomic(state_file_, *previous, 0600);
    } else {
      std::filesystem::remove(state_file_, ignored);
    }
    return enforced.error();
  }
  if (!enforced->complete()) {
    return Error{fmt::format("the kernel does not enforce the quarantine just applied (hooks: {})",
                             fmt::join(enforced->hooks, ", "))};
  }
  return enforced;
}

Result<platform::EnforcedQuarantine> QuarantineKeeper::apply_locked(
    const platform::QuarantineSpec& spec) {
  if (auto s = firewall_.quarantine(spec); !s) return s.error();
  auto enforced = firewall_.enforced();
  applied_listing_ = enforced ? enforced->listing : "";
  return enforced;
}

Status QuarantineKeeper::release() {
  std::lock_guard lock(mutex_);
  std::error_code ec;
  std::filesystem::remove(state_file_, ec);
  if (ec) return Error{fmt::format("cannot remove {}: {}", state_file_.string(), ec.message())};
  applied_listing_.clear();
  return firewall_.release();
}

std::optional<QuarantineTamper> QuarantineKeeper::enforce() {
  std::lock_guard lock(mutex_);
  const auto state = current();
  if (!state) return std::nullopt;
  auto enforced = firewall_.enforced();
  if (!enforced) {
    spdlog::warn("agent: cannot read the quarantine back from nftables: {}",
                 enforced.error().message);
    return std::nullopt;
  }
  QuarantineTamper tamper;
  if (!enforced->present) {
    tamper.what = "removed";
    tamper.detail =
        "the quarantine table inet riposte_quarantine was gone from the kernel (ruleset flushed "
        "or replaced, e.g. by `systemctl reload nftables`)";
  } else if (!applied_listing_.empty() && enforced->listing != applied_listing_) {
    tamper.what = "altered";
    tamper.detail = fmt::format(
        "the quarantine table's rules differ from what the agent applied (hooks with policy drop "
        "now: {})",
        enforced->hooks.empty() ? "none" : fmt::format("{}", fmt::join(enforced->hooks, ", ")));
  } else {
    return std::nullopt;
  }
  tamper.action_id = state->action_id;
  tamper.at_ms = clock_.now_unix_ms();
  if (auto reapplied = apply_locked(state->spec); !reapplied) tamper.reapplied = reapplied.error();
  return tamper;
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
    state.action_id = j.value("action_id", "");
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
  std::lock_guard lock(mutex_);
  if (auto applied = apply_locked(state->spec); !applied) return applied.error();
  return true;
}

QuarantineWatch::QuarantineWatch(QuarantineKeeper& keeper, std::chrono::milliseconds interval,
                                 std::function<void(const QuarantineTamper&)> on_tamper)
    : thread_(interval, [&keeper, on_tamper = std::move(on_tamper)] {
        if (auto tamper = keeper.enforce()) on_tamper(*tamper);
      }) {}

Result<bool> QuarantineKeeper::release_if_due() {
  auto state = current();
  if (!state || !state->release_at_ms || clock_.now_unix_ms() < *state->release_at_ms) return false;
  if (auto s = release(); !s) return s.error();
  return true;
}

}  // namespace riposte::agent
