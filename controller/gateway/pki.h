#pragma once

// The controller's PKI: its CA (ECDSA P-256), its TLS server certificate, and the Ed25519 key that
// signs response actions (deliberately separate from every TLS key). All live in the data
// directory; private keys are written with mode 0600.

#include <filesystem>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "protocol/crypto.h"

namespace riposte::controller {

struct IssuedCertificate {
  std::string certificate_pem;
  std::string serial_hex;
  std::string fingerprint;
};

class Pki {
 public:
  // Loads the PKI from `data_dir`, creating whatever is missing. `created` reports what was made.
  // `server_names` are extra DNS names or IP addresses for the server certificate (localhost,
  // 127.0.0.1, ::1 and the host name are always included).
  static Result<Pki> load_or_create(const std::filesystem::path& data_dir,
                                    const std::vector<std::string>& server_names,
                                    const Clock& clock,
                                    std::vector<std::string>* created = nullptr);

  // Signs an agent's CSR. The CSR's own signature must verify (proof the requester holds the key);
  // its subject and extensions are ignored: the certificate says only what the controller decides.
  Result<IssuedCertificate> issue_agent_certificate(const std::string& csr_pem,
                                                    const std::string& agent_id) const;

  const std::string& ca_certificate_pem() const { return ca_pem_; }
  const std::string& ca_fingerprint() const { return ca_fingerprint_; }
  // Server leaf followed by the CA, as presented in TLS handshakes.
  std::string server_chain_pem() const { return server_pem_ + ca_pem_; }
  const std::string& server_key_pem() const { return server_key_pem_; }
  const std::string& action_public_key_pem() const { return action_public_pem_; }
  EVP_PKEY* action_key() const { return action_key_.get(); }
  const std::filesystem::path& ca_certificate_path() const { return ca_path_; }

  // File names inside the data directory.
  static constexpr const char* kCaCert = "ca.pem";
  static constexpr const char* kCaKey = "ca.key";
  static constexpr const char* kServerCert = "server.pem";
  static constexpr const char* kServerKey = "server.key";
  static constexpr const char* kActionKey = "action.key";
  static constexpr const char* kActionPublicKey = "action.pub";

 private:
  Pki() = default;

  const Clock* clock_ = nullptr;
  std::filesystem::path ca_path_;
  crypto::PkeyPtr ca_key_;
  crypto::X509Ptr ca_cert_;
  std::string ca_pem_;
  std::string ca_fingerprint_;
  std::string server_pem_;
  std::string server_key_pem_;
  crypto::PkeyPtr action_key_;
  std::string action_public_pem_;
};

}  // namespace riposte::controller
