#include "controller/gateway/connection_limiter.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace riposte::controller {

std::string limit_key(const boost::asio::ip::address& address) {
  if (address.is_v6()) {
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped())
      return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
    auto bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return boost::asio::ip::address_v6(bytes).to_string() + "/64";
  }
  return address.to_string();
}

ConnectionLimiter::Ticket& ConnectionLimiter::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
    key_ = std::move(other.key_);
  }
  return *this;
}

void ConnectionLimiter::Ticket::release() {
  if (owner_) owner_->done(key_);
  owner_.reset();
}

ConnectionLimiter::ConnectionLimiter(std::string what, ConnectionLimits limits)
    : what_(std::move(what)), limits_(limits) {
  if (limits_.burst < 1) limits_.burst = 1;
}

std::optional<ConnectionLimiter::Ticket> ConnectionLimiter::admit(
    const boost::asio::ip::address& address, std::chrono::steady_clock::time_point now) {
  auto key = limit_key(address);
  std::lock_guard lock(mutex_);
  if (entries_.size() >= kMaxAddresses && !entries_.contains(key)) forget_idle(now);
  auto [it, fresh] = entries_.try_emplace(key);
  auto& e = it->second;
  if (fresh) {
    e.tokens = limits_.burst;
    e.refilled = now;
  } else if (limits_.per_second > 0) {
    const std::chrono::duration<double> elapsed = now - e.refilled;
    e.tokens = std::min<double>(limits_.burst, e.tokens + elapsed.count() * limits_.per_second);
    e.refilled = now;
  }
  const bool over_concurrent = limits_.concurrent > 0 && e.active >= limits_.concurrent;
  const bool over_rate = limits_.per_second > 0 && e.tokens < 1;
  if (over_concurrent || over_rate) {
    ++refused_;
    ++refused_unlogged_;
    if (now - last_logged_ >= std::chrono::seconds(1)) {
      spdlog::warn(
          "{}: refusing connections from {}: over its {} ({} refused since the last "
          "report)",
          what_, key,
          over_concurrent ? fmt::format("{} open at once", limits_.concurrent)
                          : fmt::format("{} new a second", limits_.per_second),
          refused_unlogged_);
      last_logged_ = now;
      refused_unlogged_ = 0;
    }
    return std::nullopt;
  }
  if (limits_.per_second > 0) e.tokens -= 1;
  ++e.active;
  return Ticket(shared_from_this(), std::move(key));
}

void ConnectionLimiter::done(const std::string& key) {
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end() && it->second.active > 0)
    --it->second.active;
}

void ConnectionLimiter::forget_idle(std::chrono::steady_clock::time_point now) {
  // Caller holds mutex_. An address with nothing open whose bucket has refilled is the same as
  // one never seen; forget those first, then (a spray of busy addresses) the idle rest.
  const std::chrono::duration<double> full(
      limits_.per_second > 0 ? limits_.burst / limits_.per_second : 0);
  std::erase_if(entries_, [&](const auto& kv) {
    return kv.second.active == 0 && now - kv.second.refilled >= full;
  });
  if (entries_.size() >= kMaxAddresses)
    std::erase_if(entries_, [](const auto& kv) { return kv.second.active == 0; });
}

std::size_t ConnectionLimiter::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::uint64_t ConnectionLimiter::refused() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

std::uint32_t ConnectionLimiter::active(const boost::asio::ip::address& address) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(limit_key(address));
  return it == entries_.end() ? 0 : it->second.active;
}

}  // namespace riposte::controller
