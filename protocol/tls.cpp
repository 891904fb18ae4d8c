#include "protocol/tls.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "protocol/crypto.h"

namespace riposte::tls {

namespace ssl = boost::asio::ssl;

namespace {

struct StoreDeleter {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxDeleter {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};

Status add_ca_to_store(X509_STORE* store, const std::string& ca_pem) {
  auto ca = crypto::load_certificate_pem(ca_pem);
  if (!ca) return Error{"CA certificate: " + ca.error().message};
  if (X509_STORE_add_cert(store, ca->get()) != 1) {
    return Error{"cannot add CA certificate: " + crypto::openssl_error()};
  }
  return ok_status();
}

// Everything for the pinned-CA verification lives here, reachable from the SSL_CTX.
struct PinnedCa {
  std::string pin;
  std::shared_ptr<std::string> out_pem;
};

int pinned_ca_index() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<PinnedCa*>(ptr);
      });
  return index;
}

// Replaces OpenSSL's chain verification for the pinned case: find the pinned CA among the certs
// the server sent, and verify the leaf against it alone.
int verify_against_pin(X509_STORE_CTX* ctx, void* arg) {
  auto* pinned = static_cast<PinnedCa*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(ctx);
  STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(ctx);
  X509* ca = nullptr;
  for (int i = 0; untrusted != nullptr && i < sk_X509_num(untrusted); ++i) {
    X509* candidate = sk_X509_value(untrusted, i);
    if (crypto::certificate_fingerprint(candidate) == pinned->pin) ca = candidate;
  }
  if (ca == nullptr) {
    X509_STORE_CTX_set_error(ctx, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    return 0;
  }
  std::unique_ptr<X509_STORE, StoreDeleter> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca);
  std::unique_ptr<X509_STORE_CTX, StoreCtxDeleter> verify(X509_STORE_CTX_new());
  X509_STORE_CTX_init(verify.get(), store.get(), leaf, nullptr);
  X509_STORE_CTX_set_purpose(verify.get(), X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(verify.get()) != 1) {
    X509_STORE_CTX_set_error(ctx, X509_STORE_CTX_get_error(verify.get()));
    return 0;
  }
  if (pinned->out_pem) *pinned->out_pem = crypto::certificate_pem(ca);
  return 1;
}

}  // namespace

ssl::context make_tls13_context() {
  ssl::context ctx(ssl::context::tls);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION);
  ctx.set_options(ssl::context::no_compression | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  // Elliptic-curve key exchange only. OpenSSL 3 also offers the finite-field groups up to
  // ffdhe8192, whose key share costs the server ~100x the CPU of X25519 per unauthenticated
  // ClientHello (the DHEat attack); no client of ours needs them.
  SSL_CTX_set1_groups_list(native, "X25519:P-256:P-384");
  // No session resumption unless a context opts in (the agent gateway and the agents:
  // issue_session_tickets, keep_session_tickets): a resumed mutual-TLS session skips the
  // client-certificate check, so a server that allows it must check revocation and expiry after
  // every handshake. Here no tickets are issued and nothing is cached; a client offering an old
  // session gets a full handshake (the session id context is set so that OpenSSL does not fail
  // such an attempt with "session id context uninitialized" when client certificates are
  // verified). A stateful ticket only resumes on the context whose cache holds its session.
  SSL_CTX_set_num_tickets(native, 0);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  static constexpr unsigned char kSessionContext[] = "riposte";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  // An idle connection gives its ~34 KB of record buffers back: a gateway holds tens of thousands
  // of sessions that exchange a heartbeat every 30 s.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

Status use_identity(ssl::context& ctx, const std::string& chain_pem, const std::string& key_pem) {
  boost::system::error_code ec;
  ctx.use_certificate_chain(boost::asio::buffer(chain_pem), ec);
  if (ec) return Error{"cannot use certificate chain: " + ec.message()};
  ctx.use_private_key(boost::asio::buffer(key_pem), ssl::context::pem, ec);
  if (ec) return Error{"cannot use private key: " + ec.message()};
  return ok_status();
}

Status require_client_certificates(ssl::context& ctx, const std::string& ca_pem,
                                   ClientCheck check) {
  SSL_CTX* native = ctx.native_handle();
  if (auto status = add_ca_to_store(SSL_CTX_get_cert_store(native), ca_pem); !status) return status;
  X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(native), X509_PURPOSE_SSL_CLIENT);
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  ctx.set_verify_callback([check = std::move(check)](bool preverified, ssl::verify_context& vctx) {
    X509_STORE_CTX* store_ctx = vctx.native_handle();
    if (!preverified) return false;
    if (X509_STORE_CTX_get_error_depth(store_ctx) != 0 || !check) return true;
    if (auto status = check(X509_STORE_CTX_get_current_cert(store_ctx)); !status) {
      X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_CERT_REVOKED);
      return false;
    }
    return true;
  });
  return ok_status();
}

Status trust_only(ssl::context& ctx, const std::string& ca_pem) {
  SSL_CTX* native = ctx.native_handle();
  if (auto status = add_ca_to_store(SSL_CTX_get_cert_store(native), ca_pem); !status) return status;
  X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(native), X509_PURPOSE_SSL_SERVER);
  ctx.set_verify_mode(ssl::verify_peer);
  return ok_status();
}

Status trust_pinned_ca(ssl::context& ctx, const std::string& pin,
                       std::shared_ptr<std::string> pinned_ca_pem) {
  auto canonical = crypto::normalize_fingerprint(pin);
  if (!canonical) return canonical.error();
  auto* state = new PinnedCa{*canonical, std::move(pinned_ca_pem)};
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_ex_data(native, pinned_ca_index(), state);  // freed with the context
  SSL_CTX_set_cert_verify_callback(native, verify_against_pin, state);
  ctx.set_verify_mode(ssl::verify_peer);
  return ok_status();
}

void issue_session_tickets(ssl::context& ctx, std::chrono::seconds lifetime,
                           std::size_t max_sessions) {
  SSL_CTX* native = ctx.native_handle();
  // Stateful tickets (SSL_OP_NO_TICKET, kept from make_tls13_context, with a server cache): the
  // ticket only names a session this process holds. A stateless ticket carries the session,
  // client certificate included, and decoding that certificate's key again through OpenSSL
  // 3.0's decoders was a third of the gateway's CPU in a storm of resumptions. OpenSSL 3.0 keeps
  // a resumed session cached (each resumption caches a new one, for the new ticket): the server
  // must drop the old one itself for a ticket to resume once (AgentGateway does, per agent).
  // The oldest go when the cache is full.
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
  // A peer that goes away without close_notify is an end of stream, not a fatal error: OpenSSL
  // sends itself a fatal alert for it, and a fatal alert drops the session from the cache, so no
  // agent cut off by an outage could resume. Our framing finds a stream cut inside a message.
  SSL_CTX_set_options(native, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_num_tickets(native, 1);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(native, static_cast<long>(max_sessions));
  SSL_CTX_set_timeout(native, static_cast<long>(lifetime.count()));
}

void keep_session_resumable(SSL* ssl) {
  // Marks the connection as shut down both ways, so that SSL_free leaves the session cached.
  // Nothing more is sent or read on it.
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

void forget_session(SSL* ssl) {
  if (SSL_SESSION* session = SSL_get_session(ssl))
    SSL_CTX_remove_session(SSL_get_SSL_CTX(ssl), session);
}

Status resumed_certificate_usable(X509* peer, std::time_t now) {
  if (peer == nullptr) return Error{"the resumed session has no client certificate"};
  if (X509_cmp_time(X509_get0_notAfter(peer), &now) <= 0)
    return Error{"the client certificate of the resumed session has expired"};
  if (X509_cmp_time(X509_get0_notBefore(peer), &now) > 0)
    return Error{"the client certificate of the resumed session is not valid yet"};
  return ok_status();
}

namespace {

int slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* slot = static_cast<SessionSlot*>(SSL_get_ex_data(ssl, slot_index()));
  if (slot == nullptr) return 0;
  // A copy: the received session becomes the connection's own, and OpenSSL marks that one not
  // resumable when the connection ends without close_notify (ssl_clear_bad_session) - which is
  // how connections end in the outages resumption is for.
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) slot->keep(copy);
  return 0;  // the original stays OpenSSL's
}

}  // namespace

SessionSlot::~SessionSlot() { forget(); }

void SessionSlot::forget() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  session_ = nullptr;
}

void SessionSlot::keep(SSL_SESSION* session) {
  forget();
  session_ = session;
}

void SessionSlot::attach(SSL* ssl) {
  SSL_set_ex_data(ssl, slot_index(), this);
  if (session_ == nullptr) return;
  if (SSL_SESSION_is_resumable(session_) != 1 || SSL_set_session(ssl, session_) != 1) forget();
}

void keep_session_tickets(ssl::context& ctx) {
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_clear_options(native, SSL_OP_NO_TICKET);
  // Client-side caching only through the callback: the context keeps no sessions itself.
  SSL_CTX_set_session_cache_mode(native,
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(native, on_new_session);
}

}  // namespace riposte::tls
