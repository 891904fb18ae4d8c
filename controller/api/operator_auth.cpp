#include "controller/api/operator_auth.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "protocol/crypto.h"

namespace riposte::controller {

namespace {

constexpr std::array<std::string_view, 5> kRoles = {"viewer", "analyst", "responder", "admin",
                                                    "ingest"};

// Names appear in audit entries, approvals and reports: printable, short, no spaces.
Status check_operator_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return Error{"operator name must be 1 to 64 characters"};
  const bool plain = std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@';
  });
  if (!plain) {
    return Error{fmt::format("operator name '{}' may hold only letters, digits and . _ - @", name)};
  }
  // "controller" is who the controller acts as (runs a trigger starts, expiries): an operator
  // of that name would be mistaken for it, e.g. escape the four-eyes rule on runs it starts.
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower == "controller")
    return Error{fmt::format("operator name '{}' is reserved for the controller itself", name)};
  return ok_status();
}

}  // namespace

std::optional<Role> parse_role(std::string_view name) {
  for (std::size_t i = 0; i < kRoles.size(); ++i) {
    if (kRoles[i] == name) return static_cast<Role>(i);
  }
  return std::nullopt;
}

std::string_view role_name(Role role) { return kRoles[static_cast<std::size_t>(role)]; }

bool has_role(const ApiTokenRecord& caller, Role needed) {
  const auto role = parse_role(caller.role);
  if (role == Role::ingest || needed == Role::ingest) return false;
  return role ? *role >= needed : needed == Role::viewer;
}

bool is_integration(const ApiTokenRecord& caller) { return caller.role == "ingest"; }

bool may_submit_alerts(const ApiTokenRecord& caller) {
  return is_integration(caller) || has_role(caller, Role::analyst);
}

OperatorAuth::OperatorAuth(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

Result<NewApiToken> OperatorAuth::create_token(const std::string& name, const std::string& role) {
  NewApiToken out;
  out.secret = crypto::random_token("rpt_");
  out.record = ApiTokenRecord{crypto::random_uuid(), name, role, crypto::sha256_hex(out.secret),
                              clock_.now_unix_ms()};
  if (auto s = store_.insert_api_token(out.record); !s) return s.error();
  return out;
}

Result<NewApiToken> OperatorAuth::create_operator(const std::string& name, const std::string& role,
                                                  const std::string& created_by) {
  if (role == role_name(Role::ingest))
    return Error{"integrations are created with `riposte integrations create NAME --max-mode M`"};
  if (!parse_role(role)) return Error{fmt::format("role '{}' is not one of {}", role, kRoleNames)};
  return insert(name, role, "", created_by);
}

Result<NewApiToken> OperatorAuth::create_integration(const std::string& name,
                                                     const std::string& max_mode,
                                                     const std::string& created_by) {
  if (max_mode != "simulate" && max_mode != "approve" && max_mode != "auto")
    return Error{fmt::format("max mode '{}' is not one of simulate, approve, auto", max_mode)};
  return insert(name, std::string(role_name(Role::ingest)), max_mode, created_by);
}

Result<NewApiToken> OperatorAuth::insert(const std::string& name, const std::string& role,
                                         const std::string& max_mode,
                                         const std::string& created_by) {
  if (auto s = check_operator_name(name); !s) return s.error();
  const auto now = clock_.now_unix_ms();
  NewApiToken out;
  out.secret = crypto::random_token("rpt_");
  out.record = ApiTokenRecord{crypto::random_uuid(), name, role, crypto::sha256_hex(out.secret),
                              now, std::nullopt, max_mode};
  OperatorRecord op{name, role, now, created_by, std::nullopt, "", 1};
  op.max_mode = max_mode;
  nlohmann::json details{{"role", role}, {"token_id", out.record.id}};
  if (!max_mode.empty()) details["max_mode"] = max_mode;
  const AuditEvent audit{created_by, role == "ingest" ? "integration.created" : "operator.created",
                         name, details.dump()};
  if (auto s = store_.insert_operator(op, out.record, audit, now); !s) return s.error();
  return out;
}

Result<std::vector<OperatorRecord>> OperatorAuth::list_operators() {
  return store_.list_operators();
}

Status OperatorAuth::disable_operator(const std::string& name, const std::string& disabled_by) {
  // The store refuses to disable the last enabled admin, inside the transaction that would.
  return store_.disable_operator(name, AuditEvent{disabled_by, "operator.disabled", name, "{}"},
                                 clock_.now_unix_ms());
}

Result<ApiTokenRecord> OperatorAuth::authenticate(std::string_view header) {
  constexpr std::string_view kBearer = "Bearer ";
  if (header.empty()) return Error{"missing bearer token (Authorization: Bearer <token>)"};
  if (!header.starts_with(kBearer)) return Error{"Authorization header is not a bearer token"};
  const std::string_view secret = header.substr(kBearer.size());
  if (secret.empty()) return Error{"empty bearer token"};
  return authenticate_hash(crypto::sha256_hex(secret));
}

Result<ApiTokenRecord> OperatorAuth::authenticate_hash(const std::string& token_hash) {
  auto found = store_.find_api_token(token_hash);
  if (!found) return found.error();
  if (!found->has_value()) return Error{"invalid API token"};
  if ((*found)->operator_disabled_at_ms)
    return Error{fmt::format("operator {} is disabled", (*found)->name)};
  return std::move(**found);
}

}  // namespace riposte::controller
