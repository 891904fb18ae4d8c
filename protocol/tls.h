#pragma once

// TLS configuration shared by every Riposte listener and client. TLS 1.3 only, everywhere.

#include <boost/asio/ssl/context.hpp>
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

}  // namespace riposte::tls
