// riposte-swarm: N simulated agents against a real controller, for scale tests (see swarm.h).
//
//   riposte-swarm --api 127.0.0.1:8443 --gateway 127.0.0.1:7443 --ca-pin sha256:...
//                 --token ENROLL_TOKEN --agents 10000 --identities ./swarm-ids
//
// Prints one JSON line of counters per --status-interval on stdout; SIGUSR1 drops every session
// at once (a reconnect storm); SIGINT/SIGTERM, or --duration, ends it.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/duration.h"
#include "tests/swarm/swarm.h"

using namespace riposte;

namespace {

nlohmann::json to_json(const swarm::Snapshot& s, double elapsed) {
  return {{"elapsed_s", elapsed},
          {"sessions", s.sessions},
          {"accepted", s.accepted},
          {"connect_failures", s.connect_failures},
          {"handshake_failures", s.handshake_failures},
          {"refused", s.refused},
          {"sessions_lost", s.sessions_lost},
          {"heartbeat_acks", s.heartbeats},
          {"actions", s.actions},
          {"bad_actions", s.bad_actions},
          {"results_acked", s.results_acked}, {"resumed", s.resumed}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Simulated Riposte agents: real enrolled identities, real mutual-TLS sessions"};
  std::string api, gateway, duration = "0s", interval = "1s", initial = "1s", max = "60s";
  swarm::SwarmOptions options;
  app.add_option("--api", api, "controller API HOST:PORT, for enrollment")->required();
  app.add_option("--gateway", gateway, "agent gateway IP:PORT")->required();
  app.add_option("--ca-pin", options.ca_pin, "sha256:HEX of the controller's CA")->required();
  app.add_option("--token", options.enroll_token,
                 "enrollment token (needed when identities must be enrolled)")
      ->envname("RIPOSTE_SWARM_TOKEN");
  app.add_option("--agents", options.agents, "simulated agents")->required();
  app.add_option("--identities", options.identities_dir,
                 "folder caching the enrolled identities")
      ->required();
  app.add_option("--sources", options.source_addresses,
                 "loopback source addresses to spread connections over (default 64)");
  app.add_option("--threads", options.threads, "io threads (default 1)");
  app.add_flag("!--no-resume", options.resume_sessions,
               "full TLS handshake on every reconnect (no session tickets)");
  app.add_option("--max-handshakes", options.max_handshakes,
                 "connection attempts in flight at once (default 256)");
  app.add_option("--reconnect-initial", initial, "first reconnect delay (default 1s)");
  app.add_option("--reconnect-max", max, "longest reconnect delay (default 60s)");
  app.add_option("--duration", duration, "stop after this long (default: until a signal)");
  app.add_option("--status-interval", interval, "how often to print counters (default 1s)");
  CLI11_PARSE(app, argc, argv);

  auto parse = [](const std::string& name, const std::string& text) -> std::int64_t {
    if (text == "0s") return 0;
    auto ms = parse_duration_ms(text);
    if (!ms) {
      std::cerr << "riposte-swarm: " << name << ": " << ms.error().message << "\n";
      std::exit(2);
    }
    return *ms;
  };
  for (auto [name, text, target] :
       {std::tuple{"--api", &api, &options.api}, {"--gateway", &gateway, &options.gateway}}) {
    auto parsed = parse_host_port(*text);
    if (!parsed) {
      std::cerr << "riposte-swarm: " << name << ": " << parsed.error().message << "\n";
      return 2;
    }
    *target = *parsed;
  }
  options.reconnect_initial = std::chrono::milliseconds(parse("--reconnect-initial", initial));
  options.reconnect_max = std::chrono::milliseconds(parse("--reconnect-max", max));
  const auto run_for = std::chrono::milliseconds(parse("--duration", duration));
  const auto every = std::chrono::milliseconds(std::max<std::int64_t>(100, parse("--status-interval", interval)));
  options.progress = [](const std::string& line) { std::cerr << "riposte-swarm: " << line << "\n"; };

  const auto limit = swarm::raise_file_limit(static_cast<std::uint64_t>(options.agents) + 1024);
  if (limit < static_cast<std::uint64_t>(options.agents) + 64)
    std::cerr << "riposte-swarm: warning: open-file limit " << limit << " is below " << options.agents
              << " sessions (raise it with ulimit -n, or run as root)\n";

  auto prepared = swarm::Swarm::prepare(options);
  if (!prepared) {
    std::cerr << "riposte-swarm: " << prepared.error().message << "\n";
    return 1;
  }
  auto& swarm = **prepared;
  swarm.start();
  std::cerr << "riposte-swarm: " << options.agents << " agents connecting to "
            << options.gateway.to_string() << "\n";

  boost::asio::io_context io;
  const auto started = std::chrono::steady_clock::now();
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGUSR1);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int signal) {
      if (ec) return;
      if (signal == SIGUSR1) {
        std::cerr << "riposte-swarm: SIGUSR1: dropping every session\n";
        swarm.drop_all();
        wait_signal();
        return;
      }
      io.stop();
    });
  };
  wait_signal();
  boost::asio::steady_timer tick(io);
  std::function<void()> report = [&] {
    tick.expires_after(every);
    tick.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      std::cout << to_json(swarm.snapshot(), elapsed).dump() << std::endl;
      if (run_for.count() > 0 && std::chrono::steady_clock::now() - started >= run_for) {
        io.stop();
        return;
      }
      report();
    });
  };
  report();
  io.run();
  swarm.stop();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << to_json(swarm.snapshot(), elapsed).dump() << std::endl;
  return 0;
}
