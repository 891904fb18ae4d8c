// riposte-agent: enroll | run. See README.md for the command-line contract.

#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdlib>
#include <iostream>

#include "agent/action_executor.h"
#include "agent/action_journal.h"
#include "agent/action_service.h"
#include "agent/action_verifier.h"
#include "agent/agent_config.h"
#include "agent/agent_status.h"
#include "agent/controller_link.h"
#include "agent/enrollment_client.h"
#include "agent/housekeeping.h"
#include "common/allocator_tuning.h"
#include "common/logging.h"
#include "common/secure_file.h"
#include "common/service_status.h"
#include "common/utc_time.h"
#include "platform/firewall.h"
#include "protocol/action_kinds.h"

using namespace riposte;
using namespace riposte::agent;

namespace {

constexpr const char* kPackagedConfig = "/etc/riposte/agent.yaml";

int fail(std::string_view message) {
  std::cerr << "riposte-agent: " << message << "\n";
  return 1;
}

struct Flags {
  std::string config_file;
  std::string state_dir;
  std::string log_level;
  std::string log_format;
  std::string reconnect_initial;
  std::string reconnect_max;
  std::string heartbeat_interval;
  std::string gateway;
};

Result<AgentConfig> effective_config(const Flags& flags) {
  AgentConfig config;
  if (!flags.config_file.empty()) {
    auto loaded = load_agent_config(flags.config_file);
    if (!loaded) return loaded.error();
    config = *loaded;
  }
  if (!flags.state_dir.empty()) config.state_dir = flags.state_dir;
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (!flags.log_format.empty()) config.log_format = flags.log_format;
  for (auto [text, target] : {std::pair{&flags.reconnect_initial, &config.reconnect_initial},
                              {&flags.reconnect_max, &config.reconnect_max}}) {
    if (text->empty()) continue;
    auto value = parse_interval(*text);
    if (!value) return value.error();
    *target = *value;
  }
  config.state_dir = std::filesystem::absolute(config.state_dir);
  return config;
}

int cmd_enroll(const Flags& flags, const std::string& controller, const std::string& token,
               const std::string& ca_pin, const std::string& gateway, bool force) {
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  if (auto s = configure_logging("agent", config->log_level, config->log_format); !s)
    return fail(s.error().message);
  auto address = parse_host_port(controller);
  if (!address) return fail("--controller: " + address.error().message);
  auto facts = platform::make_system_facts_source();
  auto state =
      enroll(EnrollOptions{*address, token, ca_pin, config->state_dir, gateway, force}, *facts);
  if (!state) return fail("enrollment failed: " + state.error().message);
  std::cout << "Enrolled as agent " << state->agent_id << "; state in " << state->dir.string()
            << "; gateway " << state->gateway.to_string() << "\n";
  return 0;
}

// network.quarantine keeps the controller reachable by address, so it must be an IP.
Result<std::string> resolve_controller_address(const HostPort& gateway) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(gateway.host, ec);
  if (!ec) return address.to_string();
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(gateway.host, std::to_string(gateway.port), ec);
  if (ec || results.empty())
    return Error{"cannot resolve the controller gateway " + gateway.host + ": " + ec.message()};
  return results.begin()->endpoint().address().to_string();
}

int cmd_run(const Flags& flags) {
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  if (auto s = configure_logging("agent", config->log_level, config->log_format); !s)
    return fail(s.error().message);
  auto state = load_agent_state(config->state_dir);
  if (!state) return fail(state.error().message);
  if (!flags.gateway.empty()) {
    auto gateway = parse_host_port(flags.gateway);
    if (!gateway) return fail("--gateway: " + gateway.error().message);
    state->gateway = *gateway;
  }
  LinkOptions options;
  for (const auto& text : config->fallback_gateways) {
    auto gateway = parse_host_port(text);
    if (!gateway) return fail("fallback_gateways: " + text + ": " + gateway.error().message);
    options.fallback_gateways.push_back(*gateway);
  }
  options.reconnect_initial = config->reconnect_initial;
  options.reconnect_max = config->reconnect_max;
  if (!flags.heartbeat_interval.empty()) {
    auto value = parse_interval(flags.heartbeat_interval);
    if (!value) return fail("--heartbeat-interval: " + value.error().message);
    options.heartbeat_interval = std::chrono::duration_cast<std::chrono::seconds>(*value);
    if (options.heartbeat_interval->count() < 1)
      return fail("--heartbeat-interval must be at least 1s");
  }
  spdlog::info("agent: starting as agent {} (state {}), controller gateway {}", state->agent_id,
               state->dir.string(), state->gateway.to_string());
  SystemClock clock;
  // status.json for `riposte-agent status`: running, connected, last error. Whatever ends this
  // function marks it stopped, and a start-up failure below is its last error.
  auto status = std::make_shared<ServiceStatus>(state->dir / ServiceStatus::kFileName, clock);
  if (auto s = status->begin(); !s) return fail(s.error().message);
  record_errors_in(status);
  MarkStoppedOnExit mark_stopped(*status, "exited");
  const auto fatal = [&](const std::string& message) {
    status->record_error(message);
    return fail(message);
  };
  // Local state that outlives sessions: a quarantine in force is re-applied before anything else,
  // so an agent restart never opens an isolated host.
  auto firewall = platform::make_firewall();
  QuarantineKeeper quarantine(*firewall, state->dir / "quarantine.json", clock);
  if (auto restored = quarantine.restore(); !restored) {
    spdlog::error("agent: cannot restore quarantine state: {}", restored.error().message);
  } else if (*restored) {
    spdlog::warn("agent: host is quarantined; rules re-applied");
  }
  auto history =
      ConnectionHistory::open(state->dir / "connections.db", config->connection_retention.count());
  if (!history) return fatal(history.error().message);
  auto network = platform::make_network_table();
  Housekeeping housekeeping(
      *network, **history, quarantine, clock,
      std::max(std::chrono::seconds(1), std::chrono::duration_cast<std::chrono::seconds>(
                                            config->connection_sample_interval)));

  // Actions: the journal (replay check, result and evidence spools), the verifier, the executor.
  auto journal = ActionJournal::open(state->dir / "actions.db");
  if (!journal) return fatal(journal.error().message);
  if (auto interrupted = (*journal)->recover_interrupted(clock.now_unix_ms()); !interrupted) {
    return fatal(interrupted.error().message);
  } else if (*interrupted > 0) {
    spdlog::warn("agent: {} action(s) were interrupted by the last stop; reporting them failed",
                 *interrupted);
  }
  (void)(*journal)->prune(clock.now_unix_ms() - config->clock_skew.count() - 86'400'000);
  auto verifier = ActionVerifier::create(
      VerifierOptions{state->agent_id,
                      state->action_public_key_pem,
                      config->clock_skew,
                      {config->allowed_actions.begin(), config->allowed_actions.end()}},
      **journal, clock);
  if (!verifier) return fatal(verifier.error().message);
  auto controller_ip = resolve_controller_address(state->gateway);
  if (!controller_ip) return fatal(controller_ip.error().message);
  std::vector<platform::AllowedPeer> other_controllers;
  for (const auto& gateway : options.fallback_gateways) {
    auto ip = resolve_controller_address(gateway);
    if (!ip) return fatal(ip.error().message);
    other_controllers.push_back({*ip, gateway.port, "tcp"});
  }
  for (const auto* dir : {"evidence", "vault"}) {
    if (auto s = ensure_private_directory(state->dir / dir); !s) return fatal(s.error().message);
  }
  auto processes = platform::make_process_control();
  auto memory = platform::make_memory_capture();
  auto files = platform::make_files();
  auto yara = platform::make_yara_scanner();
  auto logins = platform::make_logins();
  auto facts = platform::make_system_facts_source();
  LocalPolicy policy({config->protected_process_names, config->protected_process_paths},
                     ::getpid());
  ActionService* service_ptr = nullptr;  // the executor reports through the service below
  ControllerLink* link_ptr = nullptr;    // and proves the controller reachable through the link
  ActionExecutor executor(ExecutorContext{
      *processes,
      *memory,
      *files,
      *network,
      *yara,
      *logins,
      *facts,
      quarantine,
      **history,
      policy,
      clock,
      state->dir / "evidence",
      state->dir / "vault",
      {*controller_ip, state->gateway.port, "tcp"},
      [&](const std::string& id, std::uint64_t done, std::uint64_t total, const std::string& unit) {
        service_ptr->report_progress(id, done, total, unit);
      },
      [&] { return service_ptr->evidence_budget(); },
      [&](const std::string& sha256, std::uint64_t size) {
        return service_ptr->fetch_object(sha256, size);
      },
      state->dir / "rule-sets",
      other_controllers,
      [&] { return link_ptr->controller_addresses(); },
      [&](std::chrono::milliseconds timeout) { return link_ptr->round_trip(timeout); }});

  boost::asio::io_context io;
  ActionService service(
      io, **verifier, **journal, executor, clock,
      ActionServiceOptions{static_cast<std::size_t>(config->max_concurrent_actions),
                           config->evidence_spool_limit,
                           {}});
  service_ptr = &service;
  ControllerLink link(io, *state, options, *facts);
  link_ptr = &link;
  std::vector<std::string> capabilities;
  for (auto kind : action_kind::kAll) {
    if ((*verifier)->kind_allowed(kind)) capabilities.emplace_back(kind);
  }
  link.set_action_service(&service, capabilities);
  status->set("connected", false);
  link.set_state_observer([&status = *status, &clock](bool connected, const std::string& detail) {
    status.set("connected", connected);
    status.set("connected_since", connected ? nlohmann::json(format_utc_ms(clock.now_unix_ms()))
                                            : nlohmann::json(nullptr));
    // The gateway it reached: after a failover, not the one it enrolled with.
    status.set("connected_to", connected ? nlohmann::json(detail) : nlohmann::json(nullptr));
    if (!connected) status.set("last_disconnect", detail);
  });
  service.set_sender([&link](proto::Envelope envelope) { return link.send(std::move(envelope)); });
  if (auto s = link.start(); !s) return fatal(s.error().message);
  // The kernel's quarantine table, read back every second: a flush or reload that removed or
  // altered it is undone at once, logged, kept in the status file and reported to the controller.
  QuarantineWatch watch(quarantine, std::chrono::seconds(1), [&](const QuarantineTamper& t) {
    const auto detail =
        t.reapplied ? t.detail + "; the agent applied it again"
                    : t.detail + "; applying it again FAILED: " + t.reapplied.error().message;
    spdlog::error("agent: quarantine {}{}: {}", t.what,
                  t.action_id.empty() ? "" : " (action " + t.action_id + ")", detail);
    status->set("last_quarantine_tamper", nlohmann::json{{"what", t.what},
                                                         {"detail", detail},
                                                         {"action_id", t.action_id},
                                                         {"at", format_utc_ms(t.at_ms)}});
    proto::AgentEvent event;
    event.set_kind("quarantine.tampered");
    event.set_detail(detail);
    event.set_at_unix_ms(t.at_ms);
    event.set_action_id(t.action_id);
    link.report_event(std::move(event));
  });
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("agent: received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
    link.stop();
  });
  io.run();
  // A stopping agent does not wait out a long action (a kill's grace period, a capture, a scan).
  // What still runs after a moment is left to the journal, which reports it at the next start
  // as cut short; the process ends now rather than when the action would have.
  service.cancel_fetches();  // a scan waiting for its rules ends now, not in 3 s
  if (const auto left = service.wait_for_workers(std::chrono::seconds(3)); left > 0) {
    spdlog::warn("agent: {} action(s) still running at stop; they will be reported as "
                 "interrupted when the agent starts again",
                 left);
    spdlog::shutdown();
    std::_Exit(0);
  }
  return 0;
}

int cmd_status(const Flags& flags, bool json) {
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  // Reading nftables needs CAP_NET_ADMIN; without it the report says the kernel was not read.
  auto firewall = platform::make_firewall();
  const auto health = agent_health(config->state_dir, firewall.get());
  std::cout << (json ? health.report.dump(2) + "\n" : render_agent_health(health.report));
  return health.healthy ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  CLI::App app{"Riposte agent: enrolls with a controller and keeps a mutual-TLS session to it"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(RIPOSTE_VERSION));
  Flags flags;
  auto add_common = [&](CLI::App* sub) {
    sub->add_option("--state-dir", flags.state_dir, "state directory (keys, certificates)");
    sub->add_option("--config", flags.config_file, "YAML configuration file")
        ->check(CLI::ExistingFile);
    sub->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error");
    sub->add_option("--log-format", flags.log_format, "text|json");
  };
  std::string controller, token, ca_pin, gateway;
  bool force = false;
  auto* enroll_cmd = app.add_subcommand("enroll", "enroll this endpoint with a controller");
  add_common(enroll_cmd);
  // Each also comes from the environment, which is how a package's postinst receives them during
  // a fleet rollout, and keeps the token out of the process list.
  enroll_cmd->add_option("--controller", controller, "controller API HOST:PORT")
      ->envname("RIPOSTE_CONTROLLER")
      ->required();
  enroll_cmd->add_option("--token", token, "enrollment token from `riposte tokens create`")
      ->envname("RIPOSTE_TOKEN")
      ->required();
  enroll_cmd->add_option("--ca-pin", ca_pin, "sha256:HEX fingerprint of the controller CA")
      ->envname("RIPOSTE_CA_PIN")
      ->required();
  enroll_cmd
      ->add_option("--gateway", gateway,
                   "agent gateway HOST:PORT, if not the one the controller names")
      ->envname("RIPOSTE_GATEWAY");
  enroll_cmd->add_flag("--force", force, "enroll again even if already enrolled");
  auto* run_cmd = app.add_subcommand("run", "connect to the controller and serve until stopped");
  add_common(run_cmd);
  run_cmd->add_option("--reconnect-initial", flags.reconnect_initial,
                      "first reconnect delay (default 1s)");
  run_cmd->add_option("--reconnect-max", flags.reconnect_max,
                      "longest reconnect delay (default 60s)");
  run_cmd->add_option(
      "--gateway", flags.gateway,
      "agent gateway HOST:PORT for this run (default: the one stored at enrollment)");
  run_cmd->add_option("--heartbeat-interval", flags.heartbeat_interval,
                      "override the controller's heartbeat interval (e.g. 1s)");
  bool status_json = false;
  auto* status_cmd = app.add_subcommand(
      "status", "enrolled? running? connected? quarantined? last error (exit 0 when all is well)");
  add_common(status_cmd);
  status_cmd->add_flag("--json", status_json, "print the report as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The packaged layout is the default for `status`, so it works bare on an installed endpoint.
  if (status_cmd->parsed() && flags.state_dir.empty() && flags.config_file.empty() &&
      std::filesystem::exists(kPackagedConfig)) {
    flags.config_file = kPackagedConfig;
  }
  if (flags.state_dir.empty() && flags.config_file.empty() && !status_cmd->parsed())
    return fail("--state-dir DIR is required");
  try {
    if (enroll_cmd->parsed()) return cmd_enroll(flags, controller, token, ca_pin, gateway, force);
    if (run_cmd->parsed()) return cmd_run(flags);
    if (status_cmd->parsed()) return cmd_status(flags, status_json);
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return 1;
}
