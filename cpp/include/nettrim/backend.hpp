// The seam between the ADMM driver and the hardware it runs on.
//
// The driver (solver.cpp) owns the algorithm: penalties and their adaptation, the
// projection radius, stopping, polishing decisions, interrupts and callbacks.  A backend
// owns the data and the iterates and performs the arithmetic of one iteration, in
// ADMM terms (docs: "The ADMM"):
//
//   omega_norms   ||(X U - L1 - Y)_Omega||^2 per output column   (start of an iteration);
//                 with inactive = relu, plus ||(X U - L1)_+||^2 on Omega^c
//   z_step        Z1 = Proj_C(X U - L1), relaxed; right-hand side B = L1 + Z1hat
//   prox_step     Z2 = prox of the penalty at U - L2, relaxed
//   u_step        U = (X^T X + sigma I)^{-1} (X^T B + sigma (Z2hat + L2)); A = X U; dual updates
//   residual_sums the sums behind the normalised primal and dual residuals
//   candidate     the returned matrix: Z2, with the bias row shifted so that Omega^c holds
//
// Every method may assume the calls come in this order within an iteration.  The CPU
// backend (cpp/src/cpu/) fuses the dual updates into the next pass over the data; a
// backend is free to arrange its memory as it likes between calls.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nettrim/result.hpp"
#include "nettrim/settings.hpp"
#include "nettrim/types.hpp"

namespace nettrim {

// Summaries of the target Y and the bound V, computed when they are set.
struct TargetNorms {
  std::vector<double> omega_norm2;  // per column: ||Y_Omega,m||^2
  double omega_norm2_total = 0;
  long omega_count = 0;             // |Omega|
  bool zero_meets_bound = true;     // V >= 0 on Omega^c, so that U = 0 meets the inequality
};

// Per-block sums of one residual pass (block 1: Z1 = X U; block 2: Z2 = U).
struct ResidualSums {
  double r1 = 0, z1 = 0, a = 0, da = 0, l1 = 0;  // ||Z1-A||^2 ||Z1||^2 ||A||^2 ||A-A_old||^2 ||L1||^2
  double r2 = 0, z2 = 0, u = 0, du = 0, l2 = 0;  // ||Z2-U||^2 ||Z2||^2 ||U||^2 ||U-U_old||^2 ||L2||^2
};

// Per-column sums of the candidate: excess on Omega^c and squared error on Omega (with
// inactive = relu: no bound, so no excess, and the error counts ||(A_+)_Omega^c,m||^2 too).
struct CandidateSums {
  std::vector<double> excess;     // max (A - V) on Omega^c, -inf where Omega^c is empty (or unbounded)
  std::vector<double> err2;       // ||(A - Y)_Omega,m||^2
  bool finite = true;             // no NaN or Inf in the candidate or its responses
};

// Sums behind the dual bound, for the normal-cone element nu = rho1 (T - Z1) of this
// iteration's Z1 step (T = X U - L1 before it): per column a_m = -<nu, Y>_Omega - <nu, V>_Omega^c
// and d2_m = ||nu_Omega||^2 (with inactive = relu: a_m = -<nu, Y>_Omega, d2_m = ||nu||^2); and the dual norm of X^T nu: per column its largest |entry| (l1),
// or per row its squared 2-norm over the columns (group; the bias row's largest |entry| apart).
struct DualSums {
  std::vector<double> a, d2, colmax, rownorm2;
  double bias_absmax = 0;
  bool finite = true;
};

struct ZStepSettings {
  bool regularized = false;  // prox of lam/2 ||z - y||^2 on Omega instead of the ball
  double lam_weight = 0;     // lam / (lam + rho1) in the regularized form
  double alpha = 1.8;        // over-relaxation
  bool keep_z1 = false;      // keep Z1 for residual_sums (a convergence check follows)
};

// What a backend can do.  Each backend states its own, once, beside its class (the CPU
// backend's kCapabilities, cuda::capabilities), and its instances return it: the registry's
// backend_capabilities() answers from it without an instance, and Backend::set_inactive
// refuses what it lacks, so that what is said and what is done cannot disagree.
struct BackendCapabilities {
  const char* name = "";        // as make_backend takes it
  bool built = false;           // compiled into this build
  bool available = false;       // built, and this machine has what it needs (a GPU)
  bool gpu = false;             // runs on a GPU
  bool float32 = false, float64 = false;                   // Backend<float>, Backend<double>
  bool inactive_bounded = false, inactive_relu = false;    // the programs it solves (see Inactive)
  bool solves(Inactive inactive) const {
    return inactive == Inactive::relu ? inactive_relu : inactive_bounded;
  }
};

template <class T>
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual BackendCapabilities capabilities() const = 0;   // the class's own (see BackendCapabilities)
  virtual void set_threads(int threads) = 0;

  // --- data -------------------------------------------------------------------------
  // X (P x N) is kept as a view: the caller keeps it alive and unchanged.  Computes the
  // Gram eigendecomposition, polling `interrupted` between blocks (throws Interrupted).
  virtual void set_inputs(ConstRowRef<T> X, const std::function<bool()>& interrupted) = 0;
  virtual double gram_diag_max() const = 0;         // max_n ||X[:, n]||^2
  virtual double gram_norm() const = 0;             // largest eigenvalue of X^T X
  virtual void set_target(ConstRowRef<T> Y, bool relu) = 0;   // copied
  virtual void set_bound(const ConstRowRef<T>* V) = 0;        // copied; nullptr: V = 0
  virtual const TargetNorms& target_norms() const = 0;
  // How Omega^c counts (see Inactive): a program outside capabilities() is refused
  // (std::invalid_argument naming inactive), the others go to apply_inactive.
  void set_inactive(Inactive inactive) {
    const BackendCapabilities caps = capabilities();
    if (!caps.solves(inactive)) {
      throw std::invalid_argument(std::string("inactive: the ") + name() + " backend supports only " +
                                  (caps.inactive_bounded ? "'bounded'" : "'relu'"));
    }
    apply_inactive(inactive);
  }
  virtual void set_sigma(double sigma) = 0;         // rebuild the U solve for sigma = rho2/rho1

  // --- iterates ---------------------------------------------------------------------
  virtual void reset(const Matrix<T>* U0) = 0;      // U = U0 (or 0), duals 0, Z2 = U
  virtual void load_state(const State<T>& state) = 0;
  virtual void save_state(State<T>& state) = 0;
  virtual void rescale_duals(double f1, double f2) = 0;  // L1 /= f1, L2 /= f2 (rho_j *= f_j)

  // --- one iteration ----------------------------------------------------------------
  virtual void omega_norms(std::vector<double>& colsum) = 0;
  virtual void z_step(const std::vector<T>& ball_scale, const ZStepSettings& z) = 0;
  virtual void prox_step(double threshold, double alpha, Penalty penalty, int bias_row) = 0;
  virtual void u_step() = 0;
  virtual void residual_sums(ResidualSums& sums) = 0;   // needs keep_z1 in this iteration's z_step
  virtual double z2_penalty(Penalty penalty, int bias_row) = 0;  // penalty of the current Z2
  // The dual bound's sums (see DualSums); right after residual_sums of an iteration whose
  // z_step kept Z1 (it takes Z1's place); one GEMM (X^T nu).
  virtual void dual_sums(double rho1, double alpha, Penalty penalty, int bias_row, DualSums& sums) = 0;

  // --- the returned matrix ----------------------------------------------------------
  // Candidate = Z2, then (when shift_row >= 0) each column's bias entry lowered by its
  // largest excess on Omega^c.  Sums are taken in T arithmetic; exact_sums redoes them
  // with X U formed in double precision, for the verdict on the returned matrix.
  virtual void candidate(int shift_row, CandidateSums& sums) = 0;
  virtual void exact_sums(CandidateSums& sums) = 0;
  virtual double candidate_penalty(Penalty penalty, int bias_row) = 0;
  virtual void copy_candidate(Matrix<T>& out) const = 0;

  // Bytes this backend allocates for a layer of P samples, N inputs and M outputs.
  virtual std::size_t workspace_bytes(long P, long N, long M, bool has_bound) const = 0;

 protected:
  // Called by set_inactive with a program that capabilities() has.
  virtual void apply_inactive(Inactive inactive) { (void)inactive; }
};

// Names of the backends this build has ("cpu", and "cuda" when built with it and a GPU is present).
std::vector<std::string> available_backends();

// What the backend `name` ("cpu", "cuda", "cuda:tf32") can do, from the backend class itself,
// whether or not this build or machine has it (then built or available is false; a backend
// that is not built says what it would solve).  Throws std::invalid_argument naming backend
// for any other name.
BackendCapabilities backend_capabilities(const std::string& name);

// Bytes of working memory the backend `name` allocates for a layer of P samples, N inputs and
// M outputs, in float64 or float32: its own workspace_bytes, asked of a backend made for the
// purpose (no data).  Throws std::invalid_argument as make_backend does, or for sizes < 0.
std::size_t backend_workspace_bytes(const std::string& name, bool float64, long P, long N, long M, bool has_bound);

// A new backend by name; throws std::invalid_argument naming what is available.
template <class T>
std::unique_ptr<Backend<T>> make_backend(const std::string& name);

extern template std::unique_ptr<Backend<float>> make_backend(const std::string&);
extern template std::unique_ptr<Backend<double>> make_backend(const std::string&);

}  // namespace nettrim
