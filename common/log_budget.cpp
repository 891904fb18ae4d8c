#include "common/log_budget.h"

namespace riposte {

bool LogBudget::take(std::int64_t now_ms, std::uint64_t& held_back) {
  std::lock_guard lock(mutex_);
  if (!started_ || now_ms - window_start_ms_ >= 60'000) {
    started_ = true;
    window_start_ms_ = now_ms;
    written_ = 0;
  }
  if (written_ >= per_minute_) {
    ++held_back_;
    return false;
  }
  ++written_;
  held_back = held_back_;
  held_back_ = 0;
  return true;
}

std::string LogBudget::held_back_note(std::uint64_t held_back, std::string_view what) {
  if (held_back == 0) return {};
  return " (" + std::to_string(held_back) + " more " + std::string(what) + " not logged)";
}

}  // namespace riposte
