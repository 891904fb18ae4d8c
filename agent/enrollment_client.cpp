#include "agent/enrollment_client.h"

#include <fmt/format.h>
#include <openssl/x509.h>

#include <nlohmann/json.hpp>

#include "protocol/crypto.h"
#include "protocol/https_client.h"
#include "protocol/tls.h"

namespace riposte::agent {

namespace {

// Everything the controller sent must fit together before anything is written to disk.
Status check_grant(const AgentState& state, EVP_PKEY* our_key,
                   const std::string& pinned_fingerprint) {
  auto ca = crypto::load_certificate_pem(state.ca_certificate_pem);
  if (!ca) return Error{"controller sent an unreadable CA certificate"};
  if (crypto::certificate_fingerprint(ca->get()) != pinned_fingerprint) {
    return Error{"controller sent a CA certificate that does not match the pin"};
  }
  auto cert = crypto::load_certificate_pem(state.certificate_pem);
  if (!cert) return Error{"controller sent an unreadable agent certificate"};
  if (X509_check_private_key(cert->get(), our_key) != 1) {
    return Error{"issued certificate is not for this agent's key"};
  }
  crypto::PkeyPtr ca_key(X509_get_pubkey(ca->get()));
  if (X509_verify(cert->get(), ca_key.get()) != 1)
    return Error{"issued certificate is not signed by the CA"};
  auto id = crypto::agent_id_from_certificate(cert->get());
  if (!id || *id != state.agent_id) return Error{"issued certificate does not carry the agent id"};
  if (auto key = crypto::load_public_key_pem(state.action_public_key_pem);
      !key || EVP_PKEY_get_id(key->get()) != EVP_PKEY_ED25519) {
    return Error{"controller sent no valid Ed25519 action-signing key"};
  }
  return ok_status();
}

}  // namespace

Result<AgentState> enroll(const EnrollOptions& options, platform::SystemFactsSource& facts_source) {
  if (is_enrolled(options.state_dir) && !options.force) {
    auto existing = load_agent_state(options.state_dir);
    return Error{fmt::format("{} already holds enrolled agent {}; use --force to enroll again",
                             options.state_dir.string(),
                             existing ? existing->agent_id : "(unreadable)")};
  }
  auto pin = crypto::normalize_fingerprint(options.ca_pin);
  if (!pin) return pin.error();
  if (options.token.empty()) return Error{"--token is empty"};

  const auto facts = facts_source.collect();
  auto key = crypto::generate_ec_p256();
  if (!key) return key.error();
  auto csr =
      crypto::make_csr(key->get(), facts.hostname.empty() ? "riposte-agent" : facts.hostname);
  if (!csr) return csr.error();

  auto tls = tls::make_tls13_context();
  auto pinned_ca_pem = std::make_shared<std::string>();
  if (auto s = tls::trust_pinned_ca(tls, *pin, pinned_ca_pem); !s) return s.error();

  HttpsRequest request;
  request.host = options.controller.host;
  request.port = options.controller.port;
  request.method = "POST";
  request.target = "/api/v1/enroll";
  request.verify_host_name = false;  // trust comes from the pinned CA and the serverAuth purpose
  request.body = nlohmann::json{{"token", options.token},
                                {"csr_pem", crypto::csr_pem(csr->get())},
                                {"hostname", facts.hostname}}
                     .dump();
  auto response = https_request(request, tls);
  if (!response) {
    if (response.error().message.find("certificate verify failed") != std::string::npos) {
      return Error{fmt::format("{} (the controller's CA does not match --ca-pin {})",
                               response.error().message, *pin)};
    }
    return response.error();
  }
  auto body = nlohmann::json::parse(response->body, nullptr, false);
  if (response->status != 201) {
    const std::string reason =
        body.is_object() && body.contains("error") && body["error"].is_string()
            ? body["error"].get<std::string>()
            : fmt::format("HTTP {}", response->status);
    return Error{"controller refused enrollment: " + reason};
  }
  if (!body.is_object()) return Error{"controller sent an unreadable enrollment answer"};

  AgentState state;
  state.dir = options.state_dir;
  state.controller_api = options.controller.to_string();
  state.ca_fingerprint = *pin;
  state.key_pem = crypto::private_key_pem(key->get());
  try {
    state.agent_id = body.at("agent_id").get<std::string>();
    state.certificate_pem = body.at("certificate_pem").get<std::string>();
    state.ca_certificate_pem = body.at("ca_certificate_pem").get<std::string>();
    state.action_public_key_pem = body.at("action_public_key_pem").get<std::string>();
    const auto host = body.value("agent_gateway_host", std::string());
    const auto port = body.at("agent_gateway_port").get<unsigned>();
    if (port == 0 || port > 65535) return Error{"controller sent no agent gateway port"};
    state.gateway =
        HostPort{host.empty() ? options.controller.host : host, static_cast<std::uint16_t>(port)};
  } catch (const nlohmann::json::exception& e) {
    return Error{fmt::format("controller sent an incomplete enrollment answer: {}", e.what())};
  }
  if (!options.gateway_override.empty()) {
    auto gateway = parse_host_port(options.gateway_override);
    if (!gateway) return Error{"--gateway: " + gateway.error().message};
    state.gateway = *gateway;
  }
  if (auto s = check_grant(state, key->get(), *pin); !s) return s.error();
  if (auto s = save_agent_state(state); !s) return s.error();
  return state;
}

}  // namespace riposte::agent
