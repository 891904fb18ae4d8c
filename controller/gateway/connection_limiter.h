#pragma once

// Per-source-address limits on a listener, applied right after accept and before any TLS work:
// an address may hold at most `concurrent` connections in the limited phase at once, and open at
// most `per_second` new ones on average (bursts up to `burst`). A connection over a limit is
// closed at once, before its ClientHello is read, so neither idle sockets nor handshakes from one
// address can take the descriptors or the CPU the rest of the fleet needs.
//
// What "the limited phase" is belongs to the listener: the agent gateway limits connections
// still in their TLS handshake (an enrolled agent's session, once authenticated, is not counted:
// thousands of agents may sit behind one NAT address); the API limits open connections.
//
// An IPv6 address is counted by its /64, the smallest block one host is usually given. Thread-safe;
// made with std::make_shared (tickets keep it alive: a connection may outlive its listener).
// At most kMaxAddresses are tracked; idle ones are forgotten first, so a spray of addresses cannot
// grow memory.

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace riposte::controller {

struct ConnectionLimits {
  std::uint32_t concurrent = 0;  // per address in the limited phase; 0 = no limit
  double per_second = 0;         // new connections per address, refill rate; 0 = no limit
  std::uint32_t burst = 0;       // bucket size for per_second
};

// Defaults. The agent gateway: 256 handshakes in progress and 200 new connections a second per
// address (bursts of 1,000: a site behind one NAT address reconnecting after a controller
// restart). The API: 64 open connections and 50 new ones a second per address (bursts of 200).
inline constexpr ConnectionLimits kAgentListenerLimits{
    .concurrent = 256, .per_second = 200, .burst = 1000};
inline constexpr ConnectionLimits kApiListenerLimits{
    .concurrent = 64, .per_second = 50, .burst = 200};

class ConnectionLimiter : public std::enable_shared_from_this<ConnectionLimiter> {
 public:
  static constexpr std::size_t kMaxAddresses = 65'536;

  // Held by an admitted connection; returning it (release() or destruction) ends its limited
  // phase.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept = default;
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { release(); }
    void release();

   private:
    friend class ConnectionLimiter;
    Ticket(std::shared_ptr<ConnectionLimiter> owner, std::string key)
        : owner_(std::move(owner)), key_(std::move(key)) {}
    std::shared_ptr<ConnectionLimiter> owner_;
    std::string key_;
  };

  // `what` names the listener in log lines ("gateway", "api").
  ConnectionLimiter(std::string what, ConnectionLimits limits);

  // A ticket when `address` is within its limits; nothing (and the refusal counted, and logged
  // at most once a second per listener) when it is over one.
  std::optional<Ticket> admit(
      const boost::asio::ip::address& address,
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

  std::uint64_t refused() const;
  // Connections in the limited phase from `address` now (tests).
  std::uint32_t active(const boost::asio::ip::address& address) const;
  // Addresses tracked now (at most kMaxAddresses plus those with connections open).
  std::size_t tracked() const;

 private:
  struct Entry {
    std::uint32_t active = 0;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
  };
  void done(const std::string& key);
  void forget_idle(std::chrono::steady_clock::time_point now);

  std::string what_;
  ConnectionLimits limits_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::uint64_t refused_ = 0;
  std::uint64_t refused_unlogged_ = 0;
  std::chrono::steady_clock::time_point last_logged_{};
};

// The key an address is counted under: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by its /64.
std::string limit_key(const boost::asio::ip::address& address);

}  // namespace riposte::controller
