// The controller's listeners as a TLS client sees them, checked with openssl s_client.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"

namespace riposte::testing {
namespace {

using namespace std::chrono_literals;

// With `wait_for_server_close`, s_client keeps reading after the handshake, so an alert the
// server sends once it has checked our certificate (TLS 1.3 does that after "Finished") is seen.
std::string s_client(const std::vector<std::string>& extra, bool wait_for_server_close = true) {
  std::vector<std::string> argv{"openssl", "s_client",
                                wait_for_server_close ? "-ign_eof" : "-no_ign_eof"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const auto result = run_command(argv, 15s);
  return result.out + result.err;
}

int free_loopback_port(const char* address) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address(address), 0});
  return acceptor.local_endpoint().port();
}

int port_of(const std::string& host_port) {
  return std::stoi(host_port.substr(host_port.rfind(':') + 1));
}

// `count` TCP connections from `source` (another loopback address than the test's own traffic)
// to 127.0.0.1:`port` that never send a byte.
std::vector<int> idle_connections(const char* source, int port, int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0) << i;
    fds.push_back(fd);
  }
  return fds;
}

// How many of `fds` the listener has closed (end of stream or reset), after giving it `settle`
// to accept them all.
int closed_by_listener(const std::vector<int>& fds, std::chrono::milliseconds settle) {
  std::this_thread::sleep_for(settle);
  int closed = 0;
  for (const int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1) continue;
    char byte;
    closed += ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
  }
  return closed;
}

void close_all(std::vector<int>& fds) {
  for (const int fd : fds) ::close(fd);
  fds.clear();
}

class TlsIntegration : public ::testing::Test {
 protected:
  void SetUp() override { controller.start(); }
  ControllerUnderTest controller;
};

// A ClientHello, then the connection closed at once: the gateway writes its flight into a socket
// the peer has reset, and OpenSSL writes an alert with write(2). Without SIGPIPE ignored the
// controller died on the first or third such connection (found by review; exit status 141).
TEST_F(TlsIntegration, AClientThatHangsUpMidHandshakeDoesNotKillTheController) {
  const int port = port_of(controller.gateway());
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(ctx, nullptr);
  for (int i = 0; i < 30; ++i) {
    SSL* ssl = SSL_new(ctx);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    ASSERT_EQ(SSL_do_handshake(ssl), -1);  // wants to read the server's answer
    char* hello = nullptr;
    const long size = BIO_get_mem_data(out, &hello);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    ASSERT_EQ(::send(fd, hello, static_cast<std::size_t>(size), MSG_NOSIGNAL), size);
    ::close(fd);
    SSL_free(ssl);
    std::this_thread::sleep_for(20ms);
  }
  SSL_CTX_free(ctx);
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(controller.process().running()) << controller.process().log_text();
  // And it still serves: a real client's handshake gets as far as the certificate request.
  const auto after = s_client({"-connect", controller.gateway()});
  EXPECT_NE(after.find("TLSv1.3"), std::string::npos) << after;
}

TEST_F(TlsIntegration, ClientWithoutCertificateFailsTheHandshake) {
  const auto output =
      s_client({"-connect", controller.gateway(), "-tls1_3", "-CAfile", controller.ca_cert()});
  EXPECT_NE(output.find("alert certificate required"), std::string::npos) << output;
}

TEST_F(TlsIntegration, CertificateFromAnotherCaFailsTheHandshake) {
  // A look-alike agent identity (same URI SAN form) signed by a CA the controller never issued.
  const auto d = controller.dir();
  const auto run = [](const std::vector<std::string>& argv) {
    const auto r = run_command(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", (d / "rogue-ca.key").string(), "-out", (d / "rogue-ca.pem").string(), "-subj",
       "/CN=Rogue CA", "-days", "1"});
  run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", (d / "rogue.key").string(), "-out", (d / "rogue.csr").string(), "-subj",
       "/CN=rogue"});
  std::ofstream(d / "rogue.ext")
      << "subjectAltName=URI:urn:riposte:agent:00000000-0000-4000-8000-000000000000\n"
         "extendedKeyUsage=clientAuth\n";
  run({"openssl", "x509", "-req", "-in", (d / "rogue.csr").string(), "-CA",
       (d / "rogue-ca.pem").string(), "-CAkey", (d / "rogue-ca.key").string(), "-CAcreateserial",
       "-out", (d / "rogue.pem").string(), "-days", "1", "-extfile", (d / "rogue.ext").string()});

  const auto output =
      s_client({"-connect", controller.gateway(), "-tls1_3", "-CAfile", controller.ca_cert(),
                "-cert", (d / "rogue.pem").string(), "-key", (d / "rogue.key").string()});
  EXPECT_NE(output.find("alert unknown ca"), std::string::npos) << output;
}

TEST_F(TlsIntegration, Tls12IsRefusedOnBothListeners) {
  for (const auto& endpoint : {controller.gateway(), controller.api()}) {
    const auto output = s_client({"-connect", endpoint, "-tls1_2"});
    EXPECT_NE(output.find("alert protocol version"), std::string::npos) << endpoint << "\n"
                                                                        << output;
  }
}

// DHEat: a finite-field group makes every unauthenticated ClientHello cost the server ~100x the
// CPU of X25519. Only X25519, P-256 and P-384 are offered.
TEST_F(TlsIntegration, FiniteFieldGroupsAreRefusedOnBothListeners) {
  for (const auto& endpoint : {controller.gateway(), controller.api()}) {
    const auto ffdhe = s_client({"-connect", endpoint, "-groups", "ffdhe8192"});
    EXPECT_EQ(ffdhe.find("New, TLSv1.3"), std::string::npos) << endpoint << "\n" << ffdhe;
    EXPECT_NE(ffdhe.find("handshake failure"), std::string::npos) << endpoint << "\n" << ffdhe;
    for (const char* group : {"X25519", "P-256", "P-384"}) {
      const auto ok = s_client({"-connect", endpoint, "-groups", group}, false);
      EXPECT_NE(ok.find("New, TLSv1.3"), std::string::npos) << endpoint << " " << group << "\n"
                                                            << ok;
    }
  }
}

// Idle TCP from one address cannot take either listener: the gateway keeps at most 256 of its
// connections in their handshake, the API at most 64 open; the rest are closed at once, before
// any TLS work, and other addresses are served meanwhile.
TEST_F(TlsIntegration, OneAddressCannotHoldMoreThanItsShareOfEitherListener) {
  auto flood = idle_connections("127.0.0.2", controller.gateway_port(), 300);
  EXPECT_EQ(closed_by_listener(flood, 1500ms), 300 - 256);
  const auto other = s_client({"-connect", controller.gateway(), "-groups", "X25519"}, false);
  EXPECT_NE(other.find("New, TLSv1.3"), std::string::npos) << other;
  close_all(flood);

  flood = idle_connections("127.0.0.2", port_of(controller.api()), 70);
  EXPECT_EQ(closed_by_listener(flood, 1500ms), 70 - 64);
  EXPECT_EQ(controller.cli({"agents", "list"}).exit_code, 0);
  close_all(flood);
  // Freed once closed: the address is served again.
  ASSERT_TRUE(wait_until(
      [&] {
        auto one = idle_connections("127.0.0.2", port_of(controller.api()), 1);
        const bool held = closed_by_listener(one, 200ms) == 0;
        close_all(one);
        return held;
      },
      5s));
  EXPECT_NE(controller.process().log_text().find("refusing connections from 127.0.0.2"),
            std::string::npos);
}

// A stolen agent certificate buys no more: connections that complete TLS with it but never say
// Hello still count against their address until accepted as a session.
TEST_F(TlsIntegration, ConnectionsWithAValidCertificateThatNeverSayHelloAreCountedToo) {
  const auto state = controller.dir() / "agent";
  controller.enroll_agent(state);
  const auto script = controller.dir() / "certified_flood.py";
  std::ofstream(script) << R"(import socket, ssl, sys, time
port, state = int(sys.argv[1]), sys.argv[2]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.load_verify_locations(state + '/ca.pem')
context.load_cert_chain(state + '/agent.pem', state + '/agent.key')
context.check_hostname = False
opened, refused = [], 0
for _ in range(300):  # quickly: the gateway closes a silent session after 10 s
    raw = socket.socket()
    raw.bind(('127.0.0.3', 0))
    raw.connect(('127.0.0.1', port))
    try:
        opened.append(context.wrap_socket(raw))
    except (ssl.SSLError, OSError):
        refused += 1
time.sleep(1)
held = []
for s in opened:
    s.setblocking(False)
    try:
        if s.recv(1) == b'':  # closed by the gateway
            refused += 1
            continue
    except ssl.SSLWantReadError:
        pass
    except (ssl.SSLError, OSError):
        refused += 1
        continue
    held.append(s)
print(len(held), refused)
)";
  const auto out = run_command(
      {"python3", script.string(), std::to_string(controller.gateway_port()), state.string()},
      std::chrono::seconds(120));
  std::istringstream counts(out.out);
  int held = 0, refused = 0;
  counts >> held >> refused;
  EXPECT_LE(held, 256) << out.out << out.err;
  EXPECT_GE(refused, 300 - 256) << out.out << out.err;
}

// Resumption only for an accepted agent (tls.h issue_session_tickets; the swarm test shows an
// accepted agent resuming): a connection with a valid certificate that never says Hello gets a
// ticket at the handshake, but its session is dropped when the gateway closes it, so offering
// that ticket gives a full handshake; so does a session from another server. Neither is an
// error.
TEST_F(TlsIntegration, OnlyAnAcceptedAgentsSessionResumesOnTheGateway) {
  const auto state = controller.dir() / "agent";
  controller.enroll_agent(state);
  const std::vector<std::string> identity{"-cert",   (state / "agent.pem").string(),
                                          "-key",    (state / "agent.key").string(),
                                          "-CAfile", controller.ca_cert()};
  const auto with = [&](std::vector<std::string> args, bool wait_for_close = false) {
    args.insert(args.end(), identity.begin(), identity.end());
    return s_client(args, wait_for_close);
  };
  const auto own = (controller.dir() / "own-session.pem").string();
  // Held open until the gateway closes the silent connection, so the ticket is read.
  const auto first = with({"-connect", controller.gateway(), "-sess_out", own}, true);
  EXPECT_NE(first.find("New, TLSv1.3"), std::string::npos) << first;
  ASSERT_TRUE(std::filesystem::exists(own)) << "no session ticket\n" << first;
  const auto again = with({"-connect", controller.gateway(), "-sess_in", own});
  EXPECT_EQ(again.find("internal error"), std::string::npos) << again;
  EXPECT_NE(again.find("New, TLSv1.3"), std::string::npos) << again;
  EXPECT_EQ(again.find("Reused"), std::string::npos) << "a session never accepted resumed\n"
                                                     << again;

  // A session from another server that does issue tickets, offered to the gateway. On an
  // address no other test listens on: a port free a moment ago on 127.0.0.1 was once taken by a
  // controller of a test running beside this one, and s_client waited on it instead.
  const std::string other_address = "127.0.0.9:" + std::to_string(free_loopback_port("127.0.0.9"));
  ChildProcess other(
      {"openssl", "s_server", "-accept", other_address, "-tls1_3", "-cert",
       (state / "agent.pem").string(), "-key", (state / "agent.key").string(), "-quiet"},
      controller.dir() / "other.log");
  const auto foreign = (controller.dir() / "foreign-session.pem").string();
  ASSERT_TRUE(wait_until(
      [&] {
        with({"-connect", other_address, "-sess_out", foreign});
        return std::filesystem::exists(foreign);
      },
      30s));
  const auto second = with({"-connect", controller.gateway(), "-sess_in", foreign});
  EXPECT_EQ(second.find("internal error"), std::string::npos) << second;
  EXPECT_NE(second.find("New, TLSv1.3"), std::string::npos) << second;
  EXPECT_EQ(second.find("Reused"), std::string::npos) << second;
}

TEST_F(TlsIntegration, ListenersSpeakTls13AndPresentTheControllerChain) {
  for (const auto& endpoint : {controller.gateway(), controller.api()}) {
    const auto output = s_client(
        {"-connect", endpoint, "-CAfile", controller.ca_cert(), "-verify_return_error"}, false);
    EXPECT_NE(output.find("New, TLSv1.3"), std::string::npos) << endpoint << "\n" << output;
    EXPECT_NE(output.find("Verify return code: 0 (ok)"), std::string::npos) << endpoint << "\n"
                                                                            << output;
  }
}

// The API is HTTPS only: browsers are told so (HSTS), on every answer, the console's and errors
// included, so that a later plain-HTTP link to the same host is never followed in the clear.
TEST_F(TlsIntegration, EveryApiAnswerCarriesStrictTransportSecurity) {
  for (const char* path : {"/healthz", "/api/v1/agents", "/ui/", "/no/such/page"}) {
    const auto answer = run_command({"curl", "-s", "-o", "/dev/null", "-D", "-", "--cacert",
                                     controller.ca_cert(), "https://" + controller.api() + path});
    std::string headers = answer.out;
    std::transform(headers.begin(), headers.end(), headers.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    EXPECT_NE(headers.find("strict-transport-security: max-age=31536000\r\n"), std::string::npos)
        << path << "\n"
        << answer.out;
  }
}

TEST_F(TlsIntegration, AgentRefusesAServerPresentingAnAgentCertificate) {
  // Every agent holds a certificate from the controller's CA. The agent must still refuse one of
  // them as a server: agent certificates are for client authentication only.
  const auto state = controller.dir() / "agent";
  controller.enroll_agent(state);
  const auto impostor_state = controller.dir() / "agent-pointed-at-impostor";
  std::filesystem::copy(state, impostor_state);

  // On an address no other test listens on (see ResumptionAttempts...).
  const std::string impostor_address =
      "127.0.0.9:" + std::to_string(free_loopback_port("127.0.0.9"));
  auto meta = nlohmann::json::parse(read_text(state / "agent.json"));
  meta["gateway"] = impostor_address;
  std::ofstream(impostor_state / "agent.json") << meta.dump();

  ChildProcess impostor({"openssl", "s_server", "-accept", impostor_address, "-tls1_3", "-cert",
                         (state / "agent.pem").string(), "-key", (state / "agent.key").string(),
                         "-cert_chain", controller.ca_cert(), "-quiet"},
                        controller.dir() / "impostor.log");
  auto agent = controller.start_agent(impostor_state, "agent.log");
  ASSERT_TRUE(wait_until(
      [&] { return agent->log_text().find("certificate verify failed") != std::string::npos; },
      20s))
      << agent->log_text() << impostor.log_text();
  EXPECT_EQ(agent->log_text().find("connected to controller"), std::string::npos);
}

}  // namespace
}  // namespace riposte::testing
