// The machine helpers (nettrim/machine.hpp): processors, load, threads of a solve, memory.
#include "nettrim/machine.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace nettrim {

int processors() {
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

int busy_elsewhere() {
  std::ifstream loadavg("/proc/loadavg");
  double l1, l5, l15;
  char slash;
  int runnable = 0, total = 0;
  if (!(loadavg >> l1 >> l5 >> l15 >> runnable >> slash >> total)) return -1;
  int ours = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const std::size_t close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'R') ++ours;
  }
  if (ec) return -1;
  return std::max(0, runnable - ours);
}

// The automatic choice uses one thread below N*P*M = 4e6, where fork/join costs more
// than it saves (measured: 65 x 600 x 16 took 0.088 s on 2 threads and 0.006 s on 1;
// 65 x 1347 x 256 was faster on 2); above, the processors no other process is running
// on.  Threads that wait for a busy core at every barrier are far slower than fewer
// threads: measured on 2 cores with two other busy processes, a 101 x 2000 x 20 layer
// took 0.049 s per iteration on 2 threads and 0.0015 s on 1.  The solver makes the choice
// again at every convergence check, so a solve follows the machine's load.
int resolve_threads(int requested, double work) {
#ifdef _OPENMP
  if (requested > 0) return std::min(requested, processors());
  if (work < 4e6) return 1;
  const int busy = busy_elsewhere();
  return busy < 0 ? processors() : std::clamp(processors() - busy, 1, processors());
#else
  (void)requested;
  (void)work;
  return 1;
#endif
}

std::size_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::size_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

ThreadScope::ThreadScope(int n) {
#ifdef _OPENMP
  saved_ = omp_get_max_threads();
#endif
  set(n);
}

void ThreadScope::set(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

ThreadScope::~ThreadScope() {
#ifdef _OPENMP
  omp_set_num_threads(saved_);
#endif
}

}  // namespace nettrim
