#include "workers.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace physcap {

void run_workers(const std::vector<std::function<void()>>& jobs, int tick_ms, const std::function<void()>& on_tick) {
  std::mutex mu;
  std::condition_variable cv;
  size_t finished = 0;
  std::vector<std::thread> threads;
  threads.reserve(jobs.size());
  for (const auto& job : jobs) {
    threads.emplace_back([&, job] {
      job();
      {
        std::lock_guard<std::mutex> lock(mu);
        finished++;
      }
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(tick_ms), [&] { return finished == jobs.size(); })) {
      lock.unlock();
      if (on_tick) on_tick();
      lock.lock();
    }
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace physcap
