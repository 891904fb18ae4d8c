#include "protocol/crypto.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include <set>

namespace riposte::crypto {
namespace {

X509Ptr self_signed_with_sans(EVP_PKEY* key, const std::string& san) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  if (!san.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert.get(), key, EVP_sha256());
  return cert;
}

TEST(Crypto, AgentIdComesFromTheRiposteUriSan) {
  auto key = generate_ec_p256();
  ASSERT_TRUE(key);
  auto cert = self_signed_with_sans(key->get(), "DNS:host.example,URI:urn:riposte:agent:abc-123");
  auto id = agent_id_from_certificate(cert.get());
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, "abc-123");
}

TEST(Crypto, CertificateWithoutAgentUriHasNoIdentity) {
  auto key = generate_ec_p256();
  auto no_san = self_signed_with_sans(key->get(), "");
  EXPECT_FALSE(agent_id_from_certificate(no_san.get()));
  auto other_uri = self_signed_with_sans(key->get(), "URI:https://example.com/agent/1");
  EXPECT_FALSE(agent_id_from_certificate(other_uri.get()));
  auto empty = self_signed_with_sans(key->get(), "URI:urn:riposte:agent:");
  EXPECT_FALSE(agent_id_from_certificate(empty.get()));
}

TEST(Crypto, CertificateWithTwoAgentUrisIsAmbiguousAndRefused) {
  auto key = generate_ec_p256();
  auto cert = self_signed_with_sans(key->get(), "URI:urn:riposte:agent:a,URI:urn:riposte:agent:b");
  auto id = agent_id_from_certificate(cert.get());
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().message.find("more than one"), std::string::npos);
}

TEST(Crypto, FingerprintIsSha256OfDerInCanonicalForm) {
  auto key = generate_ec_p256();
  auto cert = self_signed_with_sans(key->get(), "");
  const auto fp = certificate_fingerprint(cert.get());
  ASSERT_EQ(fp.size(), 7u + 64u);
  EXPECT_TRUE(fp.starts_with("sha256:"));
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert.get(), &der);
  const std::string der_text(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  EXPECT_EQ(fp, "sha256:" + sha256_hex(der_text));
}

TEST(Crypto, PinNormalizationAcceptsCommonSpellings) {
  const std::string canonical = "sha256:" + std::string(64, 'a');
  std::string colons;
  for (int i = 0; i < 32; ++i) {
    if (i > 0) colons += ':';
    colons += "AA";
  }
  for (const std::string& pin :
       {canonical, std::string(64, 'a'), std::string(64, 'A'), "SHA256:" + colons}) {
    auto normalized = normalize_fingerprint(pin);
    ASSERT_TRUE(normalized) << pin;
    EXPECT_EQ(*normalized, canonical) << pin;
  }
  EXPECT_FALSE(normalize_fingerprint("sha256:abc"));
  EXPECT_FALSE(normalize_fingerprint("sha256:" + std::string(64, 'g')));
  EXPECT_FALSE(normalize_fingerprint(""));
}

TEST(Crypto, Ed25519SignaturesVerifyOnlyForTheSignedMessageAndKey) {
  auto key = generate_ed25519();
  auto other = generate_ed25519();
  ASSERT_TRUE(key && other);
  auto signature = sign_ed25519(key->get(), "kill pid 42");
  ASSERT_TRUE(signature);
  auto public_key = load_public_key_pem(public_key_pem(key->get()));
  ASSERT_TRUE(public_key);
  EXPECT_TRUE(verify_ed25519(public_key->get(), "kill pid 42", *signature));
  EXPECT_FALSE(verify_ed25519(public_key->get(), "kill pid 43", *signature));
  EXPECT_FALSE(verify_ed25519(other->get(), "kill pid 42", *signature));
  auto tampered = *signature;
  tampered[0] ^= 1;
  EXPECT_FALSE(verify_ed25519(public_key->get(), "kill pid 42", tampered));
}

TEST(Crypto, RandomTokensAreUniqueAndCarryTheirPrefix) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto token = random_token("rpe_");
    EXPECT_TRUE(token.starts_with("rpe_"));
    EXPECT_EQ(token.size(), 4u + 43u);
    EXPECT_TRUE(seen.insert(token).second);
  }
}

TEST(Crypto, UuidsAreVersion4) {
  const auto id = random_uuid();
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');
  EXPECT_TRUE(std::string("89ab").find(id[19]) != std::string::npos);
}

TEST(Crypto, GarbagePemIsAnErrorNotACrash) {
  EXPECT_FALSE(
      load_certificate_pem("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"));
  EXPECT_FALSE(load_csr_pem(""));
  EXPECT_FALSE(load_private_key_pem(std::string(10000, 'x')));
}

}  // namespace
}  // namespace riposte::crypto
