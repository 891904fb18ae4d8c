#pragma once

// The controller daemon assembled: data directory (PKI + store), agent gateway and API on one
// io_context served by a small thread pool. `riposte-controller init|run|up` are thin layers on
// this.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "controller/alerts/asset_map.h"
#include "controller/alerts/intake.h"
#include "controller/alerts/pipeline.h"
#include "controller/api/alert_routes.h"
#include "controller/api/operator_auth.h"
#include "controller/api/router.h"
#include "controller/api/server.h"
#include "controller/config.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/dispatch/live_queries.h"
#include "controller/gateway/agent_gateway.h"
#include "controller/gateway/enrollment.h"
#include "controller/gateway/pki.h"
#include "controller/intel/threat_intel.h"
#include "controller/playbooks/engine.h"
#include "controller/playbooks/webhook.h"
#include "controller/store/open_store.h"

namespace riposte::controller {

struct InitReport {
  std::vector<std::string> created;        // files and records made by this call
  std::optional<std::string> admin_token;  // only when just created
  std::string ca_fingerprint;
  std::filesystem::path ca_certificate;
};

// Creates whatever is missing in the data directory: CA, server certificate, action key, store and
// a first admin API token. Idempotent: a second call creates nothing.
Result<InitReport> initialize_data_dir(const ControllerConfig& config, const Clock& clock);

// DATA_DIR/controller-id, made (a random UUID) the first time.
Result<std::string> load_or_create_controller_id(const std::filesystem::path& data_dir);

class ControllerService {
 public:
  static constexpr const char* kRuntimeFile = "controller.json";
  // This controller's id among those sharing a store (ControllerRecord), made at first start.
  static constexpr const char* kControllerIdFile = "controller-id";
  // How often a controller says it is alive, and after how long without a word the others take
  // its agents for disconnected.
  static constexpr std::int64_t kControllerHeartbeatMs = 5'000;
  static constexpr std::int64_t kControllerSilentAfterMs = 30'000;

  explicit ControllerService(ControllerConfig config);
  ~ControllerService();

  // Opens the data directory and binds both listeners; writes controller.json with the bound
  // addresses. Does not block.
  Status start();
  // Serves until stop() (or a signal handled by the caller) and every thread has returned.
  void run();
  // Thread-safe and signal-safe through asio::post: stops listeners and closes sessions.
  void stop();
  // Re-reads the intel feed files and the asset map (SIGHUP, `riposte intel reload`). All or
  // nothing: on error what was loaded before stays in use.
  Status reload();

  boost::asio::ip::tcp::endpoint agent_endpoint() const { return gateway_->local_endpoint(); }
  boost::asio::ip::tcp::endpoint api_endpoint() const { return api_->local_endpoint(); }
  // Whether the web console's files were found (served at /ui/).
  bool console_installed() const { return console_files_ && console_files_->installed(); }
  const Pki& pki() const { return *pki_; }
  Store& store() { return *store_; }
  Enrollment& enrollment() { return *enrollment_; }
  OperatorAuth& auth() { return *auth_; }
  boost::asio::io_context& io() { return io_; }
  const ControllerConfig& config() const { return config_; }
  PlaybookEngine& engine() { return *engine_; }

 private:
  void schedule_expiry();
  // Records this controller alive every kControllerHeartbeatMs (controller_heartbeat).
  void heartbeat_if_due();

  ControllerConfig config_;
  SystemClock clock_;
  boost::asio::io_context io_;
  std::optional<Pki> pki_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Enrollment> enrollment_;
  std::unique_ptr<OperatorAuth> auth_;
  std::unique_ptr<ActionDispatcher> dispatcher_;
  std::unique_ptr<EvidenceStore> evidence_;
  std::unique_ptr<boost::asio::steady_timer> expiry_timer_;
  std::int64_t last_trim_ms_ = 0;
  static constexpr std::int64_t kTrimEveryMs = 30'000;
  ControllerRecord self_;  // id, addresses; what controller_heartbeat records
  std::int64_t last_heartbeat_ms_ = 0;  // on the expiry timer's strand only
  // When sessions held elsewhere were last looked for (heartbeat_if_due), same strand.
  std::int64_t sessions_checked_ms_ = 0;
  bool store_shared_ = false;  // PostgreSQL: other controllers may write the store too
  std::unique_ptr<AgentGateway> gateway_;
  std::unique_ptr<ThreatIntel> intel_;
  std::unique_ptr<AssetCatalog> assets_;
  // Declared before the pipeline, which tells it about alerts: destroyed after it.
  std::unique_ptr<WebhookClient> webhooks_;
  std::unique_ptr<PlaybookEngine> engine_;
  std::unique_ptr<LiveQueries> live_queries_;
  std::unique_ptr<AlertPipeline> pipeline_;
  std::unique_ptr<AlertIntake> intake_;
  std::unique_ptr<AlertApi> alert_api_;
  std::unique_ptr<ConsoleFiles> console_files_;
  std::unique_ptr<ConsoleSessions> console_sessions_;
  std::unique_ptr<ApiRouter> router_;
  std::unique_ptr<ApiServer> api_;
};

// "127.0.0.1:7443" for display: an unspecified bind address is shown as loopback.
std::string connectable_address(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace riposte::controller
