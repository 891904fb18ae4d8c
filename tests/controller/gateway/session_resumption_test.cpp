// TLS 1.3 session resumption between the gateway's context (issue_session_tickets) and an agent's
// (keep_session_tickets, SessionSlot), over loopback with the controller's real PKI: the second
// connection resumes from the ticket of the first; a forgotten slot, or a new server context (a
// restarted controller, which holds none of the old sessions), gives a full handshake; a resumed session still carries
// the client certificate it was made with; an expired certificate is refused on resumption.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <thread>

#include "common/clock.h"
#include "controller/gateway/pki.h"
#include "protocol/crypto.h"
#include "protocol/tls.h"
#include "tests/test_dir.h"

namespace riposte {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct Identity {
  std::string certificate_pem;
  std::string key_pem;
};

class SessionResumption : public ::testing::Test {
 protected:
  void SetUp() override {
    pki = std::make_unique<controller::Pki>(
        controller::Pki::load_or_create(dir.path(), {}, clock).value());
    auto key = crypto::generate_ec_p256().value();
    auto csr = crypto::make_csr(key.get(), "agent").value();
    auto issued =
        pki->issue_agent_certificate(crypto::csr_pem(csr.get()), "0b6f1a52-1111-4a4a-8b8b-00000000000a")
            .value();
    agent = {issued.certificate_pem, crypto::private_key_pem(key.get())};
  }

  // A gateway-like server context: mutual TLS against the PKI's CA, with tickets.
  asio::ssl::context server_context() {
    auto ctx = tls::make_tls13_context();
    EXPECT_TRUE(tls::use_identity(ctx, pki->server_chain_pem(), pki->server_key_pem()));
    EXPECT_TRUE(tls::require_client_certificates(ctx, pki->ca_certificate_pem(), nullptr));
    tls::issue_session_tickets(ctx, std::chrono::hours(1), 100);
    return ctx;
  }

  struct Outcome {
    bool ok = false;
    bool resumed_client = false;  // as the client saw it
    bool resumed_server = false;  // as the server saw it
    std::string peer_subject_serial;  // the client certificate's serial, as the server saw it
  };

  // One connection: handshake, the server sends one byte (the client reads it, and with it the
  // ticket that came after the handshake), both close.
  // `abrupt`: the client drops the TCP connection without close_notify, as an outage does.
  Outcome connect_once(asio::ssl::context& server_ctx, asio::ssl::context& client_ctx,
                       tls::SessionSlot& slot, bool abrupt = false) {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    Outcome out;
    std::thread server([&] {
      asio::ssl::stream<tcp::socket> stream(io, server_ctx);
      acceptor.accept(stream.lowest_layer());
      boost::system::error_code ec;
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (ec) return;
      out.resumed_server = SSL_session_reused(stream.native_handle()) == 1;
      crypto::X509Ptr peer(SSL_get1_peer_certificate(stream.native_handle()));
      if (peer) out.peer_subject_serial = crypto::certificate_fingerprint(peer.get());
      asio::write(stream, asio::buffer("x", 1), ec);
      char rest = 0;
      asio::read(stream, asio::buffer(&rest, 1), ec);  // until the client closes, one way or another
      // As the gateway does at the end of an accepted agent's connection.
      tls::keep_session_resumable(stream.native_handle());
    });
    asio::ssl::stream<tcp::socket> client(io, client_ctx);
    boost::system::error_code ec;
    client.lowest_layer().connect(acceptor.local_endpoint(), ec);
    slot.attach(client.native_handle());
    if (!ec) client.handshake(asio::ssl::stream_base::client, ec);
    char byte = 0;
    if (!ec) asio::read(client, asio::buffer(&byte, 1), ec);
    out.ok = !ec && byte == 'x';
    out.resumed_client = SSL_session_reused(client.native_handle()) == 1;
    if (abrupt)
      client.lowest_layer().close(ec);
    else
      client.shutdown(ec);
    server.join();
    return out;
  }

  asio::ssl::context client_context(bool keep_tickets = true) {
    auto ctx = tls::make_tls13_context();
    EXPECT_TRUE(tls::use_identity(ctx, agent.certificate_pem, agent.key_pem));
    EXPECT_TRUE(tls::trust_only(ctx, pki->ca_certificate_pem()));
    if (keep_tickets) tls::keep_session_tickets(ctx);
    return ctx;
  }

  testing::TempDir dir;
  SystemClock clock;
  std::unique_ptr<controller::Pki> pki;
  Identity agent;
};

TEST_F(SessionResumption, TheNextConnectionResumesWithTheSameClientCertificate) {
  auto server = server_context();
  auto client = client_context();
  tls::SessionSlot slot;
  auto first = connect_once(server, client, slot);
  ASSERT_TRUE(first.ok);
  EXPECT_FALSE(first.resumed_client);
  EXPECT_FALSE(first.resumed_server);
  ASSERT_TRUE(slot.holds_ticket()) << "no ticket was kept from the first session";
  auto second = connect_once(server, client, slot);
  ASSERT_TRUE(second.ok);
  EXPECT_TRUE(second.resumed_client);
  EXPECT_TRUE(second.resumed_server);
  EXPECT_EQ(second.peer_subject_serial, first.peer_subject_serial);
  EXPECT_FALSE(second.peer_subject_serial.empty());
  // Each resumption brings a fresh ticket: a third connection resumes too.
  EXPECT_TRUE(connect_once(server, client, slot).resumed_server);
}

// Outages end connections without close_notify; the ticket must survive that.
TEST_F(SessionResumption, ATicketSurvivesAConnectionThatWasCutOff) {
  auto server = server_context();
  auto client = client_context();
  tls::SessionSlot slot;
  ASSERT_TRUE(connect_once(server, client, slot, /*abrupt=*/true).ok);
  auto second = connect_once(server, client, slot, /*abrupt=*/true);
  ASSERT_TRUE(second.ok);
  EXPECT_TRUE(second.resumed_server);
  EXPECT_TRUE(connect_once(server, client, slot, /*abrupt=*/true).resumed_server);
}

TEST_F(SessionResumption, WithoutATicketOrAfterARestartTheHandshakeIsFull) {
  auto server = server_context();
  auto client = client_context();
  tls::SessionSlot slot;
  ASSERT_TRUE(connect_once(server, client, slot).ok);
  slot.forget();
  auto after_forget = connect_once(server, client, slot);
  ASSERT_TRUE(after_forget.ok);
  EXPECT_FALSE(after_forget.resumed_server);
  // A restarted controller has a new context, which holds none of the sessions.
  auto restarted = server_context();
  auto after_restart = connect_once(restarted, client, slot);
  ASSERT_TRUE(after_restart.ok);
  EXPECT_FALSE(after_restart.resumed_server);
  // A context that does not opt in (every other TLS client of Riposte) keeps no tickets.
  auto plain = client_context(false);
  tls::SessionSlot unused;
  ASSERT_TRUE(connect_once(server, plain, unused).ok);
  EXPECT_FALSE(unused.holds_ticket());
}

TEST_F(SessionResumption, AnExpiredCertificateIsNotUsableOnResumption) {
  auto cert = crypto::load_certificate_pem(agent.certificate_pem).value();
  const std::time_t now = std::time(nullptr);
  EXPECT_TRUE(tls::resumed_certificate_usable(cert.get(), now));
  // Past its notAfter (issued certificates are valid for a bounded time).
  auto late = tls::resumed_certificate_usable(cert.get(), now + 20LL * 365 * 24 * 3600);
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message.find("expired"), std::string::npos);
  auto early = tls::resumed_certificate_usable(cert.get(), now - 10LL * 24 * 3600);
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().message.find("not valid yet"), std::string::npos);
  EXPECT_FALSE(tls::resumed_certificate_usable(nullptr, now));
}

}  // namespace
}  // namespace riposte
