#pragma once

// The controller's persistence, behind an interface: SQLite is the embedded default, and nothing
// outside the implementation knows SQL. Every method is safe to call from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "protocol/result.h"

namespace riposte::controller {

struct EnrollmentTokenRecord {
  std::string id;          // public handle, safe to log
  std::string token_hash;  // SHA-256 of the secret; the secret itself is never stored
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  int max_uses = 1;
  int uses = 0;
  std::string created_by;
};

struct AgentFactsRecord {
  std::string hostname;
  std::string os_name;
  std::string os_version;
  std::string kernel;
  std::string arch;
  std::string agent_version;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> mac_addresses;
  std::vector<std::string> capabilities;
  std::uint32_t protocol_version = 0;
};

struct AgentRecord {
  std::string id;
  AgentFactsRecord facts;
  std::string cert_serial;
  std::string cert_fingerprint;
  std::int64_t enrolled_at_ms = 0;
  std::optional<std::int64_t> revoked_at_ms;
  bool connected = false;
  std::optional<std::int64_t> connected_since_ms;
  std::optional<std::int64_t> last_heartbeat_ms;
  std::optional<std::int64_t> last_seen_ms;
  std::string remote_address;
  std::string last_disconnect_reason;
};

struct ApiTokenRecord {
  std::string id;
  std::string name;
  std::string role;  // "admin", "analyst", ...
  std::string token_hash;
  std::int64_t created_at_ms = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual int schema_version() = 0;

  // Enrollment tokens.
  virtual Status insert_enrollment_token(const EnrollmentTokenRecord& token) = 0;
  // In one transaction: finds the token by hash, refuses it if unknown, expired or used up, and
  // otherwise counts one use. The error message says which.
  virtual Result<EnrollmentTokenRecord> consume_enrollment_token(const std::string& token_hash,
                                                                 std::int64_t now_ms) = 0;

  // Agents.
  virtual Status insert_agent(const AgentRecord& agent) = 0;
  virtual Result<std::optional<AgentRecord>> find_agent(const std::string& id) = 0;
  virtual Result<std::vector<AgentRecord>> list_agents() = 0;
  virtual Status record_agent_connected(const std::string& id, const AgentFactsRecord& facts,
                                        const std::string& remote_address, std::int64_t now_ms) = 0;
  virtual Status record_agent_facts(const std::string& id, const AgentFactsRecord& facts,
                                    std::int64_t now_ms) = 0;
  virtual Status record_agent_heartbeat(const std::string& id, std::int64_t now_ms) = 0;
  virtual Status record_agent_disconnected(const std::string& id, const std::string& reason,
                                           std::int64_t now_ms) = 0;
  // After a controller restart no session survives; clears every connected flag.
  virtual Status mark_all_agents_disconnected(const std::string& reason) = 0;
  // Errors if the agent is unknown; revoking twice keeps the first time.
  virtual Status revoke_agent(const std::string& id, std::int64_t now_ms) = 0;
  virtual Result<std::vector<std::string>> revoked_agent_ids() = 0;

  // Operator API tokens.
  virtual Status insert_api_token(const ApiTokenRecord& token) = 0;
  virtual Result<std::optional<ApiTokenRecord>> find_api_token(const std::string& token_hash) = 0;
  virtual Result<int> count_api_tokens() = 0;
};

}  // namespace riposte::controller
