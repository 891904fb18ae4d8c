#include "common/logging.h"

#include <fmt/format.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/utc_time.h"

namespace riposte {

namespace {

// One JSON object a line. Messages can carry hostile strings (hostnames, reasons from peers), so
// they are escaped by a JSON library rather than pasted into a pattern.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json line{
        {"time", format_utc_ms(ms)},
        {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size())},
        {"component", std::string(msg.logger_name.data(), msg.logger_name.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// "<3>" for error, "<4>" for warning...: the sd-daemon prefix journald reads off a service's
// stderr as the syslog priority, so `journalctl -p err -u riposte-agent` finds errors.
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kPriority[] = {'7', '7', '6', '4',
                                         '3', '2', '6'};  // trace..critical, off
    const char text[] = {'<', kPriority[static_cast<int>(msg.level)], '>'};
    dest.append(text, text + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

// The message with control characters written as \xNN: text a log line quotes (a hostname an
// agent reported, an alert's field) cannot forge a second line or send terminal escapes to
// whoever reads the log. (The JSON format escapes through the JSON library.)
class EscapedPayloadFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (const char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        const char hex[] = "0123456789abcdef";
        const char escaped[] = {'\\', 'x', hex[u >> 4], hex[u & 0xf]};
        dest.append(escaped, escaped + 4);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedPayloadFlag>();
  }
};

}  // namespace

std::unique_ptr<spdlog::formatter> journal_formatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  // journald stamps every line itself: no time here, priority first.
  formatter->add_flag<SyslogPriorityFlag>('*').add_flag<EscapedPayloadFlag>('V').set_pattern(
      "%*%n: %V");
  return formatter;
}

Status configure_logging(const std::string& component, const std::string& level,
                         const std::string& format) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    return Error{
        fmt::format("log level '{}' is not one of trace, debug, info, warn, error", level)};
  }
  if (format != "text" && format != "json") {
    return Error{fmt::format("log format '{}' is not text or json", format)};
  }
  auto named = std::make_shared<spdlog::logger>(
      component, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (format == "json") {
    named->set_formatter(std::make_unique<JsonFormatter>());
  } else if (std::getenv("JOURNAL_STREAM") != nullptr) {
    // systemd connected stderr to the journal (systemd.exec(5) sets JOURNAL_STREAM).
    named->set_formatter(journal_formatter());
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<EscapedPayloadFlag>('V').set_pattern(
        "%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %n: %V");
    named->set_formatter(std::move(formatter));
  }
  named->set_level(parsed);
  named->flush_on(spdlog::level::info);
  spdlog::set_default_logger(named);
  return ok_status();
}

}  // namespace riposte
