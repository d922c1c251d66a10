// The CPU backend: Eigen for the products, OpenMP over output columns for the rest.
//
// Layout: output-space arrays (Z1, A = X U, L1, Y, V) are P x M column-major, so each
// output neuron is one contiguous column: per-neuron projections and the OpenMP loops
// over neurons read memory in order.  Per iteration there are exactly two P x N x M
// GEMMs (R = X^T B and A = X U, Eigen's own threaded GEMM) and one N x N x M GEMM for
// the U solve; the elementwise work is fused into two passes over the P x M arrays.
//
// Buffer LB holds the scaled dual L1 at the start of an iteration and B = L1 + Z1hat
// (the right-hand side of the U solve) after the Z step; the dual update
// L1 <- B - X U is fused into the next pass over the data (omega_norms or residual_sums).
#pragma once

#include <optional>
#include <vector>

#include <Eigen/Core>

#include "cpu/blas.hpp"
#include "cpu/gram_inverse.hpp"
#include "nettrim/backend.hpp"

namespace nettrim::cpu {

template <class T>
class CpuBackend final : public Backend<T> {
 public:
  using Mat = Matrix<T>;
  using XMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

  // Both programs (Inactive), both precisions, on the host.
  static constexpr BackendCapabilities kCapabilities = [] {
    BackendCapabilities c;
    c.name = "cpu";
    c.built = c.available = true;
    c.gpu = false;
    c.float32 = c.float64 = true;
    c.inactive_bounded = c.inactive_relu = true;
    return c;
  }();

  const char* name() const override { return kCapabilities.name; }
  BackendCapabilities capabilities() const override { return kCapabilities; }
  void set_threads(int threads) override {
    threads_ = threads;
    blas::set_threads(1);   // the iteration's products share out their columns themselves (gemm_columns)
  }

  void set_inputs(ConstRowRef<T> X, const std::function<bool()>& interrupted) override;
  double gram_diag_max() const override { return diag_max_; }
  double gram_norm() const override { return gram_.largest_eigenvalue(); }
  void set_target(ConstRowRef<T> Y, bool relu) override;
  void set_bound(const ConstRowRef<T>* V) override;
  const TargetNorms& target_norms() const override { return norms_; }
  void set_sigma(double sigma) override { gram_.set_sigma(sigma); }

  void reset(const Matrix<T>* U0) override;
  void load_state(const State<T>& state) override;
  void save_state(State<T>& state) override;
  void rescale_duals(double f1, double f2) override;

  void omega_norms(std::vector<double>& colsum) override;
  void z_step(const std::vector<T>& ball_scale, const ZStepSettings& z) override;
  void prox_step(double threshold, double alpha, Penalty penalty, int bias_row) override;
  void u_step() override;
  void residual_sums(ResidualSums& sums) override;
  double z2_penalty(Penalty penalty, int bias_row) override { return penalty_of(Z2_, penalty, bias_row); }
  void dual_sums(double rho1, double alpha, Penalty penalty, int bias_row, DualSums& sums) override;

  void candidate(int shift_row, CandidateSums& sums) override;
  void exact_sums(CandidateSums& sums) override;
  double candidate_penalty(Penalty penalty, int bias_row) override {
    return penalty_of(candidate_, penalty, bias_row);
  }
  void copy_candidate(Matrix<T>& out) const override { out = candidate_; }

  std::size_t workspace_bytes(long P, long N, long M, bool has_bound) const override;

 protected:
  void apply_inactive(Inactive inactive) override { inactive_relu_ = inactive == Inactive::relu; }

 private:
  bool in_omega(Eigen::Index p, Eigen::Index m) const { return !relu_ || Y_(p, m) > 0; }
  T bound(Eigen::Index p, Eigen::Index m) const { return V_.size() ? V_(p, m) : T(0); }
  // Omega^c's ReLU outputs are counted in the ball instead of bounded (Inactive::relu).
  bool counted() const { return relu_ && inactive_relu_; }
  void finish_dual();               // LB: B -> L1 (the pending dual update), when pending
  void responses(const Mat& U, Mat& A) const;   // A = X U (P x M), one GEMM
  void allocate(Eigen::Index M);
  void update_norms();
  static double penalty_of(const Mat& U, Penalty penalty, int bias_row);

  int threads_ = 1;
  // The large products' column chunks: one per processor the process may use, whatever the
  // threads (so that the results do not depend on them, see blas::gemm_columns).  The price:
  // with a thread count that does not divide it, the products run at the speed of
  // p / ceil(p / threads) threads (16 processors and 15 threads: as 8).
  int chunks_ = blas::processors();
  std::optional<XMap> X_;
  Eigen::Index P_ = 0, N_ = 0, M_ = 0;
  bool relu_ = true;
  bool inactive_relu_ = false;
  double diag_max_ = 0;
  detail::GramInverse<T> gram_;
  Mat Y_, V_;
  Mat A_, A_old_, LB_, Z1_;       // P x M
  Mat U_, U_old_, Z2_, L2_, R_;   // N x M
  Mat candidate_;                 // N x M
  Eigen::MatrixXd exact_U_, exact_X_, exact_A_;   // the exact check's candidate, a block of X, its responses
  std::vector<double> rownorm_, partial_;
  TargetNorms norms_;
  bool lb_holds_b_ = false;
};

}  // namespace nettrim::cpu
