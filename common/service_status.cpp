#include "common/service_status.h"

#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

#include "common/secure_file.h"
#include "common/utc_time.h"

namespace riposte {

ServiceStatus::ServiceStatus(std::filesystem::path file, const Clock& clock)
    : file_(std::move(file)), clock_(clock) {}

Status ServiceStatus::begin() {
  std::lock_guard lock(mutex_);
  if (auto text = read_file(file_)) {
    auto previous = nlohmann::json::parse(*text, nullptr, false);
    if (previous.is_object()) {
      for (const char* key : {"last_error", "last_error_at"}) {
        if (previous.contains(key)) fields_[key] = previous[key];
      }
    }
  }
  fields_["pid"] = static_cast<long>(::getpid());
  fields_["running"] = true;
  fields_["started_at"] = format_utc_ms(clock_.now_unix_ms());
  fields_["stopped_at"] = nullptr;
  fields_["updated_at"] = fields_["started_at"];
  const auto text = fields_.dump(2) + "\n";
  return write_file_atomic(file_, text, 0644);
}

void ServiceStatus::set(const std::string& key, nlohmann::json value) {
  std::lock_guard lock(mutex_);
  if (fields_.contains(key) && fields_[key] == value) return;
  fields_[key] = std::move(value);
  write_locked();
}

void ServiceStatus::record_error(const std::string& message) {
  std::lock_guard lock(mutex_);
  fields_["last_error"] = message;
  fields_["last_error_at"] = format_utc_ms(clock_.now_unix_ms());
  write_locked();
}

void ServiceStatus::end(const std::string& reason) {
  std::lock_guard lock(mutex_);
  fields_["running"] = false;
  fields_["stopped_at"] = format_utc_ms(clock_.now_unix_ms());
  fields_["stop_reason"] = reason;
  write_locked();
}

void ServiceStatus::write_locked() {
  fields_["updated_at"] = format_utc_ms(clock_.now_unix_ms());
  // Not through spdlog: a failure here while recording an error would recurse into the sink.
  (void)write_file_atomic(file_, fields_.dump(2) + "\n", 0644);
}

namespace {

class LastErrorSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit LastErrorSink(std::shared_ptr<ServiceStatus> status) : status_(std::move(status)) {
    set_level(spdlog::level::err);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    status_->record_error(std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::shared_ptr<ServiceStatus> status_;
};

}  // namespace

void record_errors_in(std::shared_ptr<ServiceStatus> status) {
  spdlog::default_logger()->sinks().push_back(std::make_shared<LastErrorSink>(std::move(status)));
}

ServiceStatusView read_service_status(const std::filesystem::path& file) {
  ServiceStatusView view;
  auto text = read_file(file);
  if (!text) return view;
  auto fields = nlohmann::json::parse(*text, nullptr, false);
  if (!fields.is_object()) return view;
  view.present = true;
  view.fields = std::move(fields);
  const auto pid = view.fields.value("pid", 0L);
  // kill(pid, 0) fails with EPERM for a live process we may not signal: still alive.
  const bool alive = pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
  view.running = view.fields.value("running", false) && alive;
  return view;
}

void add_run_fields(const ServiceStatusView& status, nlohmann::json& report) {
  const auto field = [&](const char* key) {
    return status.fields.value(key, nlohmann::json(nullptr));
  };
  report["running"] = status.running;
  report["pid"] = status.running ? field("pid") : nlohmann::json(nullptr);
  report["started_at"] = field("started_at");
  report["stopped_at"] = status.running ? nlohmann::json(nullptr) : field("stopped_at");
  report["last_error"] = field("last_error");
  report["last_error_at"] = field("last_error_at");
}

}  // namespace riposte
