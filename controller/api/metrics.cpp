#include "controller/api/metrics.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>

namespace riposte::controller {

namespace {

std::string escape_label(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return fmt::format("{:.0f}", value);
  return fmt::format("{}", value);
}

// The controller process itself (not an endpoint): the client libraries' process_* metrics.
void process_metrics(MetricsWriter& w) {
  const long ticks = ::sysconf(_SC_CLK_TCK);
  const long page = ::sysconf(_SC_PAGESIZE);
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
  // Fields after the command name (which may hold spaces) start after the last ')'.
  if (const auto close = stat.rfind(')'); close != std::string::npos && ticks > 0) {
    std::istringstream fields(stat.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(fields)), {});
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
    if (f.size() > 21) {
      const double cpu = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(ticks);
      w.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                cpu);
      w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[20]));
      w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
              std::stod(f[21]) * static_cast<double>(page));
      std::ifstream uptime_file("/proc/uptime");
      double uptime = 0;
      uptime_file >> uptime;
      const double now = static_cast<double>(::time(nullptr));
      w.gauge("process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.",
              std::floor(now - uptime + std::stod(f[19]) / static_cast<double>(ticks)));
    }
  }
  int fds = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(dir)) fds += e->d_name[0] != '.';
    ::closedir(dir);
    --fds;  // the directory stream's own descriptor
  }
  w.gauge("process_open_fds", "Number of open file descriptors.", fds);
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
    w.gauge("process_max_fds", "Maximum number of open file descriptors.",
            static_cast<double>(limit.rlim_cur));
}

}  // namespace

void MetricsWriter::family(const std::string& name, const std::string& help, const char* type) {
  if (name == last_family_) return;
  last_family_ = name;
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void MetricsWriter::sample(const std::string& name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out_ += ',';
      out_ += fmt::format("{}=\"{}\"", labels[i].first, escape_label(labels[i].second));
    }
    out_ += '}';
  }
  out_ += ' ' + number(value) + '\n';
}

void MetricsWriter::gauge(const std::string& name, const std::string& help, double value,
                          const Labels& labels) {
  family(name, help, "gauge");
  sample(name, labels, value);
}

void MetricsWriter::counter(const std::string& name, const std::string& help, double value,
                            const Labels& labels) {
  family(name, help, "counter");
  sample(name, labels, value);
}

void MetricsWriter::histogram(const std::string& name, const std::string& help,
                              const Labels& labels, const std::vector<double>& bounds,
                              const std::vector<std::uint64_t>& at_or_below, std::uint64_t count,
                              double sum) {
  family(name, help, "histogram");
  for (std::size_t i = 0; i < bounds.size() && i < at_or_below.size(); ++i) {
    auto with_le = labels;
    with_le.emplace_back("le", number(bounds[i]));
    sample(name + "_bucket", with_le, static_cast<double>(at_or_below[i]));
  }
  auto inf = labels;
  inf.emplace_back("le", "+Inf");
  sample(name + "_bucket", inf, static_cast<double>(count));
  sample(name + "_sum", labels, sum);
  sample(name + "_count", labels, static_cast<double>(count));
}

std::string render_metrics(const StoreMetrics& m, const LiveMetrics& live) {
  MetricsWriter w;
  const std::string agents_help =
      "Enrolled agents by state (online, offline, revoked; quarantined counts agents whose "
      "latest network action was a quarantine, whatever their connection).";
  w.gauge("riposte_agents", agents_help, static_cast<double>(m.agents_online),
          {{"state", "online"}});
  w.gauge("riposte_agents", agents_help, static_cast<double>(m.agents_offline),
          {{"state", "offline"}});
  w.gauge("riposte_agents", agents_help, static_cast<double>(m.agents_revoked),
          {{"state", "revoked"}});
  w.gauge("riposte_agents", agents_help, static_cast<double>(m.agents_quarantined),
          {{"state", "quarantined"}});
  for (const auto& [source, n] : m.alerts_by_source)
    w.counter("riposte_alerts_received_total", "Alerts stored, by source format.",
              static_cast<double>(n), {{"source", source}});
  for (const auto& [decision, n] : m.alerts_by_decision)
    w.counter("riposte_alerts_decided_total",
              "Alerts by confidence decision (respond, analyst, discard; none: not scored yet).",
              static_cast<double>(n), {{"decision", decision}});
  for (const auto& [key, n] : m.actions_by_kind_state)
    w.counter("riposte_actions_total", "Response actions by kind and current state.",
              static_cast<double>(n), {{"kind", key.first}, {"state", key.second}});
  const std::vector<double> bounds(std::begin(kActionDurationBounds),
                                   std::end(kActionDurationBounds));
  for (const auto& [kind, d] : m.action_durations)
    w.histogram("riposte_action_duration_seconds",
                "Time from an action's start on the agent to its end, by kind.", {{"kind", kind}},
                bounds, d.at_or_below, d.count, d.sum_s);
  for (const auto& [key, n] : m.runs_by_playbook_state)
    w.counter("riposte_playbook_runs_total", "Playbook runs by playbook and current state.",
              static_cast<double>(n), {{"playbook", key.first}, {"state", key.second}});
  w.gauge("riposte_approvals_pending", "Approvals waiting for a decision.",
          static_cast<double>(m.approvals_pending));
  w.counter("riposte_evidence_bytes_total", "Bytes of evidence stored (distinct objects).",
            static_cast<double>(m.evidence_bytes));
  w.counter("riposte_audit_entries_total", "Entries in the audit log.",
            static_cast<double>(m.audit_entries));
  if (live) live(w);
  process_metrics(w);
  return w.text();
}

}  // namespace riposte::controller
