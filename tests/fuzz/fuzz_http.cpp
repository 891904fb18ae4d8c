// libFuzzer target for the HTTP request path: raw bytes through Beast's request parser with the
// server's limits, then ApiRouter (body_limit, may_run_heavy, handle) over a real SQLite store,
// PKI, enrollment, operator auth, dispatcher and evidence store in a private directory under
// /dev/shm. The first input byte picks the caller: 0 whoever the request's own Authorization
// header says, 1 an admin, 2 a viewer, 3 an integration (role ingest), 4 the admin's console
// session cookie with the request's own X-CSRF-Token, 5 with the session's, so the fuzzer reaches
// the routes behind each role and the console's session and sign-in paths. Every response has a status from 200 to 599 and a JSON body that
// parses; nothing crashes, leaks or hangs. The clock is manual (one second per input) and an
// operator an input disabled is replaced before the next one, so a run from the same seed and
// corpus makes the same requests against the same state.
#include <fmt/format.h>
#include <unistd.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/clock.h"
#include "controller/api/operator_auth.h"
#include "controller/api/router.h"
#include "controller/api/server.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/dispatch/evidence_store.h"
#include "controller/gateway/enrollment.h"
#include "controller/gateway/pki.h"
#include "controller/store/sqlite_store.h"

namespace fs = std::filesystem;
namespace http = boost::beast::http;
using namespace riposte;
using namespace riposte::controller;

namespace {

struct Controller {
  Controller() {
    dir = fs::path("/dev/shm") / ("riposte-fuzz-http-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    pki.emplace(Pki::load_or_create(dir, {}, clock).value());
    store = std::move(SqliteStore::open(dir / "riposte.db").value());
    enrollment.emplace(*store, *pki, clock);
    auth.emplace(*store, clock);
    renew_callers();
    dispatcher.emplace(*store, pki->action_key(), clock);
    evidence.emplace(dir / "evidence", *store, clock);
    (void)evidence->open();
    fs::create_directories(dir / "web");
    std::ofstream(dir / "web" / "index.html") << "<!doctype html><title>Riposte</title>";
    console.emplace(dir / "web");
    ApiRouterDeps deps{*store, *enrollment, *auth, clock, [](const std::string&) {}, "",
                       7443, &*dispatcher, &*evidence, nullptr, &autonomy, nullptr,
                       1 << 20};
    deps.console = &*console;
    sessions.emplace(*store, clock);
    deps.sessions = &*sessions;
    router.emplace(std::move(deps));
  }
  // The admin's console session, opened again when an input signed it out or it expired.
  const ConsoleSession& admin_session() {
    if (!sessions->find(session_cookie).value()) {
      auto record = auth->authenticate("Bearer " + tokens[1]).value();
      session = sessions->open(record.token_hash, record.name).value();
      session_cookie = fmt::format("{}={}", kSessionCookie, session.secret);
    }
    return session;
  }
  // Callers an input disabled (POST /api/v1/operators/NAME/disable) are replaced by new ones.
  void renew_callers() {
    static const char* const roles[] = {"", "admin", "viewer", "ingest"};
    for (int i = 1; i < 4; ++i) {
      if (!tokens[i].empty() && auth->authenticate("Bearer " + tokens[i])) continue;
      const auto name = std::string("fuzz-") + roles[i] + "-" + std::to_string(++renewed);
      tokens[i] = (i == 3 ? auth->create_integration(name, "approve", "fuzz")
                          : auth->create_token(name, roles[i]))
                      .value()
                      .secret;
    }
  }
  fs::path dir;
  ManualClock clock{1'800'000'000'000};
  int renewed = 0;
  std::optional<Pki> pki;
  std::unique_ptr<SqliteStore> store;
  std::optional<Enrollment> enrollment;
  std::optional<OperatorAuth> auth;
  std::optional<ActionDispatcher> dispatcher;
  std::optional<EvidenceStore> evidence;
  AutonomyPolicy autonomy;
  std::optional<ConsoleFiles> console;
  std::optional<ConsoleSessions> sessions;
  ConsoleSession session;
  std::string session_cookie;
  std::optional<ApiRouter> router;
  std::string tokens[4];
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Controller controller;
  if (size < 1) return 0;
  controller.clock.advance_ms(1000);
  controller.renew_callers();
  // The first byte picks the caller: the request's own Authorization (0), an admin, a viewer or
  // an integration token (1-3), the admin's console session with the request's own X-CSRF-Token
  // (4) or with the right one (5); and one of 42 source addresses: the failed-authentication
  // throttle (20 a minute per address) would otherwise answer 429 to nearly every input.
  const int caller = data[0] % 6;
  const std::string remote = "192.0.2." + std::to_string(data[0] / 6);
  ++data;
  --size;

  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (used < size && !parser.is_done()) {
    const auto n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more) break;
    if (ec) return 0;  // the server answers 400 and closes
    used += n;
    if (n == 0) break;
  }
  if (!parser.is_done()) {
    if (used == 0) return 0;  // nothing parsed: the connection closed before a request
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
  }
  const auto& request = parser.get();
  auto api = api_request(request, request.body(), remote);
  if (caller >= 1 && caller <= 3) api.authorization = "Bearer " + controller.tokens[caller];
  if (caller >= 4) {
    const auto& session = controller.admin_session();
    api.authorization.clear();
    api.cookie = controller.session_cookie;
    if (caller == 5) api.csrf_token = session.csrf_token;
  }

  (void)controller.router->body_limit(api, 64 * 1024);
  auto path = std::string_view(api.target).substr(0, api.target.find('?'));
  (void)controller.router->may_run_heavy(api, path);
  const auto response = controller.router->handle(api);
  if (response.status < 200 || response.status > 599) __builtin_trap();
  if (response.content_type == "application/json" && response.file.empty() &&
      !nlohmann::json::accept(response.body))
    __builtin_trap();
  return 0;
}
