#pragma once

// Shared crypto helpers: RAII owners for OpenSSL objects, hashing, randomness, PEM and
// certificate inspection. Used by both the controller and the agent.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace riposte::crypto {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509ReqDeleter {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using X509ReqPtr = std::unique_ptr<X509_REQ, X509ReqDeleter>;

// The last OpenSSL error queue entry as text (and clears the queue).
std::string openssl_error();

std::vector<std::uint8_t> random_bytes(std::size_t count);
std::string hex(std::span<const std::uint8_t> bytes);
std::string sha256_hex(std::string_view data);

// Random URL-safe secret with a readable prefix, e.g. "rpe_3kq...". 256 bits of entropy.
std::string random_token(std::string_view prefix);
// A random RFC 4122 version 4 UUID.
std::string random_uuid();
// A UUID-shaped id derived from `name` (SHA-256 based, version nibble 5): the same name always
// gives the same id, so a retried operation can find what it made the first time.
std::string name_uuid(std::string_view name);

// Key generation.
Result<PkeyPtr> generate_ec_p256();
Result<PkeyPtr> generate_ed25519();

// PEM conversion.
std::string private_key_pem(EVP_PKEY* key);
std::string public_key_pem(EVP_PKEY* key);
std::string certificate_pem(X509* cert);
Result<PkeyPtr> load_private_key_pem(std::string_view pem);
Result<PkeyPtr> load_public_key_pem(std::string_view pem);
Result<X509Ptr> load_certificate_pem(std::string_view pem);
Result<X509ReqPtr> load_csr_pem(std::string_view pem);

// "sha256:<64 lowercase hex>" of the certificate's DER encoding.
std::string certificate_fingerprint(X509* cert);
// Accepts "sha256:HEX", bare HEX, upper case and colon-separated forms; returns the canonical form.
Result<std::string> normalize_fingerprint(std::string_view pin);

// The agent id carried in a certificate's URI SAN (urn:riposte:agent:<id>), or an error.
Result<std::string> agent_id_from_certificate(X509* cert);
std::string certificate_serial_hex(X509* cert);

// Builds a certificate signing request for `key` with the given common name, signed by `key`.
Result<X509ReqPtr> make_csr(EVP_PKEY* key, std::string_view common_name);
std::string csr_pem(X509_REQ* csr);

// Incremental SHA-256 for data that arrives in pieces (evidence files, uploads).
class Sha256 {
 public:
  Sha256();
  // False if OpenSSL could not start the digest; update() then fails.
  bool ready() const { return ready_; }
  bool update(const void* data, std::size_t size);
  std::string hex_digest();  // ends the hash

 private:
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx_;
  bool ready_ = false;
};

// SHA-256 of a whole file, read in large blocks.
Result<std::string> sha256_file(const std::string& path);

// Ed25519 signatures (used for actions).
Result<std::vector<std::uint8_t>> sign_ed25519(EVP_PKEY* key, std::string_view message);
bool verify_ed25519(EVP_PKEY* public_key, std::string_view message,
                    std::span<const std::uint8_t> signature);

}  // namespace riposte::crypto
