#pragma once

// A daemon's health as a small JSON file in its own directory (status.json), read by
// `riposte-agent status` and `riposte-controller status`: another process learns whether the
// daemon runs, whether it is connected and what went wrong last, without a socket or a privilege
// beyond reading the directory. It holds no secret (mode 0644 inside a 0700 directory).
//
// Fields every daemon writes: pid, started_at, updated_at, running, stopped_at, last_error,
// last_error_at. Daemons add their own (the agent: connected, connected_since, last_disconnect).

#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "common/result.h"

namespace riposte {

class ServiceStatus {
 public:
  static constexpr const char* kFileName = "status.json";

  ServiceStatus(std::filesystem::path file, const Clock& clock);

  // Marks the daemon running under this pid from now; keeps the last error of the previous run
  // (what an operator looking at a restart loop wants to see).
  Status begin();
  // Sets one field; the file is rewritten only when a value changed. Thread-safe.
  void set(const std::string& key, nlohmann::json value);
  void record_error(const std::string& message);
  void end(const std::string& reason);

  const std::filesystem::path& file() const { return file_; }

 private:
  void write_locked();

  std::filesystem::path file_;
  const Clock& clock_;
  std::mutex mutex_;
  nlohmann::json fields_ = nlohmann::json::object();
};

// Adds a sink to the default logger that records every error-level message as the status's last
// error, so "last error" is exactly what the journal shows at error level.
void record_errors_in(std::shared_ptr<ServiceStatus> status);

// What a `status` command shows about a daemon from its status file: `running` is true only when
// the file says so and its pid is alive (a SIGKILLed daemon leaves running:true behind).
struct ServiceStatusView {
  bool present = false;
  bool running = false;
  nlohmann::json fields = nlohmann::json::object();
};
ServiceStatusView read_service_status(const std::filesystem::path& file);
// The fields both `status` commands report from it: running, pid, started_at, stopped_at,
// last_error, last_error_at (pid only while running, stopped_at only when not).
void add_run_fields(const ServiceStatusView& status, nlohmann::json& report);

// Marks the status stopped with `reason` when it goes out of scope, however the daemon's main
// function returns.
class MarkStoppedOnExit {
 public:
  MarkStoppedOnExit(ServiceStatus& status, std::string reason)
      : status_(status), reason_(std::move(reason)) {}
  ~MarkStoppedOnExit() { status_.end(reason_); }
  MarkStoppedOnExit(const MarkStoppedOnExit&) = delete;
  MarkStoppedOnExit& operator=(const MarkStoppedOnExit&) = delete;

 private:
  ServiceStatus& status_;
  std::string reason_;
};

}  // namespace riposte
