// What a solve returns: the pruned matrix and Info; and the ADMM state for warm starts.
#pragma once

#include "nettrim/types.hpp"

namespace nettrim {

// Outcomes, not errors: bad input throws; these are the ways a valid solve ends.
enum class Status {
  converged,        // tolerances met by the returned matrix itself
  max_iterations,   // Settings::max_iter reached first
  time_limit,       // Settings::time_limit reached first
  interrupted,      // the interrupt hook asked to stop
  numerical_error,  // the iterates became non-finite: nothing returned is trustworthy
};

const char* status_name(Status s);

struct Info {
  Status status = Status::max_iterations;
  int iterations = 0;
  double primal_residual = 0;   // max over blocks of ||Z_j - B_j U|| / max(||Z_j||, ||B_j U||)
  double dual_residual = 0;     // max over blocks of ||B_j dU|| / ||L_j||
  double objective = 0;         // penalty of the returned U
  // A certificate: a lower bound on the optimum from a dual feasible point built from the
  // iterates (docs: "The certificate"), the best one seen, and the relative gap
  // (objective - bound) / bound of the returned U.  NaN where none was computed (the
  // regularized form, or a solve that never reached the primal tolerance).
  double dual_bound = 0;
  double gap = 0;
  // Constraint violations of the returned U itself, evaluated in double precision:
  double omega_violation = 0;       // (||(U^T X - Y)_Omega|| - eps)_+ / eps (worst neuron if per-neuron)
  double complement_violation = 0;  // max (U^T X - V)_+ on Omega^c / rms(Y on Omega)
  // False where the violation cannot be told to tol: a solver set up from statistics
  // computes ||X U - Y||^2 as a difference of sums, whose rounding (compress()'s
  // relative_uncertainty) then exceeds tol of eps^2.  Always true on rows.
  bool error_resolved = true;
  double rho1 = 0, rho2 = 0;    // final penalties
  int rho_updates = 0;          // how many times rho changed
  int factor_updates = 0;       // how many times the U-solve was rebuilt for a new rho2/rho1
  int threads = 1;
  double setup_seconds = 0;         // the factorisation (paid once per setup)
  double solve_seconds = 0;         // this solve's iterations
  double polish_seconds = 0;        // this solve's final candidate and its checks
};

// Everything needed to continue an ADMM run (warm start between nearby problems).
template <class T>
struct State {
  Matrix<T> U;    // N x M, last ADMM iterate
  Matrix<T> L1;   // P x M, scaled dual of Z1 = X U (samples by neurons)
  Matrix<T> L2;   // N x M, scaled dual of Z2 = U
  double rho1 = 0, rho2 = 0;
};

template <class T>
struct Result {
  Matrix<T> U;      // N x M returned matrix: exactly sparse, polished
  Info info;
};

}  // namespace nettrim
