// The public entry point: settings and data in, result out.
#pragma once

#include <functional>
#include <stdexcept>

#include "nettrim/problem.hpp"
#include "nettrim/result.hpp"
#include "nettrim/settings.hpp"

namespace nettrim {

// Thrown before allocating when the buffers of a solve would not fit in memory.
class MemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Progress {
  int iteration;
  double primal_residual, dual_residual, elapsed;
};

// Optional hooks, called from the solving thread between iterations.
struct Hooks {
  std::function<bool()> interrupted;              // polled at most every 50 ms
  std::function<void(const Progress&)> progress;  // at every convergence check
};

// Bytes of working memory a solve of this size allocates (beyond the inputs).
std::size_t workspace_bytes(long N, long P, long M, bool has_V, std::size_t scalar_size);

template <class T>
Result<T> solve_layer(const Problem<T>& problem, const Settings& settings, const Hooks& hooks = {});

extern template Result<float> solve_layer(const Problem<float>&, const Settings&, const Hooks&);
extern template Result<double> solve_layer(const Problem<double>&, const Settings&, const Hooks&);

}  // namespace nettrim
