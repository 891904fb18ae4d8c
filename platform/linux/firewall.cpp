#include "platform/firewall.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <nftables/libnftables.h>

#include <charconv>

namespace riposte::platform {

namespace {

constexpr const char* kTable = "riposte_quarantine";

struct CtxDeleter {
  void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};
using NftCtx = std::unique_ptr<nft_ctx, CtxDeleter>;

// "10.0.0.0/8" -> family 4 or 6, or 0 if not an address/prefix.
int address_family(const std::string& text) {
  const auto slash = text.find('/');
  const std::string address = text.substr(0, slash);
  unsigned char buffer[16];
  int family = 0;
  unsigned max_prefix = 0;
  if (inet_pton(AF_INET, address.c_str(), buffer) == 1) {
    family = 4;
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
    family = 6;
    max_prefix = 128;
  } else {
    return 0;
  }
  if (slash != std::string::npos) {
    const auto prefix = text.substr(slash + 1);
    unsigned length = 0;
    const auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), length);
    if (ec != std::errc() || end != prefix.data() + prefix.size() || prefix.empty() ||
        length > max_prefix)
      return 0;
  }
  return family;
}

Status validate_peer(const AllowedPeer& peer, std::string_view what) {
  if (address_family(peer.address) == 0) {
    return Error{fmt::format("{}: '{}' is not an IP address or prefix", what, peer.address)};
  }
  if (peer.protocol != "tcp" && peer.protocol != "udp" && peer.protocol != "any") {
    return Error{fmt::format("{}: protocol '{}' is not tcp, udp or any", what, peer.protocol)};
  }
  if (peer.protocol == "any" && peer.port != 0)
    return Error{fmt::format("{}: a port needs tcp or udp", what)};
  return ok_status();
}

// Accept rules for a peer: each way on input/output for the host itself and, when `forward`,
// each way on forward for what the host routes. The address is validated, so nothing
// user-supplied reaches the nft script unchecked.
std::string rules_for(const AllowedPeer& peer, bool forward) {
  const char* ip = address_family(peer.address) == 4 ? "ip" : "ip6";
  std::string from = fmt::format("{} saddr {}", ip, peer.address);
  std::string to = fmt::format("{} daddr {}", ip, peer.address);
  if (peer.protocol != "any") {
    if (peer.port != 0) {
      from += fmt::format(" {} sport {}", peer.protocol, peer.port);
      to += fmt::format(" {} dport {}", peer.protocol, peer.port);
    } else {
      from += fmt::format(" meta l4proto {}", peer.protocol);
      to += fmt::format(" meta l4proto {}", peer.protocol);
    }
  }
  std::string rules =
      fmt::format("add rule inet {0} input {1} accept\nadd rule inet {0} output {2} accept\n",
                  kTable, from, to);
  if (forward) {
    rules +=
        fmt::format("add rule inet {0} forward {1} accept\nadd rule inet {0} forward {2} accept\n",
                    kTable, from, to);
  }
  return rules;
}

// The hooks of base chains with policy drop in a `list table` listing, whose chains read
// "type filter hook input priority -10; policy drop;".
std::vector<std::string> drop_hooks(const std::string& listing) {
  std::vector<std::string> hooks;
  for (const char* hook : {"input", "output", "forward"}) {
    const auto at = listing.find(fmt::format("hook {} priority", hook));
    if (at == std::string::npos) continue;
    const auto end = listing.find('\n', at);
    if (listing.substr(at, end - at).find("policy drop;") != std::string::npos)
      hooks.emplace_back(hook);
  }
  return hooks;
}

class NftablesFirewall final : public Firewall {
 public:
  Status quarantine(const QuarantineSpec& spec) override {
    if (auto s = validate(spec); !s) return s;
    // "add table" then "delete table" makes the delete safe when the table does not exist yet;
    // the whole buffer is one nftables transaction.
    std::string script = fmt::format(
        "add table inet {0}\n"
        "delete table inet {0}\n"
        "add table inet {0}\n"
        "add chain inet {0} input {{ type filter hook input priority -10; policy drop; }}\n"
        "add chain inet {0} output {{ type filter hook output priority -10; policy drop; }}\n"
        "add chain inet {0} forward {{ type filter hook forward priority -10; policy drop; }}\n"
        "add rule inet {0} input iif lo accept\n"
        "add rule inet {0} output oif lo accept\n",
        kTable);
    // The controller is the agent's own channel: the host reaches it, what it routes does not.
    script += rules_for(spec.controller, /*forward=*/false);
    for (const auto& peer : spec.allow) script += rules_for(peer, /*forward=*/true);
    return run(script);
  }

  Status release() override {
    return run(fmt::format("add table inet {0}\ndelete table inet {0}\n", kTable));
  }

  Result<EnforcedQuarantine> enforced() override {
    NftCtx ctx(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!ctx) return Error{"cannot create an nftables context"};
    nft_ctx_buffer_output(ctx.get());
    nft_ctx_buffer_error(ctx.get());
    const int rc =
        nft_run_cmd_from_buffer(ctx.get(), fmt::format("list table inet {}", kTable).c_str());
    EnforcedQuarantine state;
    if (rc != 0) {
      const std::string error = nft_ctx_get_error_buffer(ctx.get());
      if (error.find("No such file or directory") != std::string::npos) return state;
      return Error{"nftables: " + error};
    }
    state.present = true;
    state.listing = nft_ctx_get_output_buffer(ctx.get());
    state.hooks = drop_hooks(state.listing);
    return state;
  }

 private:
  static Status run(const std::string& script) {
    NftCtx ctx(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!ctx) return Error{"cannot create an nftables context"};
    nft_ctx_buffer_output(ctx.get());
    nft_ctx_buffer_error(ctx.get());
    if (nft_run_cmd_from_buffer(ctx.get(), script.c_str()) != 0) {
      return Error{
          fmt::format("nftables refused the rules: {}", nft_ctx_get_error_buffer(ctx.get()))};
    }
    return ok_status();
  }
};

}  // namespace

Status validate(const QuarantineSpec& spec) {
  if (spec.controller.address.empty()) {
    return Error{"refused: a quarantine without the controller's address would cut the agent off"};
  }
  if (auto s = validate_peer(spec.controller, "controller"); !s) return s;
  if (spec.controller.protocol != "tcp" || spec.controller.port == 0) {
    return Error{"refused: the controller must be allowed as a TCP address and port"};
  }
  for (const auto& peer : spec.allow) {
    if (auto s = validate_peer(peer, "allow"); !s) return s;
  }
  return ok_status();
}

std::unique_ptr<Firewall> make_firewall() { return std::make_unique<NftablesFirewall>(); }

}  // namespace riposte::platform
