// The machine a solve runs on: its processors and their load, the thread count of a solve,
// and the memory available.  Linux reads /proc; elsewhere the answers are the safe defaults
// (the processors OpenMP reports, no other load, memory unknown).
#pragma once

#include <cstddef>

namespace nettrim {

// The processors this process may use (1 without OpenMP).
int processors();

// Runnable threads of other processes now, from /proc (Linux): /proc/loadavg's count of
// runnable tasks minus this process's own running threads.  -1 where unknown.
int busy_elsewhere();

// Threads for a solve of `work` = N*P*M (or N*N*P for a set-up).  Asked-for counts are
// honoured up to the machine's processors; 0 chooses from the work and the machine's load
// (see machine.cpp).  1 without OpenMP.
int resolve_threads(int requested, double work);

// MemAvailable from /proc/meminfo, in bytes; 0 when unknown (then no check is made).
std::size_t available_memory();

// Sets this thread's OpenMP thread count (which Eigen's GEMM reads) for one scope.
class ThreadScope {
 public:
  explicit ThreadScope(int n);
  void set(int n);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_ = 1;
};

}  // namespace nettrim
