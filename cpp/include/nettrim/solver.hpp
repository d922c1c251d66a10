// The layer solver: settings and data in, result out, with a setup/update/solve lifecycle.
//
//   nettrim::Solver<float> solver;                 // backend "cpu" (see available_backends())
//   solver.setup(X, settings);                     // validates, factorises X^T X once
//   solver.update_target(Y);                       // outputs to keep (P x M)
//   solver.update_eps({0.05 * ||Y_Omega||});       // absolute tolerance(s)
//   Result<float> r = solver.solve();              // r.U, r.info
//   solver.update_eps({0.08 * ||Y_Omega||});       // no refactorisation;
//   r = solver.solve();                            // warm started from the last iterates
//   auto path = solver.solve_path({{e1}, {e2}, {e3}});   // monotone eps, warm started
//
// Shapes are samples by features (as numpy): X is P x N (the bias column of ones
// appended by the caller when wanted), Y and V are P x M, U is N x M.  X is kept as a
// view and must outlive the solver's use of it; Y and V are copied.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nettrim/backend.hpp"
#include "nettrim/errors.hpp"
#include "nettrim/hooks.hpp"
#include "nettrim/result.hpp"
#include "nettrim/settings.hpp"
#include "nettrim/statistics.hpp"
#include "nettrim/types.hpp"

namespace nettrim {

template <class T>
class Solver {
 public:
  explicit Solver(const std::string& backend = "cpu");
  ~Solver();
  Solver(Solver&&) noexcept;
  Solver& operator=(Solver&&) noexcept;
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  // Validates X and the settings and factorises once (interruptible: throws Interrupted).
  void setup(ConstRowRef<T> X, const Settings& settings, const Hooks& hooks = {});
  // The linear program (settings.mode = Mode::linear) from the statistics of its samples,
  // target included (docs: "The linear program at any number of samples"): the same program
  // on at most N rows (compress()), so an iteration costs O(N^2 M) whatever the samples.
  // eps stays in the units of ||X U - Y|| and must be at least the least-squares floor
  // (floor()); the returned matrix's violations are re-checked in float64 from the
  // statistics.  No update_target or update_bound follows (the target is in the
  // statistics), and the mode stays linear.
  void setup(const SampleStatistics& stats, const Settings& settings, const Hooks& hooks = {});
  // Any setting may change without refactorising (mode, tolerances, penalties, ...).
  void update_settings(const Settings& settings);
  // The outputs to keep; the iterates start cold again.
  void update_target(ConstRowRef<T> Y);
  // Upper bound on pre-activations where Y == 0 (the cascade scheme), or none (V = 0).
  void update_bound(ConstRowRef<T> V);
  void clear_bound();
  // Absolute tolerance: one value (joint constraint) or one per output (per-neuron).
  void update_eps(const std::vector<double>& eps);

  // Where the next solve starts: a full ADMM state, a primal matrix (e.g. the trained
  // weights), or zero.  Without a call, a solve continues from the previous solve's
  // iterates when Settings::warm_start is on, else starts from zero.
  void warm_start(const State<T>& state);
  void warm_start(const Matrix<T>& U0);
  void cold_start();

  Result<T> solve(const Hooks& hooks = {});
  // One solve per entry of `eps` (each as update_eps takes it), in order, each warm
  // started from the previous one with the factorisation reused.
  std::vector<Result<T>> solve_path(const std::vector<std::vector<double>>& eps, const Hooks& hooks = {});

  // The iterates the next solve would continue from.
  State<T> state() const;

  const Settings& settings() const;
  long samples() const;   // P (the calibration samples, also when set up from statistics)
  long rows() const;      // the rows the ADMM iterates on: P, or the rank of X when compressed
  bool compressed() const;   // set up from statistics
  // The least-squares floor of ||X U - Y|| per output column (zeros unless compressed).
  std::vector<double> floor() const;
  long inputs() const;    // N
  long outputs() const;   // M (0 before update_target)
  const char* backend() const;
  // Bytes of working memory a layer of this size allocates (beyond X).
  std::size_t workspace_bytes(long P, long N, long M, bool has_bound) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template class Solver<float>;
extern template class Solver<double>;

// One call: setup, target, bound, eps and solve.  Y, V as above; eps as update_eps.
template <class T>
Result<T> solve_layer(ConstRowRef<T> X, ConstRowRef<T> Y, const std::optional<ConstRowRef<T>>& V,
                      const std::vector<double>& eps, const Settings& settings, const Hooks& hooks = {});

extern template Result<float> solve_layer(ConstRowRef<float>, ConstRowRef<float>,
                                          const std::optional<ConstRowRef<float>>&, const std::vector<double>&,
                                          const Settings&, const Hooks&);
extern template Result<double> solve_layer(ConstRowRef<double>, ConstRowRef<double>,
                                           const std::optional<ConstRowRef<double>>&, const std::vector<double>&,
                                           const Settings&, const Hooks&);

}  // namespace nettrim
