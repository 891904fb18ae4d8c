#include "agent/periodic_thread.h"

namespace riposte::agent {

PeriodicThread::PeriodicThread(std::chrono::milliseconds interval, std::function<void()> work)
    : interval_(interval), work_(std::move(work)), thread_([this] {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
          lock.unlock();
          work_();
          lock.lock();
          wake_.wait_for(lock, interval_, [&] { return stopping_; });
        }
      }) {}

PeriodicThread::~PeriodicThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

}  // namespace riposte::agent
