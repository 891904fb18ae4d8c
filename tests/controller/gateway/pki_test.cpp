#include "controller/gateway/pki.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "common/secure_file.h"
#include "protocol/crypto.h"
#include "tests/test_dir.h"

namespace riposte::controller {
namespace {

class PkiTest : public ::testing::Test {
 protected:
  testing::TempDir dir;
  ManualClock clock{1'800'000'000'000};
};

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

TEST_F(PkiTest, FirstLoadCreatesKeysWithPrivateModesAndSecondLoadReusesThem) {
  std::vector<std::string> created;
  auto first = Pki::load_or_create(dir.path(), {}, clock, &created);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(created.size(), 5u);
  for (const char* key : {Pki::kCaKey, Pki::kServerKey, Pki::kActionKey}) {
    EXPECT_EQ(mode_of(dir.path() / key), 0600u) << key;
  }
  std::vector<std::string> created_again;
  auto second = Pki::load_or_create(dir.path(), {}, clock, &created_again);
  ASSERT_TRUE(second);
  EXPECT_TRUE(created_again.empty());
  EXPECT_EQ(first->ca_fingerprint(), second->ca_fingerprint());
  EXPECT_EQ(first->action_public_key_pem(), second->action_public_key_pem());
}

TEST_F(PkiTest, HalfMadeCaIsAnErrorNotSilentlyReplaced) {
  ASSERT_TRUE(Pki::load_or_create(dir.path(), {}, clock));
  std::filesystem::remove(dir.path() / Pki::kCaKey);
  auto again = Pki::load_or_create(dir.path(), {}, clock);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("ca.key"), std::string::npos) << again.error().message;
}

TEST_F(PkiTest, IssuedAgentCertificateChainsToCaAndCarriesOnlyWhatTheControllerDecides) {
  auto pki = Pki::load_or_create(dir.path(), {}, clock);
  ASSERT_TRUE(pki);
  auto key = crypto::generate_ec_p256();
  // The CSR asks for a misleading CN; the certificate must not trust it.
  auto csr = crypto::make_csr(key->get(), "urn:riposte:agent:someone-else");
  ASSERT_TRUE(csr);
  auto issued = pki->issue_agent_certificate(crypto::csr_pem(csr->get()), "agent-1");
  ASSERT_TRUE(issued) << issued.error().message;

  auto cert = crypto::load_certificate_pem(issued->certificate_pem);
  auto ca = crypto::load_certificate_pem(pki->ca_certificate_pem());
  ASSERT_TRUE(cert && ca);
  crypto::PkeyPtr ca_key(X509_get_pubkey(ca->get()));
  EXPECT_EQ(X509_verify(cert->get(), ca_key.get()), 1);
  EXPECT_EQ(X509_check_private_key(cert->get(), key->get()), 1);
  EXPECT_EQ(crypto::agent_id_from_certificate(cert->get()).value(), "agent-1");
  EXPECT_EQ(X509_check_purpose(cert->get(), X509_PURPOSE_SSL_CLIENT, 0), 1);
  EXPECT_NE(X509_check_purpose(cert->get(), X509_PURPOSE_SSL_SERVER, 0), 1)
      << "an agent certificate must not be usable to impersonate the controller";
  EXPECT_EQ(X509_check_ca(cert->get()), 0);
  EXPECT_EQ(issued->fingerprint, crypto::certificate_fingerprint(cert->get()));
}

TEST_F(PkiTest, CsrWhoseSignatureDoesNotVerifyIsRefused) {
  auto pki = Pki::load_or_create(dir.path(), {}, clock);
  auto key = crypto::generate_ec_p256();
  auto other = crypto::generate_ec_p256();
  auto csr = crypto::make_csr(key->get(), "host");
  // Swap in another public key after signing: proof of possession now fails.
  X509_REQ_set_pubkey(csr->get(), other->get());
  auto issued = pki->issue_agent_certificate(crypto::csr_pem(csr->get()), "agent-2");
  ASSERT_FALSE(issued);
  EXPECT_NE(issued.error().message.find("signature"), std::string::npos) << issued.error().message;
}

TEST_F(PkiTest, MalformedCsrIsAnError) {
  auto pki = Pki::load_or_create(dir.path(), {}, clock);
  EXPECT_FALSE(pki->issue_agent_certificate("not a csr", "agent-3"));
  EXPECT_FALSE(pki->issue_agent_certificate("", "agent-3"));
}

TEST_F(PkiTest, ServerCertificateIsForServersOnlyAndNamesLocalhost) {
  auto pki = Pki::load_or_create(dir.path(), {"controller.soc.example", "10.1.2.3"}, clock);
  auto server = crypto::load_certificate_pem(read_file(dir.path() / Pki::kServerCert).value());
  ASSERT_TRUE(server);
  EXPECT_EQ(X509_check_purpose(server->get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_host(server->get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(server->get(), "controller.soc.example", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server->get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(server->get(), "10.1.2.3", 0), 1);
  EXPECT_NE(X509_check_host(server->get(), "evil.example", 0, 0, nullptr), 1);
}

}  // namespace
}  // namespace riposte::controller
