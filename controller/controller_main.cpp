// riposte-controller: init | run | up. See README.md for the command-line contract.

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/allocator_tuning.h"
#include "common/logging.h"
#include "common/secure_file.h"
#include "common/service_status.h"
#include "controller/config_check.h"
#include "controller/controller_service.h"
#include "controller/controller_status.h"
#include "controller/local_agent.h"
#include "controller/store/store_copy.h"

namespace fs = std::filesystem;
using namespace riposte;
using namespace riposte::controller;

namespace {

struct CommonFlags {
  std::string data_dir;
  std::string database_url;
  std::string config_file;
  std::string agent_listen;
  std::string api_listen;
  std::string log_level;
  std::string log_format;
  std::vector<std::string> playbooks_dirs;
};

constexpr const char* kPackagedConfig = "/etc/riposte/controller.yaml";

int fail(std::string_view message) {
  std::cerr << "riposte-controller: " << message << "\n";
  return 1;
}

Result<ControllerConfig> effective_config(const CommonFlags& flags) {
  ControllerConfig config;
  if (!flags.config_file.empty()) {
    auto loaded = load_controller_config(flags.config_file);
    if (!loaded) return loaded.error();
    config = *loaded;
  }
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.database_url.empty()) config.database = flags.database_url;
  if (!flags.agent_listen.empty()) config.agent_listen = flags.agent_listen;
  if (!flags.api_listen.empty()) config.api_listen = flags.api_listen;
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (!flags.log_format.empty()) config.log_format = flags.log_format;
  // Added to playbooks.dir, not instead of it: the shipped playbooks and a team's own together.
  for (const auto& dir : flags.playbooks_dirs) config.playbooks_dirs.push_back(fs::absolute(dir));
  config.data_dir = fs::absolute(config.data_dir);
  return config;
}

// `token_file`: where a newly created admin token goes (0600) instead of standard output, so a
// service manager's ExecStartPre never puts a credential in the journal.
int cmd_init(const CommonFlags& flags, bool json, const std::string& token_file) {
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  SystemClock clock;
  auto report = initialize_data_dir(*config, clock);
  if (!report) return fail(report.error().message);
  if (report->admin_token && !token_file.empty()) {
    if (auto s = write_file_atomic(token_file, *report->admin_token + "\n", 0600); !s)
      return fail("cannot write the admin token: " + s.error().message);
    report->admin_token.reset();
    report->created.push_back(token_file);
  }
  if (json) {
    nlohmann::json out{{"data_dir", config->data_dir.string()},
                       {"ca_cert", report->ca_certificate.string()},
                       {"ca_fingerprint", report->ca_fingerprint},
                       {"created", report->created}};
    if (report->admin_token) out["admin_token"] = *report->admin_token;
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (report->created.empty()) {
    std::cout << "Data directory " << config->data_dir.string()
              << " is already initialized; nothing changed.\n";
  } else {
    std::cout << "Initialized " << config->data_dir.string() << ": created ";
    for (std::size_t i = 0; i < report->created.size(); ++i)
      std::cout << (i ? ", " : "") << report->created[i];
    std::cout << "\n";
  }
  std::cout << "CA certificate: " << report->ca_certificate.string() << "\n"
            << "CA fingerprint: " << report->ca_fingerprint << "\n";
  if (report->admin_token) {
    std::cout << "Admin API token (shown once, stored only as a hash): " << *report->admin_token
              << "\n";
  }
  return 0;
}

// Runs the service until SIGINT/SIGTERM. `on_started` runs once the listeners are bound, while
// the io threads serve; `on_stop` runs when a signal arrives.
// Each agent session is a descriptor: a soft limit of 1024 (the usual default) would refuse the
// 1000-somethingth agent. The soft limit goes up to the hard one, which the service manager sets
// (LimitNOFILE in riposte-controller.service), as nginx and Go programs do.
void raise_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const auto before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0)
    spdlog::info("controller: open-file limit raised from {} to {}", before, limit.rlim_cur);
}

int serve(ControllerService& service, const std::function<void()>& on_started,
          const std::function<void()>& on_stop) {
  raise_file_limit();
  // The gateway's TLS (TlsSocket) lets OpenSSL write to sockets with write(2): a peer that resets
  // the connection must cost an EPIPE, not the process (systemd ignores SIGPIPE for its services;
  // a controller started by hand or in a container must too).
  ::signal(SIGPIPE, SIG_IGN);
  // status.json for `riposte-controller status`: running, since when, the last error logged.
  SystemClock clock;
  auto status =
      std::make_shared<ServiceStatus>(service.config().data_dir / ServiceStatus::kFileName, clock);
  if (auto s = service.start(); !s) {
    if (fs::is_directory(service.config().data_dir) && status->begin()) {
      status->record_error(s.error().message);
      status->end("failed to start");
    }
    return fail(s.error().message);
  }
  if (auto s = status->begin(); !s) return fail(s.error().message);
  record_errors_in(status);
  MarkStoppedOnExit mark_stopped(*status, "stopped");
  boost::asio::signal_set signals(service.io(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("controller: received {}", signal == SIGINT ? "SIGINT" : "SIGTERM");
    if (on_stop) on_stop();
    service.stop();
  });
  // SIGHUP re-reads intel feeds and the asset map, as daemons conventionally do.
  boost::asio::signal_set hangup(service.io(), SIGHUP);
  std::function<void()> wait_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      if (auto s = service.reload(); !s) {
        spdlog::error("controller: reload on SIGHUP failed, previous feeds stay in use: {}",
                      s.error().message);
      }
      wait_hangup();
    });
  };
  wait_hangup();
  std::thread io_thread([&] { service.run(); });
  if (on_started) on_started();
  io_thread.join();
  return 0;
}

int cmd_run(const CommonFlags& flags) {
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  if (auto s = configure_logging("controller", config->log_level, config->log_format); !s) {
    return fail(s.error().message);
  }
  ControllerService service(*config);
  return serve(service, nullptr, nullptr);
}

// Credentials for the operator CLI on this host, so `. DIR/cli.env && riposte agents list` works.
// The token is kept across runs; the server address is rewritten each run in case it changed.
// `fresh_token` is the admin token init just created, if it did.
struct LocalToken {
  std::string secret;
  bool new_now = false;  // created on this start: printed once, never again
};
Result<LocalToken> local_admin_token(ControllerService& service,
                                     std::optional<std::string> fresh_token) {
  const fs::path env_file = service.config().data_dir / "cli.env";
  constexpr std::string_view kTokenKey = "export RIPOSTE_TOKEN=";
  bool new_now = fresh_token.has_value();
  std::optional<std::string> token = std::move(fresh_token);
  if (!token && fs::exists(env_file)) {
    auto text = read_file(env_file);
    if (!text) return text.error();
    if (auto pos = text->find(kTokenKey); pos != std::string::npos) {
      const auto begin = pos + kTokenKey.size();
      token = text->substr(begin, text->find('\n', begin) - begin);
    }
  }
  if (!token) {
    auto created = service.auth().create_token("local-admin", "admin");
    if (!created) return created.error();
    token = created->secret;
    new_now = true;
  }
  const auto contents = fmt::format(
      "# Operator CLI credentials for this controller (written by `riposte-controller up`).\n"
      "export RIPOSTE_SERVER=https://{}\nexport RIPOSTE_CA={}\n{}{}\n",
      connectable_address(service.api_endpoint()), service.pki().ca_certificate_path().string(),
      kTokenKey, *token);
  if (auto s = write_file_atomic(env_file, contents, 0600); !s) return s.error();
  return LocalToken{*token, new_now};
}

// A copy taken while the source's controller still runs would leave behind whatever it writes
// after (alerts, action results, audit entries). Whether it runs: the heartbeat each controller
// records in the database every 5 s (a graceful stop says so), wherever that controller runs
// (another data directory, a container); and the status file beside the database, when the pid
// it names is a controller.
Status source_controller_stopped(const fs::path& source_path, Store& source) {
  auto controllers = source.list_controllers();
  if (!controllers) return controllers.error();
  const auto now = SystemClock().now_unix_ms();
  for (const auto& c : *controllers) {
    if (c.stopped_at_ms >= c.last_seen_ms) continue;  // stopped gracefully since
    const auto silent_ms = now - c.last_seen_ms;
    if (silent_ms >= ControllerService::kControllerSilentAfterMs) continue;
    return Error{fmt::format(
        "controller {} recorded a heartbeat in {} {} s ago: it is running; stop it first "
        "(systemctl stop riposte-controller). If it was killed, run this again in {} s",
        c.id, source_path.string(), silent_ms / 1000,
        (ControllerService::kControllerSilentAfterMs - silent_ms) / 1000 + 1)};
  }
  const auto status = read_service_status(source_path.parent_path() / ServiceStatus::kFileName);
  const int pid = status.fields.value("pid", 0);
  if (status.running && pid > 0) {
    // A pid reused by another program (after a reboot, or pid 1 seen from outside a container)
    // is not the controller.
    auto comm = read_file(fmt::format("/proc/{}/comm", pid));
    if (comm && comm->starts_with("riposte-contro"))
      return Error{
          fmt::format("the controller using {} is running (pid {}); stop it first (systemctl stop "
                      "riposte-controller): what it writes after the copy would be lost",
                      source_path.string(), pid)};
  }
  return ok_status();
}

// Copies a single-box SQLite store into a new PostgreSQL database (store_copy.h).
int cmd_migrate(const std::string& from, const std::string& to) {
  if (!from.starts_with("sqlite:"))
    return fail("migrate: --from must be sqlite:PATH (the controller's riposte.db)");
  const auto source_path = fs::path(from.substr(7));
  if (!fs::is_regular_file(source_path))
    return fail(fmt::format("migrate: no database file {}", source_path.string()));
  auto target_location = parse_store_location(to, fs::current_path());
  if (!target_location || target_location->kind != StoreKind::postgresql)
    return fail("migrate: --to must be a postgresql:// URI");
  auto source = SqliteStore::open(source_path);
  if (!source) return fail("migrate: " + source.error().message);
  if (auto s = source_controller_stopped(source_path, **source); !s)
    return fail("migrate: " + s.error().message);
  auto foreign = PostgresStore::holds_foreign_tables(to);
  if (!foreign) return fail("migrate: " + foreign.error().message);
  if (*foreign)
    return fail("migrate: the target database holds tables of something else; migrate into a "
                "new, empty database (createdb -O USER riposte)");
  auto target = PostgresStore::open(to);
  if (!target) return fail("migrate: " + target.error().message);
  std::cout << "Copying " << source_path.string() << " into " << redacted_database_url(to)
            << "\n";
  auto report = copy_store(**source, **target, [](const TableCopied& t) {
    std::cout << "  " << t.table << ": " << t.rows << " rows\n" << std::flush;
  });
  if (!report) return fail("migrate: " + report.error().message);
  std::cout << fmt::format(
      "Done: {} tables; audit chain verified in the target ({} entries, head {}).\n"
      "Point the controller at it: set database: in controller.yaml (or --database-url) to the\n"
      "URL given to --to ({}, shown without its password).\n",
      report->tables.size(), report->audit_entries, report->audit_head_hash,
      redacted_database_url(to));
  return 0;
}

// Checks a configuration, its asset map, playbooks and feeds without starting; exit 0 when all
// hold, 1 with each problem on its own line (FILE:LINE where there is one).
int cmd_check(const CommonFlags& flags, bool json) {
  auto config = effective_config(flags);
  nlohmann::json report;
  if (!config) {
    nlohmann::json failed = nlohmann::json::object();
    failed["what"] = "config";
    failed["ok"] = false;
    failed["detail"] = config.error().message;
    report["ok"] = false;
    report["checks"] = nlohmann::json::array({std::move(failed)});
  } else {
    report = check_configuration(*config, SystemClock{}.now_unix_ms());
    nlohmann::json loaded = nlohmann::json::object();
    loaded["what"] = "config";
    loaded["ok"] = true;
    loaded["detail"] = flags.config_file.empty() ? "defaults and flags" : flags.config_file;
    report["checks"].insert(report["checks"].begin(), std::move(loaded));
  }
  if (json) {
    std::cout << report.dump(2) << "\n";
  } else {
    for (const auto& c : report["checks"])
      std::cout << fmt::format("{} {:<9} {}\n",
                               !c["ok"].get<bool>()        ? "ERR "
                               : c.value("warning", false) ? "WARN"
                                                           : "ok  ",
                               c["what"].get<std::string>(), c["detail"].get<std::string>());
    std::cout << (report["ok"].get<bool>() ? "configuration OK\n" : "configuration has errors\n");
  }
  return report["ok"].get<bool>() ? 0 : 1;
}

int cmd_status(const CommonFlags& flags, bool json) {
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  const auto health = controller_health(*config);
  std::cout << (json ? health.report.dump(2) + "\n" : render_controller_health(health.report));
  return health.healthy ? 0 : 3;
}

// Where a listener really listens, as a person reads it: "0.0.0.0:7443 (all interfaces)".
std::string listening_address(const boost::asio::ip::tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  if (!address.is_unspecified()) return connectable_address(endpoint);
  return fmt::format("{}:{} (all interfaces)", address.to_string(), endpoint.port());
}

// Whether `config_file` sets `key` itself (then `up` keeps it; otherwise `up` listens on
// loopback: a quick start on a laptop should not open ports to the network).
bool config_sets(const std::string& config_file, const char* key) {
  if (config_file.empty()) return false;
  try {
    return static_cast<bool>(YAML::LoadFile(config_file)[key]);
  } catch (const YAML::Exception&) {
    return false;  // effective_config reports the error
  }
}

int cmd_up(CommonFlags flags, std::string agent_state_dir) {
  if (flags.agent_listen.empty() && !config_sets(flags.config_file, "agent_listen"))
    flags.agent_listen = "127.0.0.1:7443";
  if (flags.api_listen.empty() && !config_sets(flags.config_file, "api_listen"))
    flags.api_listen = "127.0.0.1:8443";
  auto config = effective_config(flags);
  if (!config) return fail(config.error().message);
  SystemClock clock;
  auto report = initialize_data_dir(*config, clock);
  if (!report) return fail(report.error().message);
  if (auto s = configure_logging("controller", config->log_level, config->log_format); !s) {
    return fail(s.error().message);
  }
  if (agent_state_dir.empty()) agent_state_dir = (config->data_dir / "local-agent").string();
  agent_state_dir = fs::absolute(agent_state_dir).string();
  const auto agent_binary = sibling_executable("riposte-agent").string();

  ControllerService service(*config);
  std::atomic<bool> stopping{false};
  std::atomic<pid_t> agent_pid{0};
  std::thread supervisor;
  int exit_code = 0;

  auto on_started = [&] {
    auto admin = local_admin_token(service, report->admin_token);
    if (!admin) {
      spdlog::error("up: {}", admin.error().message);
      exit_code = 1;
      return;
    }
    const std::string api = connectable_address(service.api_endpoint());
    if (!fs::exists(fs::path(agent_state_dir) / "agent.json")) {
      auto token = service.enrollment().create_token(1, 10 * 60 * 1000, "riposte-controller up");
      if (!token) {
        spdlog::error("up: cannot create an enrollment token: {}", token.error().message);
        exit_code = 1;
        return;
      }
      auto rc = run_child_to_completion({agent_binary, "enroll", "--controller", api, "--token",
                                         token->secret, "--ca-pin", service.pki().ca_fingerprint(),
                                         "--state-dir", agent_state_dir, "--log-level",
                                         config->log_level});
      if (!rc || *rc != 0) {
        spdlog::error("up: enrolling the local agent failed: {}",
                      rc ? fmt::format("riposte-agent exited with {}", *rc) : rc.error().message);
        exit_code = 1;
        return;
      }
    }
    const auto env_file = (config->data_dir / "cli.env").string();
    const bool loopback_only =
        service.agent_endpoint().address().is_loopback() &&
        service.api_endpoint().address().is_loopback();
    std::cout << "\nRiposte is up.\n"
              << "  agent gateway : " << listening_address(service.agent_endpoint()) << "\n"
              << "  API           : https://" << listening_address(service.api_endpoint()) << "\n"
              << (service.console_installed()
                      ? "  web console   : https://" +
                            connectable_address(service.api_endpoint()) +
                            "/ui/ (sign in with an operator token; browsers warn until the CA "
                            "certificate below is trusted)\n"
                      : std::string("  web console   : not installed\n"))
              << "  CA fingerprint: " << service.pki().ca_fingerprint() << "\n"
              << "  CA certificate: " << service.pki().ca_certificate_path().string() << "\n"
              << "  admin token   : "
              << (admin->new_now ? admin->secret + " (shown this once; also in " + env_file + ")"
                                 : "in " + env_file)
              << "\n"
              << "  local agent   : state in " << agent_state_dir << "\n"
              << "Operator CLI:   . " << (config->data_dir / "cli.env").string() << " && "
              << sibling_executable("riposte").string() << " agents list\n"
              << (loopback_only
                      ? "Listening on loopback only; to let agents on other hosts in, start with "
                        "--agent-listen 0.0.0.0:7443 (and --api-listen 0.0.0.0:8443 for the API).\n"
                      : "")
              << "Stop with Ctrl-C.\n\n"
              << std::flush;
    // Keep the local agent running; restart it if it dies while we are up.
    supervisor = std::thread([&, api] {
      while (!stopping) {
        // The gateway may listen elsewhere than at enrollment time (flags, port 0): say where.
        auto pid = spawn_child({agent_binary, "run", "--state-dir", agent_state_dir, "--gateway",
                                connectable_address(service.agent_endpoint()), "--log-level",
                                config->log_level, "--log-format", config->log_format});
        if (!pid) {
          spdlog::error("up: {}", pid.error().message);
          break;
        }
        agent_pid = *pid;
        if (stopping) ::kill(*pid, SIGTERM);
        int status = 0;
        while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
        }
        agent_pid = 0;
        if (stopping) break;
        spdlog::warn("up: local agent exited ({}); restarting in 2 s",
                     WIFEXITED(status) ? fmt::format("status {}", WEXITSTATUS(status))
                                       : fmt::format("signal {}", WTERMSIG(status)));
        for (int i = 0; i < 20 && !stopping; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  };
  auto on_stop = [&] {
    stopping = true;
    if (pid_t pid = agent_pid; pid > 0) ::kill(pid, SIGTERM);
  };
  const int rc = serve(
      service,
      [&] {
        on_started();
        if (exit_code != 0) {
          on_stop();
          service.stop();
        }
      },
      on_stop);
  stopping = true;
  if (supervisor.joinable()) supervisor.join();
  return rc != 0 ? rc : exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();
  CLI::App app{"Riposte controller: agent gateway, enrollment and operator API"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(RIPOSTE_VERSION));
  CommonFlags flags;
  auto add_common = [&](CLI::App* sub, bool listeners) {
    sub->add_option("--data-dir", flags.data_dir, "data directory (CA, keys, database)");
    sub->add_option("--database-url", flags.database_url,
                    "store: sqlite:PATH or postgresql://USER@HOST:PORT/DB?sslmode=... "
                    "(default: SQLite in the data directory; a password is better in "
                    "~/.pgpass or PGPASSWORD than on a command line)");
    sub->add_option("--config", flags.config_file, "YAML configuration file")
        ->check(CLI::ExistingFile);
    if (listeners) {
      sub->add_option("--agent-listen", flags.agent_listen,
                      "agent gateway HOST:PORT (default 0.0.0.0:7443; 127.0.0.1:7443 for up)");
      sub->add_option("--api-listen", flags.api_listen,
                      "HTTPS API HOST:PORT (default 0.0.0.0:8443; 127.0.0.1:8443 for up)");
      sub->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error");
      sub->add_option("--log-format", flags.log_format, "text|json");
      sub->add_option("--playbooks", flags.playbooks_dirs,
                      "also load the playbooks in this directory (after playbooks.dir; repeatable)")
          ->check(CLI::ExistingDirectory);
    }
  };
  bool json = false;
  auto* init =
      app.add_subcommand("init", "create the CA, server certificate, action key and admin token");
  add_common(init, false);
  init->add_flag("--json", json, "print one JSON object");
  std::string admin_token_file;
  init->add_option("--admin-token-file", admin_token_file,
                   "write a newly created admin token to this file (0600) instead of printing it");
  auto* status = app.add_subcommand(
      "status", "initialized? running? API answering? agents connected? last error");
  add_common(status, false);
  status->add_flag("--json", json, "print one JSON object");
  auto* check = app.add_subcommand(
      "check", "check a configuration, its asset map, playbooks and feeds without starting");
  add_common(check, true);
  check->add_flag("--json", json, "print one JSON object");
  auto* run = app.add_subcommand("run", "run the controller in the foreground");
  add_common(run, true);
  std::string agent_state_dir;
  auto* up = app.add_subcommand("up", "init if needed, run, and run a local enrolled agent");
  add_common(up, true);
  up->add_option("--agent-state-dir", agent_state_dir,
                 "state directory of the local agent (default DATA_DIR/local-agent)");
  std::string migrate_from, migrate_to;
  auto* migrate = app.add_subcommand(
      "migrate", "copy a SQLite store into a new PostgreSQL database (stop the controller first)");
  migrate->add_option("--from", migrate_from, "sqlite:PATH (DATA_DIR/riposte.db)")->required();
  migrate->add_option("--to", migrate_to, "postgresql://USER@HOST:PORT/DB?sslmode=...")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (migrate->parsed()) {
    try {
      return cmd_migrate(migrate_from, migrate_to);
    } catch (const std::exception& e) {
      return fail(std::string("internal error: ") + e.what());
    }
  }
  // The packaged layout is the default for `status`, so it works bare on an installed controller.
  if (status->parsed() && flags.data_dir.empty() && flags.config_file.empty()) {
    flags.config_file = fs::exists(kPackagedConfig) ? kPackagedConfig : "";
    if (flags.config_file.empty()) flags.data_dir = ControllerConfig{}.data_dir.string();
  }
  if (flags.data_dir.empty() && flags.config_file.empty()) {
    return fail("--data-dir DIR (or --config FILE with data_dir) is required");
  }
  try {
    if (init->parsed()) return cmd_init(flags, json, admin_token_file);
    if (status->parsed()) return cmd_status(flags, json);
    if (check->parsed()) return cmd_check(flags, json);
    if (run->parsed()) return cmd_run(flags);
    if (up->parsed()) return cmd_up(flags, agent_state_dir);
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return 1;
}
