// libFuzzer target for enrollment's CSR handling: whatever an unauthenticated client puts in
// `csr_pem` next to a valid token, Enrollment::enroll issues a certificate only for a CSR whose
// signature verifies, and otherwise answers an error that says why; it never crashes or leaks.
// Inputs starting with "-----BEGIN" are taken as PEM; any other bytes are wrapped as the DER of a
// PEM "CERTIFICATE REQUEST", so the fuzzer explores the ASN.1 rather than base64. The controller's
// PKI and store live in a private directory under /dev/shm.
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "controller/gateway/enrollment.h"
#include "controller/gateway/pki.h"
#include "controller/store/sqlite_store.h"

namespace fs = std::filesystem;
using namespace riposte;
using namespace riposte::controller;

namespace {

struct Controller {
  Controller() {
    dir = fs::path("/dev/shm") / ("riposte-fuzz-csr-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    pki.emplace(Pki::load_or_create(dir, {}, clock).value());
    store = std::move(SqliteStore::open(dir / "riposte.db").value());
    enrollment.emplace(*store, *pki, clock);
    renew();
  }
  void renew() {
    token = enrollment->create_token(Enrollment::kMaxUses, 3'600'000, "fuzz").value().secret;
    uses = 0;
  }
  fs::path dir;
  SystemClock clock;
  std::optional<Pki> pki;
  std::unique_ptr<SqliteStore> store;
  std::optional<Enrollment> enrollment;
  std::string token;
  int uses = 0;
};

std::string as_pem(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (text.rfind("-----BEGIN", 0) == 0) return text;
  std::string b64(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), data, static_cast<int>(size));
  b64.resize(static_cast<std::size_t>(n));
  std::string pem = "-----BEGIN CERTIFICATE REQUEST-----\n";
  for (std::size_t at = 0; at < b64.size(); at += 64) pem += b64.substr(at, 64) + "\n";
  return pem + "-----END CERTIFICATE REQUEST-----\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Controller controller;
  auto grant = controller.enrollment->enroll({controller.token, as_pem(data, size), "fuzz-host"});
  if (grant) {
    if (grant->certificate_pem.empty() || grant->agent_id.empty()) __builtin_trap();
    if (++controller.uses >= Enrollment::kMaxUses - 1) controller.renew();
  } else if (grant.error().message.empty()) {
    __builtin_trap();  // every refusal says why
  }
  return 0;
}
