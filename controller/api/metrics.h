#pragma once

// GET /metrics in the Prometheus text exposition format (version 0.0.4,
// https://prometheus.io/docs/instrumenting/exposition_formats/): the store's counts
// (StoreMetrics), what the running controller holds in memory (sessions, refused connections,
// dropped reports), and the usual process_* metrics of the controller process.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "controller/store/store.h"

namespace riposte::controller {

// Writes metric families: HELP and TYPE once per family, label values escaped as the format
// requires (backslash, double quote, newline).
class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  void gauge(const std::string& name, const std::string& help, double value,
             const Labels& labels = {});
  void counter(const std::string& name, const std::string& help, double value,
               const Labels& labels = {});
  // Cumulative counts at or below each bound, then +Inf (= count), _sum and _count.
  void histogram(const std::string& name, const std::string& help, const Labels& labels,
                 const std::vector<double>& bounds, const std::vector<std::uint64_t>& at_or_below,
                 std::uint64_t count, double sum);
  const std::string& text() const { return out_; }

 private:
  void family(const std::string& name, const std::string& help, const char* type);
  void sample(const std::string& name, const Labels& labels, double value);

  std::string out_;
  std::string last_family_;
};

// Metrics only the running controller knows (gateway sessions, refused connections); the
// service supplies them.
using LiveMetrics = std::function<void(MetricsWriter&)>;

// The whole exposition: store counts, `live`, then process metrics.
std::string render_metrics(const StoreMetrics& store, const LiveMetrics& live);

}  // namespace riposte::controller
