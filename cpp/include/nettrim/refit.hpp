// Re-fit on a fixed support: Net-Trim's least squares without the l1 term ("debiasing").
//
// For each output neuron j, over the weights on its support (and the bias):
//   minimise    || (X u + b - Y_j) on Omega_j ||       Omega_j = {p : Y_pj > 0}
//   subject to  (X u + b)_p <= V_pj  for p not in Omega_j   (V = 0 when none is given)
// solved exactly from a start that meets the bounds (a Net-Trim solution): the primal
// active-set method (Nocedal & Wright, Numerical Optimization, Algorithm 16.3).  Every
// iterate meets the bounds and the error never rises, so the result errs on Omega no more
// than the start, and a neuron stopped at its iteration limit is still no worse than it.
// A row the start exceeds has its bound raised to the start's value.
//
// With RefitSettings::inactive = Inactive::relu the inactive rows are not bounds but part of
// the error, each as the ReLU output it would give, max(0, X u + b)_p (its target is 0):
//   minimise    || (X u + b - Y_j) on Omega_j ||^2 + || max(0, X u + b) off Omega_j ||^2
// a convex upper bound of the layer's own output error ||ReLU(X u + b) - Y_j||^2 (on Omega_j
// |ReLU(z) - y| <= |z - y| since y > 0), tighter than the bounded form, whose minimiser it
// can only improve on.  Solved by Newton's method on the rows that count (those with a
// positive pre-activation), with a backtracking step: the function never rises from the
// start, so the output error ends no larger than the start's.  V is not used.
#pragma once

#include <Eigen/Core>

#include <vector>

#include "nettrim/settings.hpp"
#include "nettrim/types.hpp"

namespace nettrim {

// How the inactive rows (Y <= 0) enter the re-fit (Inactive, settings.hpp): bounded, each
// is a constraint (X u + b)_p <= V_p (Net-Trim's program on the support); relu, each adds
// max(0, (X u + b)_p)^2 to the error (the ReLU output's own error).
struct RefitSettings {
  Inactive inactive = Inactive::bounded;
  int max_iter = 0;       // steps per neuron; 0: 3 (support + 1) + 20
  double ridge = 1e-9;    // relative to the mean diagonal of the normal equations
  int threads = 0;        // OpenMP threads over the neurons; 0: the OpenMP default
};

struct RefitResult {
  Matrix<double> weights;        // n_in x M, zero off the support
  Eigen::VectorXd bias;          // M (the given bias where it is not fitted)
  std::vector<int> iterations;   // active-set steps per neuron
  int unconverged = 0;           // neurons stopped short (at max_iter, or rounding): no worse than the start
};

// X: P x n_in; Y: P x M (ReLU outputs); support: n_in x M (nonzero = kept); start_weights:
// n_in x M, start_bias: M (read on the support, and for the bias when fit_bias).  V: P x M
// bounds on the inactive rows, or an empty matrix for 0.  fit_bias false: the bias stays
// start_bias.  Throws std::invalid_argument naming the argument on a shape mismatch.
RefitResult refit_support(const ConstRowRef<double>& X, const ConstRowRef<double>& Y,
                          const Eigen::Ref<const RowMatrix<double>>& support,
                          const ConstRowRef<double>& start_weights, const Eigen::Ref<const Eigen::VectorXd>& start_bias,
                          const ConstRowRef<double>& V, bool fit_bias, const RefitSettings& settings = {});

}  // namespace nettrim
