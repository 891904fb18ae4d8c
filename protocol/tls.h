#pragma once

// TLS configuration shared by every Riposte listener and client. TLS 1.3 only, everywhere.

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <string>

#include "common/result.h"

namespace riposte::tls {

// A context that speaks TLS 1.3 and nothing older.
boost::asio::ssl::context make_tls13_context();

// Presents `chain_pem` (leaf first, then the issuing CA) with `key_pem`.
Status use_identity(boost::asio::ssl::context& ctx, const std::string& chain_pem,
                    const std::string& key_pem);

// Called for the verified leaf certificate of a client; return an error to refuse the handshake
// (e.g. revoked). Runs during the handshake, so it must be quick.
using ClientCheck = std::function<Status(X509* leaf)>;

// Server side of mutual TLS: a client certificate is required, must chain to `ca_pem`, must be
// meant for client authentication and must pass `check`.
Status require_client_certificates(boost::asio::ssl::context& ctx, const std::string& ca_pem,
                                   ClientCheck check);

// Client side: the server must chain to `ca_pem` (the only trust anchor) and be meant for server
// authentication. Agent certificates from the same CA are therefore refused as servers.
Status trust_only(boost::asio::ssl::context& ctx, const std::string& ca_pem);

// Client side before enrollment: the server must present a chain containing a CA certificate whose
// SHA-256 fingerprint equals `pin`, and its leaf must verify against that CA for server use.
// After the handshake, `pinned_ca_pem` holds that CA certificate.
Status trust_pinned_ca(boost::asio::ssl::context& ctx, const std::string& pin,
                       std::shared_ptr<std::string> pinned_ca_pem);

// Session resumption for agent sessions (TLS 1.3 session tickets; the resumed handshake is PSK
// with (EC)DHE, still forward secret, and no early data). A full mutual-TLS 1.3 handshake costs
// each end ~1.5 ms of CPU with OpenSSL 3.0, most of it certificate and signature work: a
// reconnect storm of 10,000 agents is 15 CPU-seconds for the gateway. A resumed one skips it.
//
// Server: one ticket after each handshake, valid for `lifetime`, naming a session held in this
// context's memory (at most `max_sessions`, the oldest dropped first; each a few KiB), so a
// restarted controller gives full handshakes again. A resumed handshake does not verify the
// client's certificate chain again (nor run require_client_certificates' check): the server
// must check what it relies on after every handshake; see resumed_certificate_usable.
void issue_session_tickets(boost::asio::ssl::context& ctx, std::chrono::seconds lifetime,
                           std::size_t max_sessions);

// Server, when a connection whose session may be resumed ends (an accepted agent's, however it
// ended): keeps its session in the cache. OpenSSL drops the session of a connection freed
// without a TLS shutdown (RFC 5246's rule for sessions ended by a fatal alert), and agent
// connections end by a dropped network far more often than by close_notify.
void keep_session_resumable(SSL* ssl);
// Server: the session of this connection is never resumed (a refused agent's).
void forget_session(SSL* ssl);

// Whether the certificate of a resumed session may still be used at `now` (the chain was
// verified at the full handshake; its validity period may have ended since). An error says why.
Status resumed_certificate_usable(X509* peer, std::time_t now);

// Client: the newest ticket a server sent on a connection of one client, offered on its next
// connection. Use from one thread at a time (the client's own connections are sequential).
class SessionSlot {
 public:
  SessionSlot() = default;
  SessionSlot(const SessionSlot&) = delete;
  SessionSlot& operator=(const SessionSlot&) = delete;
  ~SessionSlot();
  // Before the handshake of `ssl` (a stream of a context set up with keep_session_tickets):
  // offers the kept ticket, if any and still resumable, and keeps what the server sends on it.
  void attach(SSL* ssl);
  bool holds_ticket() const { return session_ != nullptr; }
  void forget();  // e.g. after a refused session: the next handshake is a full one
  void keep(SSL_SESSION* session);  // takes ownership (a copy made by the new-session callback)

 private:
  SSL_SESSION* session_ = nullptr;
};

// Client context: tickets received on a stream with an attached SessionSlot go to that slot.
void keep_session_tickets(boost::asio::ssl::context& ctx);

}  // namespace riposte::tls
