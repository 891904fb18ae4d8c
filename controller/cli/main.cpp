// riposte: the operator CLI. Talks to the controller's HTTPS API with a bearer token.
//   riposte [--server URL] [--token T] [--ca FILE] <noun> <verb> [--json]

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/address.h"
#include "common/secure_file.h"
#include "common/utf8.h"
#include "controller/cli/alerts.h"
#include "controller/cli/audit_export.h"
#include "controller/cli/cases.h"
#include "controller/cli/operators.h"
#include "controller/cli/playbooks.h"
#include "controller/cli/result_tables.h"
#include "controller/cli/rule_sets.h"
#include "controller/cli/support.h"
#include "protocol/action_catalog.h"
#include "protocol/action_kinds.h"
#include "protocol/crypto.h"
#include "protocol/https_client.h"
#include "protocol/tls.h"

using namespace riposte;
using namespace riposte::cli;
using nlohmann::json;

namespace {

void print_action(const json& a) {
  for (const char* key : {"id", "agent_id", "kind", "state", "reason", "requester", "approver",
                          "case_id", "issued_at", "expires_at", "delivered_at", "started_at",
                          "finished_at", "duration_ms", "spec_sha256"}) {
    std::cout << fmt::format("{:<14} {}\n", std::string(key) + ":",
                             text(a.value(key, json(nullptr))));
  }
  const auto& p = a["progress"];
  if (p.is_object() && p.value("total", 0) > 0) {
    std::cout << fmt::format("{:<14} {} of {} {}\n", "progress:", p["done"].dump(),
                             p["total"].dump(), text(p["unit"]));
  }
  std::cout << fmt::format("{:<14} {}\n", "parameters:", a["parameters"].dump());
  for (const auto& e : a["evidence"]) {
    std::cout << fmt::format("{:<14} {} {} bytes {} ({})\n", "evidence:", text(e["sha256"]),
                             e["size"].dump(), text(e["name"]),
                             e.value("stored", false) ? "stored" : "upload pending");
  }
  std::cout << fmt::format("{:<14} {}\n", "outcome:", printable(text(a.value("outcome", json()))));
  if (!a["result"].is_null()) {
    std::cout << "result:\n";
    print_result(a.value("kind", ""), a["result"]);
  }
}

void print_agent(const json& a) {
  for (const char* key :
       {"id", "hostname", "status", "labels", "os", "kernel", "arch", "ip_addresses",
        "mac_addresses", "agent_version", "capabilities", "connected_since", "last_heartbeat",
        "last_seen", "remote_address", "last_disconnect_reason", "enrolled_at", "revoked_at",
        "cert_fingerprint"}) {
    std::cout << fmt::format("{:<23} {}\n", std::string(key) + ":",
                             text(a.value(key, json(nullptr))));
  }
}

// What `audit verify` prints, for the controller's walk and for an export's; exit 0 intact.
int print_audit_verification(const json& report, bool as_json) {
  if (as_json) {
    std::cout << report.dump(2) << "\n";
  } else if (report.value("ok", false)) {
    std::cout << fmt::format("Audit chain intact: {} entries, head {}\n",
                             report["entries_verified"].dump(), text(report["head_hash"]));
  } else {
    std::cout << fmt::format("Audit chain BROKEN at entry {}: {} ({} entries before it verified)\n",
                             report["first_broken_seq"].dump(), text(report["problem"]),
                             report["entries_verified"].dump());
  }
  return report.value("ok", false) ? 0 : 1;
}

}  // namespace

namespace {

int run_cli(int argc, char** argv) {
  CLI::App app{"Riposte operator CLI"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(RIPOSTE_VERSION));
  Connection given;
  app.add_option("--server", given.server,
                 "controller API URL, e.g. https://127.0.0.1:8443 (RIPOSTE_SERVER)");
  app.add_option("--token", given.token, "API token (RIPOSTE_TOKEN)");
  app.add_option("--ca", given.ca, "controller CA certificate PEM (RIPOSTE_CA)");
  bool as_json = false;

  auto* agents = app.add_subcommand("agents", "enrolled agents");
  agents->require_subcommand(1);
  auto* list = agents->add_subcommand("list", "list agents");
  list->add_flag("--json", as_json, "print JSON");
  std::string agent_id;
  auto* show = agents->add_subcommand("show", "show one agent");
  show->add_option("ID", agent_id, "agent id")->required();
  show->add_flag("--json", as_json, "print JSON");
  auto* revoke =
      agents->add_subcommand("revoke", "revoke an agent: close its session, refuse it from now on");
  revoke->add_option("ID", agent_id, "agent id")->required();
  revoke->add_flag("--json", as_json, "print JSON");

  auto* label = agents->add_subcommand("label", "set an agent's labels (replaces them)");
  std::vector<std::string> labels;
  label->add_option("ID", agent_id, "agent id")->required();
  label->add_option("LABELS", labels, "labels, e.g. web pci (none: clear)");
  label->add_flag("--json", as_json, "print JSON");

  auto* tokens = app.add_subcommand("tokens", "enrollment tokens");
  tokens->require_subcommand(1);
  auto* create = tokens->add_subcommand("create", "create an enrollment token");
  int uses = 1;
  std::string ttl = "24h";
  create->add_option("--uses", uses, "how many agents may enroll with it (default 1)");
  create->add_option("--ttl", ttl, "lifetime, e.g. 30m, 24h, 7d (default 24h)");
  std::vector<std::string> token_labels;
  create->add_option("--label", token_labels,
                     "label every agent enrolled with it gets (repeatable)")
      ->allow_extra_args(false);
  create->add_flag("--json", as_json, "print JSON");

  auto* action = app.add_subcommand("action", "response actions");
  action->require_subcommand(1);
  auto* run = action->add_subcommand("run", "sign and send an action to one or more agents");
  std::string kind;
  std::vector<std::string> targets;
  std::vector<std::string> params;
  std::string params_json;
  std::string action_ttl = "5m";
  std::string case_id;
  bool wait = false;
  std::string wait_timeout = "10m";
  run->add_option("KIND", kind, "action kind, e.g. process.kill, memory.capture")->required();
  std::vector<std::string> target_labels;
  auto* agent_option = run->add_option("--agent", targets, "target agent id (repeat for fan-out)")
                           ->allow_extra_args(false);
  auto* label_option =
      run->add_option("--label", target_labels, "every agent with this label (repeatable)")
          ->allow_extra_args(false);
  run->callback([&] {
    if (agent_option->count() == 0 && label_option->count() == 0)
      throw CLI::ValidationError("action run", "give --agent ID or --label LABEL (or both)");
  });
  run->add_option("--param", params,
                  "parameter KEY=VALUE; dotted keys nest (target.pid=42), repeat for lists")
      ->allow_extra_args(false);
  run->add_option("--params-json", params_json, "parameters as one JSON object");
  run->add_option("--ttl", action_ttl, "expire if not delivered within this (default 5m)");
  run->add_option("--case", case_id, "case id to file the action under");
  run->add_flag("--wait", wait, "wait until every action has ended");
  run->add_option("--timeout", wait_timeout, "give up waiting after this (default 10m)");
  run->add_flag("--json", as_json, "print JSON (with --wait: one object per action when it ends)");
  std::string action_id;
  auto* action_show = action->add_subcommand("show", "show one action");
  action_show->add_option("ID", action_id, "action id")->required();
  action_show->add_flag("--json", as_json, "print JSON");
  auto* action_list = action->add_subcommand("list", "list recent actions");
  int limit = 50;
  action_list->add_option("--limit", limit, "how many (default 50)");
  action_list->add_flag("--json", as_json, "print JSON");

  auto* evidence = app.add_subcommand("evidence", "evidence collected by actions");
  evidence->require_subcommand(1);
  auto* evidence_get = evidence->add_subcommand("get", "download an evidence object");
  std::string sha256, output;
  evidence_get->add_option("SHA256", sha256, "the object's SHA-256")->required();
  evidence_get->add_option("-o,--output", output, "file to write")->required();

  auto* evidence_show =
      evidence->add_subcommand("show", "which actions produced an object, and its custody log");
  evidence_show->add_option("SHA256", sha256, "the object's SHA-256")->required();
  evidence_show->add_flag("--json", as_json, "print JSON");

  auto* audit = app.add_subcommand("audit", "the hash-chained audit log");
  audit->require_subcommand(1);
  auto* audit_verify = audit->add_subcommand("verify", "check every link of the chain");
  audit_verify->add_flag("--json", as_json, "print JSON");
  std::string audit_file;
  audit_verify->add_option("--file", audit_file,
                           "check an export (riposte audit export) offline, without a controller");
  auto* audit_export = audit->add_subcommand("export", "write the log as JSON lines");
  std::string audit_output;
  audit_export->add_option("-o,--output", audit_output, "file to write (default stdout)");

  AlertCommands alert_commands;
  alert_commands.attach(app);
  OperatorCommands operator_commands;
  operator_commands.attach(app);
  PlaybookCommands playbook_commands;
  playbook_commands.attach(app);
  CaseCommands case_commands;
  case_commands.attach(app);
  RuleSetCommands rule_set_commands;
  rule_set_commands.attach(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (auto handled = playbook_commands.run_offline()) return *handled;  // no controller needed
  if (audit_verify->parsed() && !audit_file.empty()) {
    auto verified = verify_audit_export(audit_file);
    if (!verified) die(verified.error().message);
    return print_audit_verification(
        json{{"ok", !verified->first_broken_seq.has_value()},
             {"entries_verified", verified->entries},
             {"first_broken_seq",
              verified->first_broken_seq ? json(*verified->first_broken_seq) : json()},
             {"problem", verified->problem.empty() ? json() : json(verified->problem)},
             {"head_hash", verified->head_hash},
             {"file", audit_file}},
        as_json);
  }
  const Connection c{env_or("RIPOSTE_SERVER", given.server), env_or("RIPOSTE_TOKEN", given.token),
                     env_or("RIPOSTE_CA", given.ca)};

  if (auto handled = alert_commands.run(c)) return *handled;
  if (auto handled = operator_commands.run(c)) return *handled;
  if (auto handled = playbook_commands.run(c)) return *handled;
  if (auto handled = case_commands.run(c)) return *handled;
  if (auto handled = rule_set_commands.run(c)) return *handled;
  if (list->parsed()) {
    const auto result = call(c, "GET", "/api/v1/agents");
    if (as_json) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : result.at("agents")) {
      rows.push_back({text(a["id"]), text(a["hostname"]), text(a["status"]), text(a["labels"]),
                      text(a["os"]), text(a["kernel"]), text(a["ip_addresses"]),
                      text(a["agent_version"]), text(a["capabilities"]), text(a["connected_since"]),
                      text(a["last_heartbeat"])});
    }
    print_table({"ID", "HOSTNAME", "STATUS", "LABELS", "OS", "KERNEL", "IP ADDRESSES", "VERSION",
                 "CAPABILITIES", "CONNECTED SINCE", "LAST HEARTBEAT"},
                rows);
    return 0;
  }
  if (show->parsed() || revoke->parsed()) {
    const auto result = show->parsed() ? call(c, "GET", "/api/v1/agents/" + agent_id)
                                       : call(c, "POST", "/api/v1/agents/" + agent_id + "/revoke");
    if (as_json) {
      std::cout << result.dump(2) << "\n";
    } else {
      if (revoke->parsed()) std::cout << "Revoked agent " << agent_id << ".\n";
      print_agent(result);
    }
    return 0;
  }
  if (run->parsed()) {
    json parameters = json::object();
    if (!params_json.empty()) {
      parameters = json::parse(params_json, nullptr, false);
      if (!parameters.is_object()) die("--params-json must be a JSON object");
    }
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const auto& p : params) {
      const auto eq = p.find('=');
      if (eq == std::string::npos || eq == 0) die(fmt::format("--param '{}' is not KEY=VALUE", p));
      auto key = p.substr(0, eq);
      auto value = p.substr(eq + 1);
      // KEY=@FILE: the file's content ("@@" keeps a leading '@'). A yara.scan's rules are
      // uploaded as a rule set of any size and sent by hash, not inside the request.
      if (value.starts_with("@@")) {
        value.erase(0, 1);
      } else if (value.starts_with("@")) {
        const auto path = value.substr(1);
        if (kind == action_kind::kYaraScan && key == "rules") {
          for (const auto& other : params)
            if (other.starts_with("rules_sha256="))
              die("give --param rules=@FILE or --param rules_sha256=..., not both");
          const auto uploaded = upload_rule_set(c, path, "");
          key = "rules_sha256";
          value = uploaded["sha256"].get<std::string>();
          if (!as_json)
            std::cerr << fmt::format("riposte: rule set {} ({} bytes) from {}\n", value,
                                     text(uploaded["size"]), path);
        } else {
          value = read_whole_file(path);
        }
      }
      // A value that is UTF-8 is sent as it is: text, or a name pasted as the controller shows it
      // (wire text, common/utf8.h), which the agent turns back into the exact bytes. One that is
      // not (raw bytes typed in the shell, $'...\xff') is escaped into wire text here.
      pairs.emplace_back(std::move(key), is_utf8(value) ? value : to_wire_text(value));
    }
    if (!pairs.empty()) {
      auto from_pairs = action_catalog::parameters_from_pairs(kind, pairs);
      if (!from_pairs) die(from_pairs.error().message);
      parameters.update(*from_pairs);
    }
    json body{{"kind", kind}, {"parameters", parameters}, {"ttl", action_ttl}};
    if (!targets.empty()) body["agents"] = targets;
    if (!target_labels.empty()) body["labels"] = target_labels;
    if (!case_id.empty()) body["case_id"] = case_id;
    const auto created = call(c, "POST", "/api/v1/actions", body);
    std::vector<json> actions(created["actions"].begin(), created["actions"].end());
    if (!wait) {
      if (as_json) {
        std::cout << created.dump(2) << "\n";
      } else {
        for (const auto& a : actions)
          std::cout << fmt::format("Action {} ({}) for agent {}: {}\n", text(a["id"]),
                                   text(a["kind"]), text(a["agent_id"]), text(a["state"]));
      }
      return 0;
    }
    auto timeout_ms = [&]() -> std::int64_t {
      // Same forms as --ttl; checked by the controller for ttl, here for the wait.
      const auto& t = wait_timeout;
      std::size_t digits = 0;
      while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
      if (digits == 0) die("--timeout must look like 30s, 10m or 1h");
      const auto n = std::stoll(t.substr(0, digits));
      const auto unit = t.substr(digits);
      if (unit == "s") return n * 1000;
      if (unit == "m") return n * 60'000;
      if (unit == "h") return n * 3'600'000;
      die("--timeout must look like 30s, 10m or 1h");
    }();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<bool> reported(actions.size(), false);
    int exit_code = 0;
    for (;;) {
      bool all_done = true;
      for (std::size_t i = 0; i < actions.size(); ++i) {
        if (reported[i]) continue;
        actions[i] = call(c, "GET", "/api/v1/actions/" + actions[i]["id"].get<std::string>());
        if (!action_ended(actions[i])) {
          all_done = false;
          continue;
        }
        reported[i] = true;
        if (actions[i]["state"] != "succeeded") exit_code = 2;
        if (as_json) {
          std::cout << actions[i].dump() << "\n" << std::flush;
        } else {
          print_action(actions[i]);
          std::cout << "\n";
        }
      }
      if (all_done) return exit_code;
      if (std::chrono::steady_clock::now() > deadline) {
        std::cerr << "riposte: timed out waiting; actions still open:";
        for (std::size_t i = 0; i < actions.size(); ++i)
          if (!reported[i])
            std::cerr << " " << text(actions[i]["id"]) << " (" << text(actions[i]["state"]) << ")";
        std::cerr << "\n";
        return 3;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (action_show->parsed()) {
    const auto a = call(c, "GET", "/api/v1/actions/" + action_id);
    if (as_json)
      std::cout << a.dump(2) << "\n";
    else
      print_action(a);
    return 0;
  }
  if (action_list->parsed()) {
    const auto result = call(c, "GET", fmt::format("/api/v1/actions?limit={}", limit));
    if (as_json) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : result.at("actions")) {
      rows.push_back({text(a["id"]), text(a["agent_id"]), text(a["kind"]), text(a["state"]),
                      text(a["requester"]), text(a["issued_at"]), text(a["reason"])});
    }
    print_table({"ID", "AGENT", "KIND", "STATE", "REQUESTER", "ISSUED", "REASON"}, rows);
    return 0;
  }
  if (label->parsed()) {
    const auto result =
        call(c, "POST", "/api/v1/agents/" + agent_id + "/labels", json{{"labels", labels}});
    if (as_json) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("Agent {} labels: {}\n", agent_id, text(result["labels"]));
    }
    return 0;
  }
  if (evidence_show->parsed()) {
    const auto result = call(c, "GET", "/api/v1/evidence/" + sha256 + "/custody");
    if (as_json) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::cout << fmt::format("Evidence {} ({} bytes)\n", sha256, result["size"].dump());
    for (const auto& p : result["produced_by"]) {
      std::cout << fmt::format(
          "  produced by action {} on agent {} as {} ({})\n", text(p["action_id"]),
          text(p["agent_id"]), text(p["name"]),
          p.value("stored", false) ? "stored " + text(p["stored_at"]) : "upload pending");
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : result["custody"]) {
      rows.push_back({e["seq"].dump(), text(e["at"]), text(e["actor"]), text(e["event"]),
                      e["details"].dump()});
    }
    print_table({"SEQ", "AT", "ACTOR", "EVENT", "DETAILS"}, rows);
    if (!result["next_after"].is_null())
      std::cout << fmt::format(
          "(the first {} entries; the next page: GET "
          "/api/v1/evidence/{}/custody?after={})\n",
          rows.size(), sha256, result["next_after"].dump());
    return 0;
  }
  if (evidence_get->parsed()) {
    call_raw(c, "GET", "/api/v1/evidence/" + sha256, nullptr, output);
    // The controller checked the hash before sending; check what arrived, too.
    auto digest = crypto::sha256_file(output);
    if (!digest) die(digest.error().message);
    if (*digest != sha256) {
      std::filesystem::remove(output);
      die(fmt::format("downloaded bytes hash to {}, not {}; file removed", *digest, sha256));
    }
    std::cout << fmt::format("Wrote {} ({} bytes, SHA-256 verified)\n", output,
                             std::filesystem::file_size(output));
    return 0;
  }
  if (audit_verify->parsed())
    return print_audit_verification(call(c, "GET", "/api/v1/audit/verify"), as_json);
  if (audit_export->parsed()) {
    std::ofstream file;
    // Written beside FILE and renamed over it only when the whole log arrived: a refused or
    // broken export never leaves FILE empty or cut short (an empty file would verify as intact).
    static std::string partial;
    if (!audit_output.empty()) {
      partial = audit_output + ".partial";
      // The log names operators, hosts and what was done to them: private, as reports are.
      if (auto s = create_private_file(partial); !s) die(s.error().message);
      std::atexit([] {
        if (!partial.empty()) std::filesystem::remove(partial);
      });
      file.open(partial, std::ios::binary | std::ios::trunc);
      if (!file) die("cannot write " + partial);
    }
    std::ostream& out = audit_output.empty() ? std::cout : file;
    std::int64_t after = 0;
    for (;;) {
      const auto page =
          call_raw(c, "GET", fmt::format("/api/v1/audit?after={}&limit=10000", after));
      if (page.empty()) break;
      out << page;
      const auto last_line_start = page.rfind('\n', page.size() - 2);
      const auto last =
          json::parse(page.substr(last_line_start == std::string::npos ? 0 : last_line_start + 1));
      after = last["seq"].get<std::int64_t>();
    }
    if (!audit_output.empty()) {
      file.close();
      if (!file) die("cannot write " + partial);
      std::error_code ec;
      std::filesystem::rename(partial, audit_output, ec);
      if (ec) die(fmt::format("cannot rename {} to {}: {}", partial, audit_output, ec.message()));
      partial.clear();
    }
    return 0;
  }
  if (create->parsed()) {
    json request{{"uses", uses}, {"ttl", ttl}};
    if (!token_labels.empty()) request["labels"] = token_labels;
    const auto result = call(c, "POST", "/api/v1/enrollment-tokens", request);
    if (as_json) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << "Enrollment token (shown once): " << text(result["token"]) << "\n"
                << "Uses: " << text(result["uses"]) << ", expires " << text(result["expires_at"])
                << "\n";
      if (!token_labels.empty())
        std::cout << "Agents enrolled with it are labelled: " << fmt::format("{}", fmt::join(token_labels, " "))
                  << "\n";
    }
    return 0;
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // A fault of the CLI's own (a reply of an unexpected shape, a JSON writer refusing text) is
  // reported as an error and an exit status, never an abort with a core.
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "riposte: internal error: " << e.what() << "\n";
    return 1;
  }
}
