// Optional callbacks into the caller, run on the solving thread.
#pragma once

#include <functional>

namespace nettrim {

struct Progress {
  int iteration;
  double primal_residual, dual_residual, elapsed;
};

struct Hooks {
  // Polled about every 50 ms during setup and the iterations; true stops the work
  // (setup throws nettrim::Interrupted; a solve returns with Status::interrupted).
  std::function<bool()> interrupted;
  // Called at every convergence check (every Settings::adapt_every iterations).
  std::function<void(const Progress&)> progress;
};

}  // namespace nettrim
