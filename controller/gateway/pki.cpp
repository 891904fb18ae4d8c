#include "controller/gateway/pki.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include "common/secure_file.h"
#include "protocol/version.h"

namespace riposte::controller {

namespace fs = std::filesystem;

namespace {

constexpr long kDay = 24L * 3600;
constexpr long kCaLifetime = 3650 * kDay;
constexpr long kServerLifetime = 825 * kDay;
constexpr long kAgentLifetime = 365 * kDay;

Error failure(std::string_view what) {
  return Error{fmt::format("{}: {}", what, crypto::openssl_error())};
}

bool add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A fresh certificate with a random 127-bit serial, validity from one hour ago (clock skew)
// for `lifetime` seconds, subject CN = `common_name`.
crypto::X509Ptr new_certificate(const Clock& clock, long lifetime, const std::string& common_name,
                                EVP_PKEY* subject_key) {
  crypto::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  auto serial = crypto::random_bytes(16);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  time_t now = clock.now_unix_ms() / 1000;
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -3600, &now);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, lifetime, &now);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("Riposte"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_pubkey(cert.get(), subject_key);
  return cert;
}

Result<crypto::PkeyPtr> load_or_generate_key(const fs::path& path, bool ed25519,
                                             std::vector<std::string>* created) {
  if (fs::exists(path)) {
    auto pem = read_file(path);
    if (!pem) return pem.error();
    auto key = crypto::load_private_key_pem(*pem);
    if (!key) return Error{fmt::format("{}: {}", path.string(), key.error().message)};
    return key;
  }
  auto key = ed25519 ? crypto::generate_ed25519() : crypto::generate_ec_p256();
  if (!key) return key.error();
  if (auto s = write_file_atomic(path, crypto::private_key_pem(key->get()), 0600); !s)
    return s.error();
  if (created) created->push_back(path.filename().string());
  return key;
}

std::string san_entry(const std::string& name) {
  in6_addr v6{};
  in_addr v4{};
  if (inet_pton(AF_INET, name.c_str(), &v4) == 1 || inet_pton(AF_INET6, name.c_str(), &v6) == 1) {
    return "IP:" + name;
  }
  return "DNS:" + name;
}

}  // namespace

Result<Pki> Pki::load_or_create(const fs::path& data_dir,
                                const std::vector<std::string>& server_names, const Clock& clock,
                                std::vector<std::string>* created) {
  if (auto s = ensure_private_directory(data_dir); !s) return s.error();
  Pki pki;
  pki.clock_ = &clock;
  pki.ca_path_ = data_dir / kCaCert;

  // CA: key and self-signed certificate are created together or not at all, so a half-made CA
  // (key without certificate) is an error rather than silently replaced.
  const bool have_ca_key = fs::exists(data_dir / kCaKey);
  const bool have_ca_cert = fs::exists(pki.ca_path_);
  if (have_ca_key != have_ca_cert) {
    return Error{fmt::format(
        "{} has {} but not {}; restore the missing file or move the data "
        "directory away to start over",
        data_dir.string(), have_ca_key ? kCaKey : kCaCert, have_ca_key ? kCaCert : kCaKey)};
  }
  auto ca_key = load_or_generate_key(data_dir / kCaKey, false, created);
  if (!ca_key) return ca_key.error();
  pki.ca_key_ = std::move(*ca_key);
  if (have_ca_cert) {
    auto pem = read_file(pki.ca_path_);
    if (!pem) return pem.error();
    auto cert = crypto::load_certificate_pem(*pem);
    if (!cert) return Error{fmt::format("{}: {}", pki.ca_path_.string(), cert.error().message)};
    pki.ca_cert_ = std::move(*cert);
    pki.ca_pem_ = *pem;
  } else {
    auto cert = new_certificate(clock, kCaLifetime, "Riposte CA", pki.ca_key_.get());
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    if (!add_extension(cert.get(), cert.get(), NID_basic_constraints,
                       "critical,CA:TRUE,pathlen:0") ||
        !add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
        X509_sign(cert.get(), pki.ca_key_.get(), EVP_sha256()) <= 0) {
      return failure("cannot create the CA certificate");
    }
    pki.ca_pem_ = crypto::certificate_pem(cert.get());
    pki.ca_cert_ = std::move(cert);
    if (auto s = write_file_atomic(pki.ca_path_, pki.ca_pem_, 0644); !s) return s.error();
    if (created) created->push_back(kCaCert);
  }
  pki.ca_fingerprint_ = crypto::certificate_fingerprint(pki.ca_cert_.get());

  // Server certificate.
  auto server_key = load_or_generate_key(data_dir / kServerKey, false, created);
  if (!server_key) return server_key.error();
  pki.server_key_pem_ = crypto::private_key_pem(server_key->get());
  const fs::path server_path = data_dir / kServerCert;
  if (fs::exists(server_path)) {
    auto pem = read_file(server_path);
    if (!pem) return pem.error();
    pki.server_pem_ = *pem;
  } else {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    std::vector<std::string> names = {"localhost", "127.0.0.1", "::1"};
    if (host[0] != '\0') names.emplace_back(host);
    names.insert(names.end(), server_names.begin(), server_names.end());
    std::string san;
    for (const auto& n : names) {
      if (!san.empty()) san += ',';
      san += san_entry(n);
    }
    auto cert = new_certificate(clock, kServerLifetime, "riposte-controller", server_key->get());
    X509_set_issuer_name(cert.get(), X509_get_subject_name(pki.ca_cert_.get()));
    if (!add_extension(cert.get(), pki.ca_cert_.get(), NID_basic_constraints,
                       "critical,CA:FALSE") ||
        !add_extension(cert.get(), pki.ca_cert_.get(), NID_key_usage,
                       "critical,digitalSignature") ||
        !add_extension(cert.get(), pki.ca_cert_.get(), NID_ext_key_usage, "serverAuth") ||
        !add_extension(cert.get(), pki.ca_cert_.get(), NID_subject_alt_name, san) ||
        !add_extension(cert.get(), pki.ca_cert_.get(), NID_authority_key_identifier,
                       "keyid:always") ||
        X509_sign(cert.get(), pki.ca_key_.get(), EVP_sha256()) <= 0) {
      return failure("cannot create the server certificate");
    }
    pki.server_pem_ = crypto::certificate_pem(cert.get());
    if (auto s = write_file_atomic(server_path, pki.server_pem_, 0644); !s) return s.error();
    if (created) created->push_back(kServerCert);
  }

  // Action-signing key.
  auto action_key = load_or_generate_key(data_dir / kActionKey, true, created);
  if (!action_key) return action_key.error();
  pki.action_key_ = std::move(*action_key);
  pki.action_public_pem_ = crypto::public_key_pem(pki.action_key_.get());
  const fs::path action_pub = data_dir / kActionPublicKey;
  if (!fs::exists(action_pub)) {
    if (auto s = write_file_atomic(action_pub, pki.action_public_pem_, 0644); !s) return s.error();
  }
  return pki;
}

Result<IssuedCertificate> Pki::issue_agent_certificate(const std::string& csr_pem,
                                                       const std::string& agent_id) const {
  auto csr = crypto::load_csr_pem(csr_pem);
  if (!csr) return Error{"CSR: " + csr.error().message};
  crypto::PkeyPtr key(X509_REQ_get_pubkey(csr->get()));
  if (!key) return Error{"CSR carries no public key"};
  if (X509_REQ_verify(csr->get(), key.get()) != 1) {
    return Error{"CSR signature does not verify (the requester must hold the private key)"};
  }
  const int type = EVP_PKEY_get_base_id(key.get());
  if (type == EVP_PKEY_EC) {
    char group[64] = {};
    std::size_t length = 0;
    EVP_PKEY_get_utf8_string_param(key.get(), "group", group, sizeof(group), &length);
    if (std::string_view(group) != "prime256v1") {
      return Error{fmt::format("CSR key curve {} is not accepted; use P-256", group)};
    }
  } else if (type != EVP_PKEY_ED25519) {
    return Error{"CSR key type is not accepted; use EC P-256 or Ed25519"};
  }

  auto cert = new_certificate(*clock_, kAgentLifetime, "riposte-agent " + agent_id, key.get());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert_.get()));
  const std::string san = fmt::format("URI:{}{}", kAgentUriPrefix, agent_id);
  if (!add_extension(cert.get(), ca_cert_.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_extension(cert.get(), ca_cert_.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_extension(cert.get(), ca_cert_.get(), NID_ext_key_usage, "clientAuth") ||
      !add_extension(cert.get(), ca_cert_.get(), NID_subject_alt_name, san) ||
      !add_extension(cert.get(), ca_cert_.get(), NID_authority_key_identifier, "keyid:always") ||
      X509_sign(cert.get(), ca_key_.get(), EVP_sha256()) <= 0) {
    return failure("cannot issue the agent certificate");
  }
  return IssuedCertificate{crypto::certificate_pem(cert.get()),
                           crypto::certificate_serial_hex(cert.get()),
                           crypto::certificate_fingerprint(cert.get())};
}

}  // namespace riposte::controller
