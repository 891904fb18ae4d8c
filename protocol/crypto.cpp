#include "protocol/crypto.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "protocol/version.h"

namespace riposte::crypto {

namespace {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

BioPtr memory_bio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

Error openssl_failure(std::string_view what) {
  return Error{fmt::format("{}: {}", what, openssl_error())};
}

}  // namespace

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

std::vector<std::uint8_t> random_bytes(std::size_t count) {
  std::vector<std::uint8_t> bytes(count);
  if (RAND_bytes(bytes.data(), static_cast<int>(count)) != 1) {
    // Without a working CSPRNG nothing we issue would be safe; this is not recoverable.
    throw std::runtime_error("RAND_bytes failed: " + openssl_error());
  }
  return bytes;
}

std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::uint8_t digest[32];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return hex(digest);
}

std::string random_token(std::string_view prefix) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto bytes = random_bytes(43);  // 43 chars of 6 bits = 258 bits
  std::string token(prefix);
  for (auto b : bytes) token.push_back(kAlphabet[b & 63]);
  return token;
}

std::string random_uuid() {
  auto b = random_bytes(16);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  const auto h = hex(b);
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20, 12));
}

std::string name_uuid(std::string_view name) {
  auto h = sha256_hex(name);
  h[12] = '5';
  static constexpr char kVariant[] = "89ab";
  h[16] = kVariant[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4),
                     h.substr(16, 4), h.substr(20, 12));
}

Result<PkeyPtr> generate_ec_p256() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return openssl_failure("cannot generate an EC P-256 key");
  return key;
}

Result<PkeyPtr> generate_ed25519() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return openssl_failure("cannot generate an Ed25519 key");
  return key;
}

std::string private_key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_contents(bio.get());
}

std::string public_key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key);
  return bio_contents(bio.get());
}

std::string certificate_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_contents(bio.get());
}

std::string csr_pem(X509_REQ* csr) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), csr);
  return bio_contents(bio.get());
}

Result<PkeyPtr> load_private_key_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return openssl_failure("not a PEM private key");
  return key;
}

Result<PkeyPtr> load_public_key_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return openssl_failure("not a PEM public key");
  return key;
}

Result<X509Ptr> load_certificate_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return openssl_failure("not a PEM certificate");
  return cert;
}

Result<X509ReqPtr> load_csr_pem(std::string_view pem) {
  auto bio = memory_bio(pem);
  X509ReqPtr csr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!csr) return openssl_failure("not a PEM certificate signing request");
  return csr;
}

std::string certificate_fingerprint(X509* cert) {
  std::uint8_t digest[32];
  unsigned int length = sizeof(digest);
  X509_digest(cert, EVP_sha256(), digest, &length);
  return "sha256:" + hex(std::span(digest, length));
}

Result<std::string> normalize_fingerprint(std::string_view pin) {
  std::string_view rest = pin;
  if (rest.size() >= 7) {
    std::string head(rest.substr(0, 7));
    std::transform(head.begin(), head.end(), head.begin(), ::tolower);
    if (head == "sha256:") rest.remove_prefix(7);
  }
  std::string digits;
  for (char c : rest) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Error{fmt::format("CA pin '{}' is not sha256:<64 hex digits>", pin)};
    }
    digits.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (digits.size() != 64) {
    return Error{fmt::format("CA pin '{}' is not sha256:<64 hex digits> (has {} digits)", pin,
                             digits.size())};
  }
  return "sha256:" + digits;
}

Result<std::string> agent_id_from_certificate(X509* cert) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return Error{"certificate has no subjectAltName"};
  std::string found;
  int count = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const auto* uri = name->d.uniformResourceIdentifier;
    std::string_view value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                           static_cast<std::size_t>(ASN1_STRING_length(uri)));
    if (value.starts_with(kAgentUriPrefix)) {
      found = std::string(value.substr(kAgentUriPrefix.size()));
      ++count;
    }
  }
  GENERAL_NAMES_free(names);
  if (count == 0) return Error{"certificate carries no urn:riposte:agent: URI"};
  if (count > 1) return Error{"certificate carries more than one agent URI"};
  if (found.empty()) return Error{"certificate carries an empty agent id"};
  return found;
}

std::string certificate_serial_hex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* text = BN_bn2hex(bn);
  std::string serial(text);
  OPENSSL_free(text);
  BN_free(bn);
  std::transform(serial.begin(), serial.end(), serial.begin(), ::tolower);
  return serial;
}

Result<X509ReqPtr> make_csr(EVP_PKEY* key, std::string_view common_name) {
  X509ReqPtr csr(X509_REQ_new());
  X509_REQ_set_version(csr.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(csr.get());
  const std::string cn(common_name);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_REQ_set_pubkey(csr.get(), key);
  // Ed25519 keys sign without a separate digest.
  const EVP_MD* md = EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  if (X509_REQ_sign(csr.get(), key, md) <= 0) return openssl_failure("cannot sign the CSR");
  return csr;
}

Sha256::Sha256()
    : ctx_(EVP_MD_CTX_new()),
      ready_(ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1) {}

bool Sha256::update(const void* data, std::size_t size) {
  return ready_ && EVP_DigestUpdate(ctx_.get(), data, size) == 1;
}

std::string Sha256::hex_digest() {
  std::uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx_.get(), digest, &length);
  return hex(std::span(digest, length));
}

Result<std::string> sha256_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return Error{fmt::format("cannot open {}: {}", path, std::strerror(errno))};
  Sha256 sha;
  std::vector<char> buffer(1 << 20);
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) sha.update(buffer.data(), n);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return Error{fmt::format("cannot read {}", path)};
  return sha.hex_digest();
}

Result<std::vector<std::uint8_t>> sign_ed25519(EVP_PKEY* key, std::string_view message) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, data, message.size()) != 1) {
    return openssl_failure("cannot sign");
  }
  std::vector<std::uint8_t> signature(length);
  if (EVP_DigestSign(ctx.get(), signature.data(), &length, data, message.size()) != 1) {
    return openssl_failure("cannot sign");
  }
  signature.resize(length);
  return signature;
}

bool verify_ed25519(EVP_PKEY* public_key, std::string_view message,
                    std::span<const std::uint8_t> signature) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, public_key) != 1) return false;
  const bool ok =
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace riposte::crypto
