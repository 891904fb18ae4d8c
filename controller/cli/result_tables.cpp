#include "controller/cli/result_tables.h"

#include <fmt/format.h>

#include <iostream>
#include <vector>

#include "controller/cli/support.h"

namespace riposte::cli {

namespace {

using nlohmann::json;

std::string cut(std::string s, std::size_t width) {
  if (s.size() > width) s = s.substr(0, width - 1) + "…";
  return s;
}

std::string field(const json& item, const char* key) {
  return item.is_object() && item.contains(key) ? text(item[key]) : "-";
}

// Rows of `items`, one column per key; `wide` keys are cut at 60 characters.
void rows_of(const json& items, const std::vector<std::pair<const char*, const char*>>& columns,
             std::initializer_list<const char*> wide = {}) {
  std::vector<std::string> headers;
  for (const auto& [header, key] : columns) headers.emplace_back(header);
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : items) {
    auto& row = rows.emplace_back();
    for (const auto& [header, key] : columns) {
      auto value = field(item, key);
      for (const char* w : wide)
        if (std::string_view(w) == key) value = cut(value, 60);
      row.push_back(value);
    }
  }
  print_table(headers, rows);
}

void key_values(const json& result) {
  for (const auto& [key, value] : result.items()) {
    if (value.is_array() && !value.empty() && value.front().is_object()) {
      std::cout << fmt::format("{}: {} items\n", key, value.size());
      continue;
    }
    std::cout << fmt::format("{}: {}\n", key,
                             value.is_object() ? printable(value.dump()) : printable(text(value)));
  }
}

}  // namespace

void print_result(const std::string& kind, const json& result) {
  if (!result.is_object()) return;
  const auto list = [&](const char* key) {
    return result.contains(key) && result[key].is_array() ? result[key] : json::array();
  };
  if (kind == "process.list" || kind == "process.tree") {
    rows_of(list("processes"),
            {{"PID", "pid"},
             {"PPID", "ppid"},
             {"USER", "user"},
             {"STATE", "state"},
             {"RSS", "rss_bytes"},
             {"NAME", "name"},
             {"COMMAND", "cmdline"}},
            {"cmdline"});
  } else if (kind == "network.connections") {
    rows_of(list("current"), {{"PROTO", "protocol"},
                              {"LOCAL", "local_address"},
                              {"LPORT", "local_port"},
                              {"REMOTE", "remote_address"},
                              {"RPORT", "remote_port"},
                              {"STATE", "state"},
                              {"PID", "pid"},
                              {"PROCESS", "process"}});
    if (!list("history").empty()) {
      std::cout << "\nearlier contacts:\n";
      rows_of(list("history"), {{"REMOTE", "remote_address"},
                                {"RPORT", "remote_port"},
                                {"PROTO", "protocol"},
                                {"PID", "pid"},
                                {"FIRST", "first_seen_unix_ms"},
                                {"LAST", "last_seen_unix_ms"}});
    }
  } else if (kind == "host.logins") {
    std::cout << "logged in:\n";
    rows_of(list("current"),
            {{"USER", "user"}, {"TERMINAL", "terminal"}, {"FROM", "host"}, {"PID", "pid"}});
    std::cout << "\nrecent:\n";
    rows_of(
        list("recent"),
        {{"USER", "user"}, {"TERMINAL", "terminal"}, {"FROM", "host"}, {"TIME", "time_unix_ms"}});
  } else if (kind == "yara.scan") {
    rows_of(list("matches"), {{"RULE", "rule"}, {"TARGET", "target"}, {"TAGS", "tags"}});
    std::cout << fmt::format("bytes scanned: {}\n", field(result, "bytes_scanned"));
    for (const auto& e : list("errors")) std::cout << "error: " << printable(text(e)) << "\n";
  } else if (kind == "process.kill") {
    rows_of(list("processes"),
            {{"PID", "pid"}, {"NAME", "name"}, {"OUTCOME", "outcome"}, {"DETAIL", "detail"}});
  } else {
    key_values(result);
  }
}

}  // namespace riposte::cli
