#include "controller/controller_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/address.h"
#include "common/allocator_tuning.h"
#include "common/secure_file.h"
#include "protocol/crypto.h"

namespace riposte::controller {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

Result<tcp::endpoint> resolve_listen(const std::string& text, std::string_view what) {
  auto hp = parse_host_port(text, /*allow_port_zero=*/true);
  if (!hp) return Error{fmt::format("{}: {}", what, hp.error().message)};
  boost::system::error_code ec;
  auto address = asio::ip::make_address(hp->host == "localhost" ? "127.0.0.1" : hp->host, ec);
  if (ec) return Error{fmt::format("{}: '{}' is not an IP address to listen on", what, hp->host)};
  return tcp::endpoint(address, hp->port);
}

// The console's files: as configured, else where the build and the packages put them beside
// the binary (build/release/bin/../share/riposte/web, /usr/bin/../share/riposte/web).
std::filesystem::path console_web_root(const std::filesystem::path& configured) {
  if (!configured.empty()) return configured;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "/usr/share/riposte/web";
  return (self.parent_path().parent_path() / "share/riposte/web").lexically_normal();
}

}  // namespace

std::string connectable_address(const tcp::endpoint& endpoint) {
  auto address = endpoint.address();
  if (address.is_unspecified()) {
    address = address.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                              : asio::ip::address(asio::ip::address_v4::loopback());
  }
  return HostPort{address.to_string(), endpoint.port()}.to_string();
}

Result<InitReport> initialize_data_dir(const ControllerConfig& config, const Clock& clock) {
  InitReport report;
  auto pki = Pki::load_or_create(config.data_dir, config.server_names, clock, &report.created);
  if (!pki) return pki.error();
  auto location = parse_store_location(config.database, config.data_dir);
  if (!location) return location.error();
  auto store = open_store(*location);
  if (!store) return store.error();
  auto tokens = (*store)->count_api_tokens();
  if (!tokens) return tokens.error();
  if (*tokens == 0) {
    OperatorAuth auth(**store, clock);
    auto admin = auth.create_token("admin", "admin");
    if (!admin) return admin.error();
    report.admin_token = admin->secret;
    report.created.push_back("admin API token");
  }
  report.ca_fingerprint = pki->ca_fingerprint();
  report.ca_certificate = pki->ca_certificate_path();
  return report;
}

ControllerService::ControllerService(ControllerConfig config) : config_(std::move(config)) {}

ControllerService::~ControllerService() {
  std::error_code ignored;
  std::filesystem::remove(config_.data_dir / kRuntimeFile, ignored);
}

Status ControllerService::start() {
  auto agent_listen = resolve_listen(config_.agent_listen, "agent_listen");
  if (!agent_listen) return agent_listen.error();
  auto api_listen = resolve_listen(config_.api_listen, "api_listen");
  if (!api_listen) return api_listen.error();

  auto pki = Pki::load_or_create(config_.data_dir, config_.server_names, clock_);
  if (!pki) return pki.error();
  pki_.emplace(std::move(*pki));
  auto location = parse_store_location(config_.database, config_.data_dir);
  if (!location) return location.error();
  location->connections = config_.database_connections;
  store_shared_ = location->kind == StoreKind::postgresql;
  auto store = open_store(*location);
  if (!store) return store.error();
  store_ = std::move(*store);
  auto controller_id = load_or_create_controller_id(config_.data_dir);
  if (!controller_id) return controller_id.error();
  self_.id = *controller_id;
  self_.started_at_ms = clock_.now_unix_ms();
  store_->set_controller_id(self_.id);
  self_.ca_fingerprint = pki_->ca_fingerprint();
  self_.action_key_fingerprint = "sha256:" + crypto::sha256_hex(pki_->action_public_key_pem());
  // Controllers sharing a database must share their keys (docs/configuration.md): with another
  // CA, agents enrolled elsewhere could not connect here; with another action key, they would
  // refuse every action sent from here.
  auto others = store_->list_controllers();
  if (!others) return others.error();
  for (const auto& other : *others) {
    if (other.id == self_.id) continue;
    const bool same_ca = other.ca_fingerprint.empty() || other.ca_fingerprint == self_.ca_fingerprint;
    const bool same_key = other.action_key_fingerprint.empty() ||
                          other.action_key_fingerprint == self_.action_key_fingerprint;
    if (same_ca && same_key) continue;
    return Error{fmt::format(
        "controller {} ({}) on this database has another {} ({} here, {} there): copy ca.pem, "
        "ca.key, server.pem, server.key and action.key from its data directory before starting "
        "this one (docs/configuration.md, several controllers)",
        other.id, other.api, same_ca ? "action key" : "CA",
        same_ca ? self_.action_key_fingerprint : self_.ca_fingerprint,
        same_ca ? other.action_key_fingerprint : other.ca_fingerprint)};
  }
  // No session survives a restart; stale "online" flags would mislead operators.
  if (auto s = store_->mark_all_agents_disconnected("controller restarted"); !s) return s;
  enrollment_ = std::make_unique<Enrollment>(*store_, *pki_, clock_);
  auth_ = std::make_unique<OperatorAuth>(*store_, clock_);

  GatewayOptions gateway_options;
  gateway_options.listen = *agent_listen;
  gateway_options.max_frame_size = config_.max_frame_size;
  gateway_options.heartbeat_interval_seconds = config_.heartbeat_interval_seconds;
  gateway_options.connection_limits = config_.agent_connection_limits;
  evidence_ = std::make_unique<EvidenceStore>(
      config_.evidence_dir.empty() ? config_.data_dir / "evidence" : config_.evidence_dir, *store_,
      clock_);
  if (auto s = evidence_->open(); !s) return s;
  DispatchOptions dispatch_options;
  dispatch_options.evidence = config_.evidence;
  dispatcher_ =
      std::make_unique<ActionDispatcher>(*store_, pki_->action_key(), clock_, dispatch_options);
  dispatcher_->set_evidence_store(evidence_.get());
  gateway_ = std::make_unique<AgentGateway>(io_, *store_, *pki_, clock_, gateway_options);
  gateway_->set_handlers(dispatcher_.get(), evidence_.get());
  dispatcher_->set_sender([this](const std::string& agent_id, proto::Envelope envelope) {
    return gateway_->send_to(agent_id, std::move(envelope));
  });
  if (auto s = gateway_->start(); !s) return s;
  // With several controllers on one database, an action queued through another one for an
  // agent held here is sent at once (not at the agent's next reconnect).
  if (auto s = store_->watch_queued_actions([this](const std::vector<std::string>& agent_ids) {
        asio::post(io_, [this, agent_ids] {
          const auto held = gateway_->held_agent_ids();
          dispatcher_->queued_elsewhere(agent_ids.empty() ? held : agent_ids, held);
        });
      });
      !s) {
    return s;
  }
  expiry_timer_ = std::make_unique<asio::steady_timer>(io_);
  schedule_expiry();

  intel_ = std::make_unique<ThreatIntel>();
  assets_ = std::make_unique<AssetCatalog>();
  if (auto s = reload(); !s) return s;
  live_queries_ = std::make_unique<LiveQueries>(io_, *store_, *dispatcher_);
  pipeline_ = std::make_unique<AlertPipeline>(
      *store_, *live_queries_, *assets_, clock_,
      AlertPipelineOptions{config_.validation_lookback_days, config_.validation_timeout_ms});
  intake_ = std::make_unique<AlertIntake>(
      *store_, *intel_, *assets_, clock_,
      AlertIntakeOptions{config_.case_window_ms, config_.confidence_thresholds});
  intake_->set_listener([this](const std::vector<std::string>& ids) { pipeline_->enqueue(ids); });

  std::vector<Playbook> playbooks;
  if (!config_.playbooks_dirs.empty()) {
    std::vector<std::string> dirs;
    for (const auto& dir : config_.playbooks_dirs) dirs.push_back(dir.string());
    auto loaded = load_playbook_directories(config_.playbooks_dirs);
    // A playbook with an error must not be skipped quietly: the team believes it is running.
    if (!loaded.errors.empty()) {
      return Error{fmt::format("playbooks in {}: {}", fmt::join(dirs, ", "),
                               fmt::join(loaded.errors, "; "))};
    }
    playbooks = std::move(loaded.playbooks);
    spdlog::info("playbooks: {} loaded from {}", playbooks.size(), fmt::join(dirs, ", "));
  }
  webhooks_ = std::make_unique<WebhookClient>(config_.webhook_ca_file);
  engine_ = std::make_unique<PlaybookEngine>(
      PlaybookEngineDeps{*store_, *dispatcher_, *assets_, config_.autonomy, clock_,
                         [this](const std::string& url, const nlohmann::json& body) -> Status {
                           auto posted = webhooks_->post(url, body);
                           if (!posted) return posted.error();
                           return ok_status();
                         },
                         config_.responder_webhook, config_.webhooks, ""},
      std::move(playbooks));
  dispatcher_->add_observer(
      [this](const std::string& action_id, ActionState) { engine_->action_ended(action_id); });
  if (config_.playbooks_auto_start)
    pipeline_->set_listener([this](const std::string& id) { engine_->alert_ready(id); });
  alert_api_ = std::make_unique<AlertApi>(AlertApiDeps{*store_, *intake_, *intel_, *assets_,
                                                       config_.confidence_thresholds,
                                                       [this] { return reload(); }});

  console_files_ = std::make_unique<ConsoleFiles>(console_web_root(config_.console_web_root));
  console_sessions_ =
      std::make_unique<ConsoleSessions>(*store_, clock_, config_.console_session_ms);
  router_ = std::make_unique<ApiRouter>(ApiRouterDeps{
      *store_, *enrollment_, *auth_, clock_,
      [this](const std::string& id) { gateway_->revoke(id); }, config_.agent_gateway_host,
      gateway_->local_endpoint().port(), dispatcher_.get(), evidence_.get(), alert_api_.get(),
      &config_.autonomy, engine_.get(), config_.max_rule_set_bytes, config_.max_alert_body_bytes,
      [this](MetricsWriter& w) {
        w.gauge("riposte_agent_sessions", "Agent sessions open on this controller now.",
                static_cast<double>(gateway_->session_count()));
        const std::string handshakes_help =
            "TLS handshakes completed on the agent gateway: full, or resumed from a session "
            "ticket.";
        w.counter("riposte_agent_handshakes_total", handshakes_help,
                  static_cast<double>(gateway_->handshakes(false)), {{"kind", "full"}});
        w.counter("riposte_agent_handshakes_total", handshakes_help,
                  static_cast<double>(gateway_->handshakes(true)), {{"kind", "resumed"}});
        w.gauge("riposte_agent_tls_sessions_cached",
                "TLS sessions the agent gateway holds for resumption (about one per agent).",
                static_cast<double>(gateway_->cached_tls_sessions()));
        const std::string refused_help =
            "Connections closed at accept by the per-address limits (connection_limits).";
        w.counter("riposte_connections_refused_total", refused_help,
                  static_cast<double>(gateway_->connections_refused()), {{"listener", "agent"}});
        if (api_)
          w.counter("riposte_connections_refused_total", refused_help,
                    static_cast<double>(api_->connections_refused()), {{"listener", "api"}});
      },
      config_.metrics_unauthenticated_from, console_files_.get(), console_sessions_.get(),
      config_.console_public_url});
  ApiServerOptions api_options{*api_listen};
  api_options.max_alert_body_bytes = config_.max_alert_body_bytes;
  api_options.max_rule_set_bytes = config_.max_rule_set_bytes;
  api_options.connection_limits = config_.api_connection_limits;
  api_ = std::make_unique<ApiServer>(io_, *pki_, *router_, api_options);
  if (auto s = api_->start(); !s) return s;
  // Links in notifications open the console's pages.
  const auto console_url = config_.console_public_url.empty()
                               ? "https://" + connectable_address(api_->local_endpoint())
                               : config_.console_public_url;
  engine_->set_link_prefixes(console_url + "/ui/cases/", console_url + "/ui/approvals/");
  // Work left by a previous run of the controller, now that everything it needs is up.
  if (auto s = pipeline_->resume(); !s) return s;
  if (auto s = engine_->resume(); !s) return s;

  const nlohmann::json runtime{
      {"pid", ::getpid()},
      {"agent_gateway", connectable_address(gateway_->local_endpoint())},
      {"api", "https://" + connectable_address(api_->local_endpoint())},
      {"ca_cert", pki_->ca_certificate_path().string()},
      {"ca_fingerprint", pki_->ca_fingerprint()},
  };
  if (auto s = write_file_atomic(config_.data_dir / kRuntimeFile, runtime.dump(2) + "\n", 0644);
      !s) {
    return s;
  }
  self_.agent_gateway = connectable_address(gateway_->local_endpoint());
  self_.api = "https://" + connectable_address(api_->local_endpoint());
  heartbeat_if_due();
  spdlog::info("controller {}: agent gateway on {}, API on https://{}, CA {}", self_.id,
               connectable_address(gateway_->local_endpoint()),
               connectable_address(api_->local_endpoint()), pki_->ca_fingerprint());
  return ok_status();
}

Status ControllerService::reload() {
  if (auto s = intel_->load(config_.intel_feeds, clock_.now_unix_ms()); !s) return s;
  if (auto s = assets_->load(config_.assets_file); !s) return s;
  for (const auto& feed : intel_->feeds()) {
    spdlog::info("intel: feed '{}' ({}, weight {}): {} indicators, {} ranges, {} skipped",
                 feed.config.name, feed.config.format, feed.config.weight, feed.indicators,
                 feed.networks, feed.skipped);
  }
  if (!config_.assets_file.empty()) {
    spdlog::info("assets: {} entries from {}", assets_->current()->entries().size(),
                 config_.assets_file.string());
  }
  return ok_status();
}

void ControllerService::schedule_expiry() {
  // Actions waiting for an agent that never came back end as expired, never executed late.
  expiry_timer_->expires_after(std::chrono::seconds(1));
  expiry_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    dispatcher_->expire_due();
    if (engine_) engine_->tick();
    if (pipeline_) pipeline_->tick();
    if (store_shared_ && live_queries_) live_queries_->look_for_answers_elsewhere();
    heartbeat_if_due();
    // Memory freed after a burst (alert batches, a long report) goes back to the kernel within
    // half a minute; the allocator keeps it otherwise (common/allocator_tuning.h).
    if (const auto now = clock_.now_unix_ms(); now - last_trim_ms_ >= kTrimEveryMs) {
      last_trim_ms_ = now;
      return_freed_memory();
    }
    schedule_expiry();
  });
}

void ControllerService::heartbeat_if_due() {
  const auto now = clock_.now_unix_ms();
  if (self_.agent_gateway.empty() || now - last_heartbeat_ms_ < kControllerHeartbeatMs) return;
  last_heartbeat_ms_ = now;
  auto cleared = store_->controller_heartbeat(self_, now, now - kControllerSilentAfterMs);
  if (!cleared) {
    spdlog::error("controller: cannot record this controller's heartbeat: {}",
                  cleared.error().message);
  } else if (*cleared > 0) {
    spdlog::warn("controller: {} agent(s) of a controller that stopped answering marked offline",
                 *cleared);
  }
  // An agent revoked through another controller sharing the store loses its session here too
  // (within one heartbeat period); with SQLite every revocation goes through this controller.
  if (store_shared_) {
    auto revoked = gateway_->refresh_revocations();
    if (!revoked)
      spdlog::error("controller: cannot read revocations: {}", revoked.error().message);
    else if (*revoked > 0)
      spdlog::warn("controller: {} agent(s) revoked through another controller: sessions closed",
                   *revoked);
    // The margin covers the time since the last look and the controllers' clocks disagreeing.
    auto replaced = gateway_->close_sessions_held_elsewhere(
        sessions_checked_ms_ == 0 ? 0 : sessions_checked_ms_ - kControllerSilentAfterMs);
    if (!replaced) {
      spdlog::error("controller: cannot read the agents held elsewhere: {}",
                    replaced.error().message);
    } else {
      sessions_checked_ms_ = now;
      if (*replaced > 0)
        spdlog::warn(
            "controller: {} agent(s) connected to another controller since: older "
            "sessions here closed",
            *replaced);
    }
  }
}

Result<std::string> load_or_create_controller_id(const std::filesystem::path& data_dir) {
  const auto path = data_dir / ControllerService::kControllerIdFile;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto text = read_file(path);
    if (!text) return text.error();
    auto id = std::move(*text);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (id.empty() || id.size() > 64)
      return Error{fmt::format("{}: not a controller id; remove it to make a new one",
                               path.string())};
    return id;
  }
  auto id = crypto::random_uuid();
  if (auto s = write_file_atomic(path, id + "\n", 0644); !s) return s.error();
  return id;
}

void ControllerService::run() {
  // A handler that throws (a fault on some peer's data) is logged and the thread goes on serving:
  // io_context::run may be called again after an exception leaves it (Asio's documented way).
  // One agent or request must not end the controller for every other.
  const auto serve = [this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("controller: internal error in a handler, which was abandoned: {}", e.what());
      }
    }
  };
  const unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(serve);
  serve();
  for (auto& t : pool) t.join();
  // Said once nothing else runs: `migrate` and the other controllers need not wait out the
  // silence that tells a stopped controller from a running one.
  if (store_ && !self_.agent_gateway.empty()) {
    if (auto s = store_->record_controller_stopped(self_.id, clock_.now_unix_ms()); !s)
      spdlog::warn("controller: cannot record this controller's stop: {}", s.error().message);
  }
}

void ControllerService::stop() {
  asio::post(io_, [this] {
    spdlog::info("controller: shutting down");
    if (api_) api_->stop();
    if (gateway_) gateway_->stop();
    if (expiry_timer_) expiry_timer_->cancel();
    // Give sessions a moment to send Goodbye, then stop everything still running.
    auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(500));
    timer->async_wait([this, timer](const boost::system::error_code&) { io_.stop(); });
  });
}

}  // namespace riposte::controller
