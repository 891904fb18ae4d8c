#include "controller/cli/alerts.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <sstream>

namespace riposte::cli {

using nlohmann::json;

void AlertCommands::attach(CLI::App& app) {
  auto* alerts = app.add_subcommand("alerts", "alerts from SIEM/EDR: submit, list, show");
  alerts->require_subcommand(1);
  submit_ = alerts->add_subcommand(
      "submit",
      "submit alerts from a file: one JSON alert, a JSON list, or JSON lines ('-': stdin)");
  submit_->add_option("FILE", file_, "file to read, or - for stdin")->required();
  submit_->add_option("--format", format_, "force the format: ecs, wazuh or generic")
      ->check(CLI::IsMember({"ecs", "wazuh", "generic"}));
  submit_->add_option("--batch", batch_, "alerts per request (default 1000)")
      ->check(CLI::Range(1, 10'000));
  submit_->add_flag("--json", json_, "print JSON");
  list_ = alerts->add_subcommand("list", "list recent alerts");
  list_->add_option("--status", status_,
                    "only new, validating, qualified, not_relevant, undetermined or unvalidated");
  list_->add_option("--limit", limit_, "at most this many (default 50)");
  list_->add_flag("--json", json_, "print JSON");
  show_ = alerts->add_subcommand("show",
                                 "show one alert: fields, observables, validation, "
                                 "enrichment, confidence with reasons");
  show_->add_option("ID", id_, "alert id")->required();
  show_->add_flag("--json", json_, "print JSON");

  auto* intel = app.add_subcommand("intel", "threat-intelligence feeds");
  intel->require_subcommand(1);
  lookup_ = intel->add_subcommand("lookup", "which feeds list an indicator, and the confidence");
  lookup_->add_option("VALUE", value_, "IP address, domain, URL or hash")->required();
  lookup_->add_flag("--json", json_, "print JSON");
  feeds_ = intel->add_subcommand("feeds", "loaded feeds and their indicator counts");
  feeds_->add_flag("--json", json_, "print JSON");
  reload_ = intel->add_subcommand("reload", "re-read the feed files and the asset map");
  reload_->add_flag("--json", json_, "print JSON");

  auto* assets = app.add_subcommand("assets", "the asset map merged with the agent inventory");
  assets->require_subcommand(1);
  assets_ = assets->add_subcommand("list",
                                   "hosts with their application, environment, "
                                   "criticality and owner; gaps on both sides");
  assets_->add_flag("--json", json_, "print JSON");
}

std::optional<int> AlertCommands::run(const Connection& c) {
  if (submit_->parsed()) return submit(c);
  if (show_->parsed()) return show(c);
  if (list_->parsed()) {
    std::string target = fmt::format("/api/v1/alerts?limit={}", limit_);
    if (!status_.empty()) target += "&status=" + url_encode(status_);
    const auto result = call(c, "GET", target);
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : result["alerts"]) {
      rows.push_back({text(a["id"]), text(a["source"]), text(a["severity"]), text(a["status"]),
                      fmt::format("{:.2f} {}", a.value("confidence", 0.0), text(a["decision"])),
                      text(a["host"]["name"]), text(a["rule"]["name"]), text(a["timestamp"])});
    }
    print_table({"ID", "SOURCE", "SEVERITY", "STATUS", "CONFIDENCE", "HOST", "RULE", "TIME"}, rows);
    return 0;
  }
  if (lookup_->parsed()) {
    const auto result = call(c, "GET", "/api/v1/intel/lookup?value=" + url_encode(value_));
    if (json_) {
      std::cout << result.dump(2) << "\n";
    } else {
      std::cout << fmt::format("{} {}: listed by {} of {} feeds ({})\nconfidence {:.2f}: {}\n",
                               text(result["type"]), text(result["value"]), result["feeds"].size(),
                               result["feeds_configured"].dump(), text(result["feeds"]),
                               result.value("confidence", 0.0), text(result["decision"]));
    }
    return 0;
  }
  if (feeds_->parsed() || reload_->parsed()) {
    const auto result = feeds_->parsed() ? call(c, "GET", "/api/v1/intel/feeds")
                                         : call(c, "POST", "/api/v1/intel/reload");
    if (json_) {
      std::cout << result.dump(2) << "\n";
      return 0;
    }
    if (reload_->parsed()) std::cout << "Reloaded.\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : result["feeds"]) {
      const auto count = [&](const char* key) { return f.value(key, json(0)).dump(); };
      rows.push_back({text(f["name"]), text(f["format"]), f["weight"].dump(), count("indicators"),
                      count("networks"), count("timed"), count("expired"), count("revoked"),
                      count("not_for_detection"), count("skipped"), text(f["loaded_at"]),
                      text(f["path"])});
    }
    // TIMED: valid in a window only (judged at each lookup); EXPIRED, REVOKED, NOT-DETECT: held
    // out on the feed's own word (STIX valid_until/revoked, OpenCTI x_opencti_detection, MISP
    // deleted/to_ids/expiration sightings).
    print_table({"NAME", "FORMAT", "WEIGHT", "INDICATORS", "RANGES", "TIMED", "EXPIRED", "REVOKED",
                 "NOT-DETECT", "SKIPPED", "LOADED", "PATH"},
                rows);
    // Per feed: how it was read, what was skipped and why, and a failed load.
    for (const auto& f : result["feeds"]) {
      if (!f.value("read_as", "").empty())
        std::cout << fmt::format("{}: read {}\n", text(f["name"]), text(f["read_as"]));
      for (const auto& reason : f.value("skip_reasons", json::array()))
        std::cout << fmt::format("{}: skipped {}\n", text(f["name"]), text(reason));
      if (f.contains("error") && f["error"].is_string())
        std::cout << fmt::format("{}: LOAD FAILED at {}: {}; {}\n", text(f["name"]),
                                 text(f["failed_at"]), text(f["error"]),
                                 f["loaded_at"].is_null() ? "no contents in use"
                                                          : "the previous contents stay in use");
    }
    return 0;
  }
  if (assets_->parsed()) {
    const auto view = call(c, "GET", "/api/v1/assets");
    if (json_) {
      std::cout << view.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& h : view["hosts"]) {
      rows.push_back({text(h["hostname"]), text(h["agent_id"]), text(h["status"]),
                      text(h["assets"]), text(h["application"]), text(h["environment"]),
                      text(h["criticality"]), text(h["owner"])});
    }
    for (const auto& h : view["agents_not_covered"]) {
      rows.push_back({text(h["hostname"]), text(h["agent_id"]), text(h["status"]),
                      "NOT COVERED by any asset entry", "-", "-", "-", "-"});
    }
    print_table(
        {"HOST", "AGENT", "STATUS", "ASSETS", "APPLICATION", "ENVIRONMENT", "CRITICALITY", "OWNER"},
        rows);
    if (!view["entries_without_agent"].empty()) {
      std::cout << "\nAsset entries with no enrolled agent: " << text(view["entries_without_agent"])
                << "\n";
    }
    return 0;
  }
  return std::nullopt;
}

int AlertCommands::submit(const Connection& c) {
  const auto documents = read_json_documents(file_);
  const std::string target = "/api/v1/alerts" + (format_.empty() ? "" : "?format=" + format_);
  json combined{
      {"ids", json::array()}, {"stored", 0}, {"duplicates", 0}, {"alerts", json::array()}};
  for (std::size_t start = 0; start < documents.size(); start += batch_) {
    const auto end = std::min(documents.size(), start + batch_);
    json batch = json::array();
    for (std::size_t i = start; i < end; ++i) batch.push_back(documents[i]);
    const std::string body = documents.size() == 1 ? documents[0].dump() : batch.dump();
    auto response = json::parse(call_raw_text(c, "POST", target, body), nullptr, false);
    if (!response.is_object()) die("controller sent a response that is not JSON");
    for (const auto& id : response["ids"]) combined["ids"].push_back(id);
    for (const auto& a : response["alerts"]) combined["alerts"].push_back(a);
    combined["stored"] = combined["stored"].get<int>() + response.value("stored", 0);
    combined["duplicates"] = combined["duplicates"].get<int>() + response.value("duplicates", 0);
    if (documents.size() > batch_)
      std::cerr << fmt::format("sent {}/{} alerts\n", end, documents.size());
  }
  if (json_) {
    std::cout << combined.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : combined["alerts"])
    rows.push_back(
        {text(a["id"]), text(a["case_id"]), a.value("duplicate", false) ? "duplicate" : "stored"});
  print_table({"ALERT", "CASE", "RESULT"}, rows);
  std::cout << fmt::format("{} stored, {} duplicate(s)\n", combined["stored"].dump(),
                           combined["duplicates"].dump());
  return 0;
}

int AlertCommands::show(const Connection& c) {
  const auto a = call(c, "GET", "/api/v1/alerts/" + url_encode(id_));
  if (json_) {
    std::cout << a.dump(2) << "\n";
    return 0;
  }
  auto line = [](std::string_view key, const std::string& value) {
    std::cout << fmt::format("{:<13} {}\n", std::string(key) + ":", value);
  };
  line("id", text(a["id"]));
  line("source", text(a["source"]));
  line("rule", fmt::format("{} ({})", text(a["rule"]["name"]), text(a["rule"]["id"])));
  line("severity", text(a["severity"]));
  line("timestamp", text(a["timestamp"]));
  line("host", text(a["host"]["name"]));
  if (a.contains("user")) line("user", text(a["user"]["name"]));
  line("case", text(a["case_id"]));
  line("status", text(a["status"]));
  if (const auto by = a.value("submitted_by", nlohmann::json::object()); by.is_object()) {
    line("submitted by",
         by.value("max_mode", nlohmann::json()).is_string()
             ? fmt::format("{} (integration, max mode {})", text(by["name"]), text(by["max_mode"]))
             : fmt::format("{} ({})", text(by.value("name", nlohmann::json())),
                           text(by.value("role", nlohmann::json()))));
  }
  for (const auto& o : a["observables"])
    line("observable", fmt::format("{} {}", text(o["type"]), text(o["value"])));
  for (const auto& n : a["notes"]) line("note", text(n));
  for (const auto& asset : a["assets"])
    line("asset", fmt::format("{} app={} env={} criticality={} owner={}", text(asset["name"]),
                              text(asset["application"]), text(asset["environment"]),
                              text(asset["criticality"]), text(asset["owner"])));
  const auto& v = a["validation"];
  if (v.is_object() && v.contains("outcome"))
    line("validation", fmt::format("{}: {}", text(v["outcome"]), text(v.value("reason", json()))));
  const auto& conf = a["confidence"];
  if (conf.is_object() && conf.contains("decision"))
    line("confidence", fmt::format("{:.2f} -> {}: {}", conf.value("score", 0.0),
                                   text(conf["decision"]), text(conf.value("reason", json()))));
  const auto& e = a["enrichment"];
  if (e.is_object() && e.contains("impacted")) {
    line("impacted", std::to_string(e["impacted"].size()) + " host(s)");
    line("people", std::to_string(e["people"].size()) + " logged in");
    line("history", std::to_string(e["history"]["alerts"].size()) + " related alert(s)");
    for (const auto& m : e["missing"])
      line("missing", fmt::format("{} on {}: {}", text(m.value("what", json())),
                                  text(m.value("hostname", m.value("agent_id", json()))),
                                  text(m.value("why", json()))));
  }
  return 0;
}

}  // namespace riposte::cli
