#pragma once

#include <functional>
#include <vector>

namespace physcap {

// Runs each job on a thread of its own (started in order) and, on the
// calling thread, calls on_tick about every tick_ms until all of them have
// returned; then joins them.  The shape every long native operation here
// has: the work on dedicated threads, progress from the caller's.
void run_workers(const std::vector<std::function<void()>>& jobs, int tick_ms, const std::function<void()>& on_tick);

}  // namespace physcap
