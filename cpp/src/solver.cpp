// The Net-Trim layer ADMM (formulation.md, section 2).
//
// Layout: output-space arrays (Z1, A = X U, L1, Y, V) are P x M column-major, so each
// output neuron is one contiguous column: per-neuron projections and the OpenMP loops
// over neurons read memory in order.  Per iteration there are exactly two P x N x M
// GEMMs (R = X^T B and A = X U, Eigen's own threaded GEMM) and one N x N x M GEMM for
// the U solve; the elementwise work is fused into two passes over the P x M arrays.
//
// Buffer "LB" holds the scaled dual L1 at the start of an iteration and B = L1 + Z1hat
// (the right-hand side of the U solve) after the Z step; the dual update
// L1 <- B - X U is fused into the next iteration's first pass.
#include "nettrim/solver.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gram_inverse.hpp"

namespace nettrim {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Threads for a solve.  Asked-for counts are honoured; the automatic choice uses one
// thread below N*P*M = 4e6, where fork/join costs more than it saves (measured: 65 x 600
// x 16 took 0.088 s on 2 threads and 0.006 s on 1; 65 x 1347 x 256 was faster on 2).
int resolve_threads(int requested, double work) {
#ifdef _OPENMP
  if (requested > 0) return requested;
  return work < 4e6 ? 1 : omp_get_num_procs();
#else
  (void)requested;
  (void)work;
  return 1;
#endif
}

// Sets this thread's OpenMP thread count (which Eigen's GEMM reads) for one scope.
class ThreadScope {
 public:
  explicit ThreadScope(int n) {
#ifdef _OPENMP
    saved_ = omp_get_max_threads();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
  }
  ~ThreadScope() {
#ifdef _OPENMP
    omp_set_num_threads(saved_);
#endif
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_ = 1;
};

// MemAvailable from /proc/meminfo; 0 when unknown (then no check is made).
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

template <class M>
void require_finite(const M& m, const char* name) {
  if (!m.allFinite()) {
    throw std::invalid_argument(std::string(name) + ": expected finite values, got NaN or Inf");
  }
}

void require_shape(long rows, long cols, long want_rows, long want_cols, const char* name) {
  if (rows != want_rows || cols != want_cols) {
    throw std::invalid_argument(std::string(name) + ": expected shape (" + std::to_string(want_rows) +
                                ", " + std::to_string(want_cols) + "), got (" + std::to_string(rows) +
                                ", " + std::to_string(cols) + ")");
  }
}

template <class T>
void validate(const Problem<T>& pb, const Settings& st) {
  st.validate();
  const long P = pb.X.rows(), N = pb.X.cols(), M = pb.Y.cols();
  if (P == 0 || N == 0 || M == 0) {
    throw std::invalid_argument("X, Y: expected non-empty arrays, got X (" + std::to_string(P) + ", " +
                                std::to_string(N) + ") and Y with " + std::to_string(M) + " columns");
  }
  require_shape(pb.Y.rows(), pb.Y.cols(), P, M, "Y");
  require_finite(pb.X, "X");
  require_finite(pb.Y, "Y");
  if (st.mode == Mode::relu && (pb.Y.array() < 0).any()) {
    throw std::invalid_argument("Y: expected ReLU outputs (>= 0) in relu mode, got negative values");
  }
  if (pb.V) {
    require_shape(pb.V->rows(), pb.V->cols(), P, M, "V");
    require_finite(*pb.V, "V");
  }
  if (st.lam == 0) {
    const std::size_t want = st.constraint == Constraint::joint ? 1 : static_cast<std::size_t>(M);
    if (pb.eps.size() != want) {
      throw std::invalid_argument("eps: expected " + std::to_string(want) + " value(s), got " +
                                  std::to_string(pb.eps.size()));
    }
    for (double e : pb.eps) {
      if (!(std::isfinite(e) && e >= 0)) {
        throw std::invalid_argument("eps: expected finite values >= 0, got " + std::to_string(e));
      }
    }
  }
  if (st.bias_row >= N) {
    throw std::invalid_argument("bias_row: expected -1 or a row index < " + std::to_string(N) +
                                ", got " + std::to_string(st.bias_row));
  }
  if (pb.U0) {
    require_shape(pb.U0->rows(), pb.U0->cols(), N, M, "U0");
    require_finite(*pb.U0, "U0");
  }
  if (pb.state) {
    require_shape(pb.state->U.rows(), pb.state->U.cols(), N, M, "state.U");
    require_shape(pb.state->L1.rows(), pb.state->L1.cols(), P, M, "state.L1");
    require_shape(pb.state->L2.rows(), pb.state->L2.cols(), N, M, "state.L2");
    if (!(pb.state->rho1 > 0 && pb.state->rho2 > 0)) {
      throw std::invalid_argument("state: expected rho1 > 0 and rho2 > 0");
    }
  }
}

// The layer ADMM with all its buffers, allocated once in the constructor.
template <class T>
class LayerAdmm {
 public:
  using Mat = Matrix<T>;

  LayerAdmm(const Problem<T>& pb, const Settings& st, int threads)
      : pb_(pb), st_(st), threads_(threads),
        P_(pb.X.rows()), N_(pb.X.cols()), M_(pb.Y.cols()),
        relu_(st.mode == Mode::relu), regularized_(st.lam > 0),
        gram_(pb.X) {
    Y_ = pb.Y;  // column-major copy: one contiguous column per neuron
    if (pb.V) V_ = *pb.V;
    A_.resize(P_, M_);
    A_old_.resize(P_, M_);
    LB_.resize(P_, M_);
    Z1_.resize(P_, M_);
    R_.resize(N_, M_);
    Z2_.resize(N_, M_);
    U_old_.resize(N_, M_);
    colsum_.assign(M_, 0.0);
    rownorm_.assign(N_, 0.0);
    partial_.assign(static_cast<std::size_t>(M_) * kStats, 0.0);
    summarize_targets();
    set_ball();
    initialize();
  }

  Result<T> run(const Hooks& hooks, Clock::time_point t_start, double setup_time) {
    Result<T> res;
    Info& info = res.info;
    info.threads = threads_;
    info.setup_time = setup_time;
    const Clock::time_point t_iter = Clock::now();
    Clock::time_point last_poll = t_iter;
    Status status = Status::max_iterations;
    int it = 0;
    if (zero_is_optimal()) {  // objective 0: nothing to iterate (e.g. eps >= ||Y||)
      Z2_.setZero();
      make_candidate(info);
      it = 0;
      status = Status::converged;
    }
    for (it = std::max(it, 1); status != Status::converged && it <= st_.max_iter; ++it) {
      const bool check = (it % st_.adapt_every) == 0;
      iterate(check);
      if (check) {
        residuals(info);
        if (hooks.progress) hooks.progress({it, info.primal_residual, info.dual_residual, seconds_since(t_start)});
        // The objective must also have settled: residuals alone stopped easy (linear)
        // problems while ||U||_1 was still 1e-3 away from the optimum (measured).
        const double obj = Z2_.template cast<double>().cwiseAbs().sum();
        const bool settled = std::abs(obj - last_objective_) <= 0.1 * st_.tol * std::max(obj, 1e-300);
        last_objective_ = obj;
        if (st_.tol > 0 && settled && info.primal_residual <= st_.tol && info.dual_residual <= st_.dual_tol) {
          make_candidate(info);
          if (info.omega_violation <= st_.tol && info.complement_violation <= st_.tol) {
            status = Status::converged;
            break;
          }
        }
        if (st_.adaptive_rho) adapt_rho(info);
      }
      if (st_.time_limit > 0 && seconds_since(t_start) > st_.time_limit) {
        status = Status::time_limit;
        break;
      }
      if (hooks.interrupted && seconds_since(last_poll) >= 0.05) {
        last_poll = Clock::now();
        if (hooks.interrupted()) {
          status = Status::interrupted;
          break;
        }
      }
    }
    info.iterations = status == Status::converged ? it : std::min(it, st_.max_iter);
    info.solve_time = seconds_since(t_iter);
    const Clock::time_point t_polish = Clock::now();
    if (status != Status::converged) make_candidate(info);
    info.polish_time = seconds_since(t_polish);
    info.status = status;
    info.rho1 = rho1_;
    info.rho2 = rho2_;
    info.objective = objective(candidate_);
    res.U = std::move(candidate_);
    // Warm-start state: L1 is whatever LB holds, brought back to L1 form.
    if (lb_holds_b_) LB_ -= A_;
    res.state.U = std::move(U_);
    res.state.L1 = std::move(LB_);
    res.state.L2 = std::move(L2_);
    res.state.rho1 = rho1_;
    res.state.rho2 = rho2_;
    return res;
  }

 private:
  static constexpr int kStats = 5;  // per-column partial sums in the residual pass

  bool in_omega(Eigen::Index p, Eigen::Index m) const { return !relu_ || Y_(p, m) > 0; }
  T bound(Eigen::Index p, Eigen::Index m) const { return V_.size() ? V_(p, m) : T(0); }

  // ||Y_Omega||^2 per column and |Omega|: the scales of the violation measures.
  void summarize_targets() {
    ynorm2_.assign(M_, 0.0);
    omega_count_ = 0;
    for (Eigen::Index m = 0; m < M_; ++m) {
      for (Eigen::Index p = 0; p < P_; ++p) {
        if (in_omega(p, m)) {
          ynorm2_[m] += double(Y_(p, m)) * double(Y_(p, m));
          ++omega_count_;
        }
      }
    }
    double total = 0;
    for (double v : ynorm2_) total += v;
    ynorm2_total_ = total;
  }

  // U = 0 meets the constraints (every ball contains Y's distance from 0, and V >= 0
  // where Y == 0): then it is the solution, since the penalty is >= 0.
  bool zero_is_optimal() const {
    if (regularized_) return false;
    if (V_.size()) {
      for (Eigen::Index m = 0; m < M_; ++m)
        for (Eigen::Index p = 0; p < P_; ++p)
          if (!in_omega(p, m) && V_(p, m) < 0) return false;
    }
    if (st_.constraint == Constraint::joint) return pb_.eps[0] >= std::sqrt(ynorm2_total_);
    for (Eigen::Index m = 0; m < M_; ++m)
      if (pb_.eps[m] < std::sqrt(ynorm2_[m])) return false;
    return true;
  }

  // The ADMM aims inside the ball by the polish margin, so that the bias shift that
  // makes Omega^c exactly feasible does not push Omega out of the true ball.
  void set_ball() {
    const double shrink = (st_.polish && !regularized_) ? 1.0 - st_.polish_margin : 1.0;
    ball_.assign(pb_.eps.size(), 0.0);
    for (std::size_t i = 0; i < pb_.eps.size(); ++i) ball_[i] = pb_.eps[i] * shrink;
  }

  void initialize() {
    if (pb_.state) {
      U_ = pb_.state->U;
      LB_ = pb_.state->L1;
      L2_ = pb_.state->L2;
      rho1_ = pb_.state->rho1;
      rho2_ = pb_.state->rho2;
    } else {
      U_ = pb_.U0 ? Mat(*pb_.U0) : Mat(Mat::Zero(N_, M_));
      LB_.setZero();
      L2_ = Mat::Zero(N_, M_);
      double diag_max = 0;
      for (Eigen::Index n = 0; n < N_; ++n) diag_max = std::max(diag_max, double(pb_.X.col(n).squaredNorm()));
      const double sigma = st_.sigma > 0 ? st_.sigma : std::max(0.09 * diag_max, 1e-12);
      rho2_ = st_.rho;
      rho1_ = rho2_ / sigma;
    }
    rho1_start_ = rho1_;
    rho2_start_ = rho2_;
    lb_holds_b_ = false;
    gram_.set_sigma(rho2_ / rho1_);
    A_.noalias() = pb_.X * U_;
    Z2_ = U_;
    last_objective_ = U_.template cast<double>().cwiseAbs().sum();  // a warm start may be settled already
  }

  // One ADMM iteration; with check, Z1 is kept for the residuals.
  void iterate(bool check) {
    const T alpha = static_cast<T>(st_.alpha);
    const bool fused_dual = lb_holds_b_;
    // Pass 1: finish the dual update L1 = B - A, and the norms the projection needs.
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (Eigen::Index m = 0; m < M_; ++m) {
      double s = 0;
      T* lb = LB_.col(m).data();
      const T* a = A_.col(m).data();
      const T* y = Y_.col(m).data();
      for (Eigen::Index p = 0; p < P_; ++p) {
        if (fused_dual) lb[p] -= a[p];
        if (!relu_ || y[p] > 0) {
          const double d = double(a[p]) - double(lb[p]) - double(y[p]);
          s += d * d;
        }
      }
      colsum_[m] = s;
    }
    lb_holds_b_ = false;
    std::vector<T>& scale = scale_;
    scale.assign(M_, T(1));
    if (!regularized_) {
      if (st_.constraint == Constraint::joint) {
        double total = 0;
        for (double v : colsum_) total += v;
        const double norm = std::sqrt(total);
        const T g = norm > ball_[0] ? static_cast<T>(ball_[0] / norm) : T(1);
        std::fill(scale.begin(), scale.end(), g);
      } else {
        for (Eigen::Index m = 0; m < M_; ++m) {
          const double norm = std::sqrt(colsum_[m]);
          scale[m] = norm > ball_[m] ? static_cast<T>(ball_[m] / norm) : T(1);
        }
      }
    }
    // Pass 2: Z1 = Proj_C(A - L1), relaxed, and B = L1 + Z1hat into LB.
    const T lam = static_cast<T>(st_.lam), r1 = static_cast<T>(rho1_);
    const T lam_w = regularized_ ? lam / (lam + r1) : T(0);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (Eigen::Index m = 0; m < M_; ++m) {
      T* lb = LB_.col(m).data();
      const T* a = A_.col(m).data();
      const T* y = Y_.col(m).data();
      const T* v = V_.size() ? V_.col(m).data() : nullptr;
      T* z1 = check ? Z1_.col(m).data() : nullptr;
      const T g = scale[m];
      for (Eigen::Index p = 0; p < P_; ++p) {
        const T t = a[p] - lb[p];
        T z;
        if (!relu_ || y[p] > 0) {
          z = regularized_ ? t + lam_w * (y[p] - t) : y[p] + (t - y[p]) * g;
        } else {
          z = std::min(t, v ? v[p] : T(0));
        }
        if (z1) z1[p] = z;
        lb[p] += alpha * z + (T(1) - alpha) * a[p];
      }
    }
    update_z2(alpha);
    std::swap(U_, U_old_);
    std::swap(A_, A_old_);
    // U solve: (X^T X + sigma I) U = X^T B + sigma (Z2hat + L2);  L2 holds Z2hat + L2.
    R_.noalias() = pb_.X.transpose() * LB_;
    R_.noalias() += static_cast<T>(gram_.sigma()) * L2_;
    U_.noalias() = gram_.K() * R_;
    A_.noalias() = pb_.X * U_;
    L2_ -= U_;
    lb_holds_b_ = true;
  }

  // Z2 = prox of the penalty at U - L2; L2 <- L2 + Z2hat (the rest of its update follows the U solve).
  void update_z2(T alpha) {
    const T thr = static_cast<T>(1.0 / rho2_);
    const bool group = st_.penalty == Penalty::group;
    if (group) {
      std::fill(rownorm_.begin(), rownorm_.end(), 0.0);
      for (Eigen::Index m = 0; m < M_; ++m)
        for (Eigen::Index n = 0; n < N_; ++n) {
          const double w = double(prox_input(n, m));
          rownorm_[n] += w * w;
        }
      for (double& r : rownorm_) r = std::sqrt(r);
    }
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (Eigen::Index m = 0; m < M_; ++m) {
      for (Eigen::Index n = 0; n < N_; ++n) {
        const T w = prox_input(n, m);
        T z;
        if (group && n != st_.bias_row) {
          const double rn = rownorm_[n];
          z = rn > double(thr) ? static_cast<T>(w * (1.0 - double(thr) / rn)) : T(0);
        } else {
          z = std::max(std::abs(w) - thr, T(0));
          z = w < 0 ? -z : z;
        }
        Z2_(n, m) = z;
        L2_(n, m) += alpha * z + (T(1) - alpha) * U_(n, m);
      }
    }
  }
  // The point the penalty's prox is taken at (read before Z2 is formed).
  T prox_input(Eigen::Index n, Eigen::Index m) const { return U_(n, m) - L2_(n, m); }

  // OSQP-style normalised residuals per block; leaves LB holding L1.
  void residuals(Info& info) {
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (Eigen::Index m = 0; m < M_; ++m) {
      double s[kStats] = {0, 0, 0, 0, 0};
      T* lb = LB_.col(m).data();
      const T* a = A_.col(m).data();
      const T* a0 = A_old_.col(m).data();
      const T* z = Z1_.col(m).data();
      for (Eigen::Index p = 0; p < P_; ++p) {
        lb[p] -= a[p];
        const double r = double(z[p]) - double(a[p]), d = double(a[p]) - double(a0[p]);
        s[0] += r * r;
        s[1] += double(z[p]) * double(z[p]);
        s[2] += double(a[p]) * double(a[p]);
        s[3] += d * d;
        s[4] += double(lb[p]) * double(lb[p]);
      }
      std::copy(s, s + kStats, &partial_[static_cast<std::size_t>(m) * kStats]);
    }
    lb_holds_b_ = false;
    double s1[kStats] = {0, 0, 0, 0, 0};
    for (Eigen::Index m = 0; m < M_; ++m)
      for (int k = 0; k < kStats; ++k) s1[k] += partial_[static_cast<std::size_t>(m) * kStats + k];
    const double tiny = 1e-300;
    r1_ = std::sqrt(s1[0]) / std::max({std::sqrt(s1[1]), std::sqrt(s1[2]), tiny});
    d1_ = std::sqrt(s1[3]) / std::max(std::sqrt(s1[4]), tiny);
    const double pr2 = (Z2_ - U_).norm();
    r2_ = pr2 / std::max({double(Z2_.norm()), double(U_.norm()), tiny});
    d2_ = double((U_ - U_old_).norm()) / std::max(double(L2_.norm()), tiny);
    // Where a block is exactly at rest (e.g. U = 0 with zero duals) it is converged.
    if (s1[0] == 0 && s1[1] == 0 && s1[2] == 0) r1_ = 0;
    if (s1[3] == 0) d1_ = 0;
    if (pr2 == 0) r2_ = 0;
    if (U_ == U_old_) d2_ = 0;
    info.primal_residual = std::max(r1_, r2_);
    info.dual_residual = std::max(d1_, d2_);
  }

  void adapt_rho(Info& info) {
    const auto factor = [&](double r, double s) {
      if (r == 0 && s == 0) return 1.0;
      const double f = std::clamp(st_.adapt_bias * std::sqrt(r / std::max(s, 1e-300)), 0.1, 10.0);
      return (f < st_.adapt_threshold && f > 1.0 / st_.adapt_threshold) ? 1.0 : f;
    };
    // Each penalty stays within 1e6 of where it started: a degenerate block (all of U
    // thresholded to zero, say) must not drive it to 0 or overflow.
    const auto bounded = [](double rho, double f, double start) {
      return std::clamp(rho * f, start * 1e-6, start * 1e6) / rho;
    };
    const double f1 = bounded(rho1_, factor(r1_, d1_), rho1_start_);
    const double f2 = bounded(rho2_, factor(r2_, d2_), rho2_start_);
    if (f1 == 1.0 && f2 == 1.0) return;
    rho1_ *= f1;
    rho2_ *= f2;
    LB_ /= static_cast<T>(f1);  // LB holds L1 here (residuals() left it so)
    L2_ /= static_cast<T>(f2);
    ++info.rho_updates;
    if (f1 != f2) {
      gram_.set_sigma(rho2_ / rho1_);
      ++info.factor_updates;
    }
  }

  // The returned matrix: the exactly sparse Z2, then the bias shift that makes Omega^c
  // feasible; violations are measured on this matrix itself.  Uses Z1_ as scratch.
  void make_candidate(Info& info) {
    candidate_ = Z2_;
    Mat& Ac = Z1_;
    Ac.noalias() = pb_.X * candidate_;
    const bool shift = st_.polish && relu_ && st_.bias_row >= 0;
    std::vector<double> dnorm2(M_, 0.0), excess(M_, 0.0);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (Eigen::Index m = 0; m < M_; ++m) {
      double top = -std::numeric_limits<double>::infinity();
      if (relu_) {
        for (Eigen::Index p = 0; p < P_; ++p)
          if (!(Y_(p, m) > 0)) top = std::max(top, double(Ac(p, m)) - double(bound(p, m)));
      }
      if (shift && top > 0) {
        candidate_(st_.bias_row, m) -= static_cast<T>(top);
        Ac.col(m).array() -= static_cast<T>(top);
        top = 0;
        for (Eigen::Index p = 0; p < P_; ++p)
          if (!(Y_(p, m) > 0)) top = std::max(top, double(Ac(p, m)) - double(bound(p, m)));
      }
      excess[m] = top;
      double s = 0;
      for (Eigen::Index p = 0; p < P_; ++p)
        if (in_omega(p, m)) {
          const double d = double(Ac(p, m)) - double(Y_(p, m));
          s += d * d;
        }
      dnorm2[m] = s;
    }
    double worst_excess = 0;
    for (double e : excess) worst_excess = std::max(worst_excess, e);
    const double rms = omega_count_ > 0 ? std::sqrt(ynorm2_total_ / double(omega_count_)) : 1.0;
    info.complement_violation = worst_excess / (rms > 0 ? rms : 1.0);
    info.omega_violation = 0;
    if (regularized_) return;
    if (st_.constraint == Constraint::joint) {
      double total = 0;
      for (double v : dnorm2) total += v;
      const double eps = pb_.eps[0];
      const double denom = eps > 0 ? eps : (ynorm2_total_ > 0 ? std::sqrt(ynorm2_total_) : 1.0);
      info.omega_violation = std::max(0.0, std::sqrt(total) - eps) / denom;
    } else {
      for (Eigen::Index m = 0; m < M_; ++m) {
        const double eps = pb_.eps[m];
        const double denom = eps > 0 ? eps : (ynorm2_[m] > 0 ? std::sqrt(ynorm2_[m]) : 1.0);
        info.omega_violation = std::max(info.omega_violation, std::max(0.0, std::sqrt(dnorm2[m]) - eps) / denom);
      }
    }
  }

  double objective(const Mat& U) const {
    if (st_.penalty == Penalty::l1) return U.template cast<double>().cwiseAbs().sum();
    double value = 0;
    for (Eigen::Index n = 0; n < N_; ++n)
      value += n == st_.bias_row ? U.row(n).template cast<double>().cwiseAbs().sum()
                                 : U.row(n).template cast<double>().norm();
    return value;
  }

  const Problem<T>& pb_;
  const Settings& st_;
  const int threads_;
  const Eigen::Index P_, N_, M_;
  const bool relu_, regularized_;
  detail::GramInverse<T> gram_;
  Mat Y_, V_;
  Mat A_, A_old_, LB_, Z1_;       // P x M
  Mat U_, U_old_, Z2_, L2_, R_;   // N x M
  Mat candidate_;
  std::vector<double> colsum_, rownorm_, partial_, ynorm2_, ball_;
  std::vector<T> scale_;
  double ynorm2_total_ = 0;
  long omega_count_ = 0;
  double rho1_ = 1, rho2_ = 1, rho1_start_ = 1, rho2_start_ = 1;
  double r1_ = 0, r2_ = 0, d1_ = 0, d2_ = 0;
  double last_objective_ = std::numeric_limits<double>::infinity();
  bool lb_holds_b_ = false;
};

}  // namespace

std::size_t workspace_bytes(long N, long P, long M, bool has_V, std::size_t scalar_size) {
  const double pm = double(P) * double(M), nm = double(N) * double(M), r = double(std::min(N, P));
  const double scalars = pm * (5 + (has_V ? 1 : 0)) + nm * 8 + double(N) * double(N) + double(N) * r;
  // The eigendecomposition runs in double: the r x r matrix, its eigenvectors, workspace.
  const double doubles = 3 * r * r + (P < N ? double(P) * double(N) : 2048.0 * double(N));
  return static_cast<std::size_t>(scalars * double(scalar_size) + doubles * 8.0);
}

template <class T>
Result<T> solve_layer(const Problem<T>& problem, const Settings& settings, const Hooks& hooks) {
  const Clock::time_point t0 = Clock::now();
  validate(problem, settings);
  const long N = problem.X.cols(), P = problem.X.rows(), M = problem.Y.cols();
  const std::size_t need = workspace_bytes(N, P, M, problem.V.has_value(), sizeof(T));
  const std::size_t have = available_memory();
  if (have > 0 && need > have) {
    throw MemoryError("a layer of N=" + std::to_string(N) + ", P=" + std::to_string(P) + ", M=" +
                      std::to_string(M) + " needs about " + std::to_string(need >> 20) +
                      " MiB of working memory, but only " + std::to_string(have >> 20) +
                      " MiB are available; reduce the calibration samples P or use float32");
  }
  const int threads = resolve_threads(settings.threads, double(N) * double(P) * double(M));
  ThreadScope scope(threads);
  try {
    LayerAdmm<T> admm(problem, settings, threads);
    return admm.run(hooks, t0, std::chrono::duration<double>(Clock::now() - t0).count());
  } catch (const std::bad_alloc&) {
    throw MemoryError("out of memory while allocating the working buffers of a layer of N=" +
                      std::to_string(N) + ", P=" + std::to_string(P) + ", M=" + std::to_string(M));
  }
}

template Result<float> solve_layer(const Problem<float>&, const Settings&, const Hooks&);
template Result<double> solve_layer(const Problem<double>&, const Settings&, const Hooks&);

}  // namespace nettrim
