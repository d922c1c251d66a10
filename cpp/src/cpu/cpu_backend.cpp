#include "cpu/cpu_backend.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

namespace nettrim::cpu {

// Rows of X per block of the exact (double precision) check of the candidate.
constexpr Eigen::Index kExactBlock = 1024;

template <class T>
void CpuBackend<T>::set_inputs(ConstRowRef<T> X, const std::function<bool()>& interrupted) {
  X_.emplace(X.data(), X.rows(), X.cols(), Eigen::OuterStride<>(X.outerStride()));
  P_ = X.rows();
  N_ = X.cols();
  M_ = 0;
  // max_n ||X[:, n]||^2, accumulated row by row (X is row-major) in double.
  Eigen::VectorXd diag = Eigen::VectorXd::Zero(N_);
  for (Eigen::Index p = 0; p < P_; ++p) diag += X.row(p).transpose().template cast<double>().cwiseAbs2();
  diag_max_ = N_ ? diag.maxCoeff() : 0.0;
  // The set-up (X^T X or X X^T, its eigendecomposition) runs on one BLAS thread: OpenBLAS's
  // threaded calls there round differently with the number of threads, and every solve after
  // them with it (U differed by 1e-6 after one iteration on 1200 rows of Fashion-MNIST's first
  // layer, by 5e-3 after 200), so that whole networks pruned with threads=0, whose count follows the
  // machine's load, differed from run to run.  Measured at 785 x 10000: 0.28 s against 0.22 s
  // on 2 threads, once per layer.  The iterations' products, split by columns among the
  // threads, are cut the same way whatever their number (blas::gemm_columns; tests:
  // test_engine_properties.py, test_network.py).
  blas::set_threads(1);
  gram_.compute(*X_, interrupted);
}

template <class T>
void CpuBackend<T>::allocate(Eigen::Index M) {
  M_ = M;
  A_.resize(P_, M_);
  A_old_.resize(P_, M_);
  LB_.resize(P_, M_);
  Z1_.resize(P_, M_);
  U_.resize(N_, M_);
  U_old_.resize(N_, M_);
  Z2_.resize(N_, M_);
  L2_.resize(N_, M_);
  R_.resize(N_, M_);
  candidate_.resize(N_, M_);
  if constexpr (!std::is_same_v<T, double>) {
    exact_U_.resize(N_, M_);
    exact_X_.resize(std::min<Eigen::Index>(kExactBlock, P_), N_);
    exact_A_.resize(std::min<Eigen::Index>(kExactBlock, P_), M_);
  }
  rownorm_.assign(N_, 0.0);
  partial_.assign(static_cast<std::size_t>(M_) * 5, 0.0);
}

template <class T>
void CpuBackend<T>::set_target(ConstRowRef<T> Y, bool relu) {
  Y_ = Y;  // column-major copy: one contiguous column per neuron
  relu_ = relu;
  if (Y_.cols() != M_) {
    allocate(Y_.cols());
    V_.resize(0, 0);
  }
  update_norms();
}

template <class T>
void CpuBackend<T>::set_bound(const ConstRowRef<T>* V) {
  if (V) {
    V_ = *V;
  } else {
    V_.resize(0, 0);
  }
  update_norms();
}

template <class T>
void CpuBackend<T>::update_norms() {
  norms_.omega_norm2.assign(M_, 0.0);
  norms_.omega_count = 0;
  norms_.zero_meets_bound = true;
  for (Eigen::Index m = 0; m < M_; ++m) {
    for (Eigen::Index p = 0; p < P_; ++p) {
      if (in_omega(p, m)) {
        norms_.omega_norm2[m] += double(Y_(p, m)) * double(Y_(p, m));
        ++norms_.omega_count;
      } else if (V_.size() && V_(p, m) < 0) {
        norms_.zero_meets_bound = false;
      }
    }
  }
  double total = 0;
  for (double v : norms_.omega_norm2) total += v;
  norms_.omega_norm2_total = total;
}

template <class T>
void CpuBackend<T>::responses(const Mat& U, Mat& A) const {
  // X row-major P x N is the column-major N x P matrix with X's outer stride: A = (X^T)^T U.
  blas::gemm_columns<T>(threads_, chunks_, true, false, P_, U.cols(), N_, T(1), X_->data(), X_->outerStride(),
                        U.data(), N_, T(0), A.data(), P_);
}

template <class T>
void CpuBackend<T>::reset(const Matrix<T>* U0) {
  if (U0) {
    U_ = *U0;
  } else {
    U_.setZero();
  }
  LB_.setZero();
  L2_.setZero();
  lb_holds_b_ = false;
  responses(U_, A_);
  Z2_ = U_;
}

template <class T>
void CpuBackend<T>::load_state(const State<T>& state) {
  U_ = state.U;
  LB_ = state.L1;
  L2_ = state.L2;
  lb_holds_b_ = false;
  responses(U_, A_);
  Z2_ = U_;
}

template <class T>
void CpuBackend<T>::finish_dual() {
  if (lb_holds_b_) LB_ -= A_;
  lb_holds_b_ = false;
}

template <class T>
void CpuBackend<T>::save_state(State<T>& state) {
  finish_dual();
  state.U = U_;
  state.L1 = LB_;
  state.L2 = L2_;
}

template <class T>
void CpuBackend<T>::rescale_duals(double f1, double f2) {
  finish_dual();
  LB_ /= static_cast<T>(f1);
  L2_ /= static_cast<T>(f2);
}

// The elementwise passes below are compiled once per combination of their flags (relu,
// counted, ...) and written with selects instead of branches, so that they vectorise: a branch
// on y > 0 mispredicts on about half the entries of a ReLU layer.  Measured on the digits MLP's
// first layer (65 x 1347 x 256, float32, one thread), whose two GEMMs take 0.8 ms: an
// iteration took 2.4 ms with branches, 1.0 ms of it in these two passes, and 1.3 ms without.
// (GCC turns the selects into branches unless told that floating-point operations do not trap:
// -fno-trapping-math, CMakeLists.txt.)
//
// with_flags(f, b1, b2, ...) calls f(B1, B2, ...) with each Bi a std::bool_constant.
template <class F>
void with_flags(F&& f) {
  f();
}
template <class F, class... Rest>
void with_flags(F&& f, bool first, Rest... rest) {
  if (first) {
    with_flags([&](auto... b) { f(std::true_type{}, b...); }, rest...);
  } else {
    with_flags([&](auto... b) { f(std::false_type{}, b...); }, rest...);
  }
}

// Pass 1: finish the dual update L1 = B - A, and the norms the projection needs.
template <class T>
void CpuBackend<T>::omega_norms(std::vector<double>& colsum) {
  colsum.resize(M_);
  with_flags(
      [&](auto fused_dual, auto relu, auto counted_inactive) {
        constexpr bool kFused = decltype(fused_dual)::value, kRelu = decltype(relu)::value;
        constexpr bool kCounted = decltype(counted_inactive)::value;
        const Eigen::Index P = P_;   // (locals, not captures: a store through lb may not alias them)
#pragma omp parallel for schedule(static) num_threads(threads_)
        for (Eigen::Index m = 0; m < M_; ++m) {
          double s = 0;
          T* lb = LB_.col(m).data();
          const T* a = A_.col(m).data();
          const T* y = Y_.col(m).data();
#pragma omp simd reduction(+ : s)
          for (Eigen::Index p = 0; p < P; ++p) {
            T l = lb[p];
            if constexpr (kFused) {
              l -= a[p];
              lb[p] = l;
            }
            const double t = double(a[p]) - double(l), yp = double(y[p]);
            double d = t - yp;
            if constexpr (kRelu) d = yp > 0.0 ? d : (kCounted && !(t <= 0.0) ? t : 0.0);   // (a NaN is kept)
            s += d * d;
          }
          colsum[m] = s;
        }
      },
      lb_holds_b_, relu_, counted());
  lb_holds_b_ = false;
}

// Pass 2: Z1 = Proj_C(A - L1), relaxed, and B = L1 + Z1hat into LB.
template <class T>
void CpuBackend<T>::z_step(const std::vector<T>& scale, const ZStepSettings& zs) {
  with_flags(
      [&](auto relu, auto counted_inactive, auto regularized, auto has_bound, auto keep_z1) {
        constexpr bool kRelu = decltype(relu)::value, kCounted = decltype(counted_inactive)::value;
        constexpr bool kRegularized = decltype(regularized)::value, kBound = decltype(has_bound)::value;
        constexpr bool kKeep = decltype(keep_z1)::value;
        const T alpha = static_cast<T>(zs.alpha), lam_w = static_cast<T>(zs.lam_weight);
        const Eigen::Index P = P_;
#pragma omp parallel for schedule(static) num_threads(threads_)
        for (Eigen::Index m = 0; m < M_; ++m) {
          T* lb = LB_.col(m).data();
          const T* a = A_.col(m).data();
          const T* y = Y_.col(m).data();
          const T* v = kBound ? V_.col(m).data() : nullptr;
          T* z1 = kKeep ? Z1_.col(m).data() : nullptr;
          const T g = scale[m];
#pragma omp simd
          for (Eigen::Index p = 0; p < P; ++p) {
            const T t = a[p] - lb[p];
            T z = kRegularized ? t + lam_w * (y[p] - t) : y[p] + (t - y[p]) * g;
            if constexpr (kRelu) {
              T inactive;
              if constexpr (kCounted) {
                // The ball's coordinate here is t_+ (centred at 0): a positive t moves as
                // Omega's do, a negative one costs nothing and stays.
                inactive = t > T(0) ? (kRegularized ? t - lam_w * t : t * g) : t;
              } else if constexpr (kBound) {
                inactive = std::min(t, v[p]);
              } else {
                inactive = std::min(t, T(0));
              }
              z = y[p] > T(0) ? z : inactive;
            }
            if constexpr (kKeep) z1[p] = z;
            lb[p] += alpha * z + (T(1) - alpha) * a[p];
          }
        }
      },
      relu_, counted(), zs.regularized, V_.size() > 0, zs.keep_z1);
}

// Z2 = prox of the penalty at U - L2; L2 <- L2 + Z2hat (the rest of its update follows the U solve).
template <class T>
void CpuBackend<T>::prox_step(double threshold, double alpha_d, Penalty penalty, int bias_row) {
  const T thr = static_cast<T>(threshold);
  const T alpha = static_cast<T>(alpha_d);
  const bool group = penalty == Penalty::group;
  if (group) {
    std::fill(rownorm_.begin(), rownorm_.end(), 0.0);
    for (Eigen::Index m = 0; m < M_; ++m)
      for (Eigen::Index n = 0; n < N_; ++n) {
        const double w = double(U_(n, m) - L2_(n, m));
        rownorm_[n] += w * w;
      }
    for (double& r : rownorm_) r = std::sqrt(r);
  }
  with_flags(
      [&](auto is_group) {
        const T threshold_t = thr, alpha_t = alpha;   // (locals: stores through z2 may not alias them)
        const Eigen::Index N = N_;
#pragma omp parallel for schedule(static) num_threads(threads_)
        for (Eigen::Index m = 0; m < M_; ++m) {
          const T* u = U_.col(m).data();
          T* l2 = L2_.col(m).data();
          T* z2 = Z2_.col(m).data();
#pragma omp simd
          for (Eigen::Index n = 0; n < N; ++n) {
            const T w = u[n] - l2[n];
            T z;
            if (decltype(is_group)::value && n != bias_row) {
              const double rn = rownorm_[n];
              z = rn > double(threshold_t) ? static_cast<T>(w * (1.0 - double(threshold_t) / rn)) : T(0);
            } else {
              z = std::max(std::abs(w) - threshold_t, T(0));
              z = w < T(0) ? -z : z;
            }
            z2[n] = z;
            l2[n] += alpha_t * z + (T(1) - alpha_t) * u[n];
          }
        }
      },
      group);
}

// U solve: (X^T X + sigma I) U = X^T B + sigma (Z2hat + L2), where L2 holds Z2hat + L2.
template <class T>
void CpuBackend<T>::u_step() {
  std::swap(U_, U_old_);
  std::swap(A_, A_old_);
  blas::gemm_columns<T>(threads_, chunks_, false, false, N_, M_, P_, T(1), X_->data(), X_->outerStride(),
                        LB_.data(), P_, T(0), R_.data(), N_);
  R_.noalias() += static_cast<T>(gram_.sigma()) * L2_;
  blas::gemm_columns<T>(threads_, chunks_, false, false, N_, M_, N_, T(1), gram_.K().data(), N_, R_.data(), N_, T(0),
                        U_.data(), N_);
  responses(U_, A_);
  L2_ -= U_;
  lb_holds_b_ = true;
}

// OSQP-style residual sums per block; leaves LB holding L1.
template <class T>
void CpuBackend<T>::residual_sums(ResidualSums& out) {
  with_flags(
      [&](auto fused_dual) {
        const Eigen::Index P = P_;
#pragma omp parallel for schedule(static) num_threads(threads_)
        for (Eigen::Index m = 0; m < M_; ++m) {
          double r1 = 0, z1 = 0, aa = 0, da = 0, l1 = 0;
          T* lb = LB_.col(m).data();
          const T* a = A_.col(m).data();
          const T* a0 = A_old_.col(m).data();
          const T* z = Z1_.col(m).data();
#pragma omp simd reduction(+ : r1, z1, aa, da, l1)
          for (Eigen::Index p = 0; p < P; ++p) {
            if constexpr (decltype(fused_dual)::value) lb[p] -= a[p];
            const double r = double(z[p]) - double(a[p]), d = double(a[p]) - double(a0[p]);
            r1 += r * r;
            z1 += double(z[p]) * double(z[p]);
            aa += double(a[p]) * double(a[p]);
            da += d * d;
            l1 += double(lb[p]) * double(lb[p]);
          }
          double* out = &partial_[static_cast<std::size_t>(m) * 5];
          out[0] = r1, out[1] = z1, out[2] = aa, out[3] = da, out[4] = l1;
        }
      },
      lb_holds_b_);
  lb_holds_b_ = false;
  double s1[5] = {0, 0, 0, 0, 0};
  for (Eigen::Index m = 0; m < M_; ++m)
    for (int k = 0; k < 5; ++k) s1[k] += partial_[static_cast<std::size_t>(m) * 5 + k];
  out.r1 = s1[0];
  out.z1 = s1[1];
  out.a = s1[2];
  out.da = s1[3];
  out.l1 = s1[4];
  const auto sq = [](double x) { return x * x; };
  out.r2 = sq(double((Z2_ - U_).norm()));
  out.z2 = sq(double(Z2_.norm()));
  out.u = sq(double(U_.norm()));
  out.du = sq(double((U_ - U_old_).norm()));
  out.l2 = sq(double(L2_.norm()));
}

// The returned matrix: the exactly sparse Z2, then the bias shift that makes Omega^c
// feasible.  Uses Z1_ as scratch for the responses.
template <class T>
void CpuBackend<T>::candidate(int shift_row, CandidateSums& sums) {
  candidate_ = Z2_;
  Mat& Ac = Z1_;
  responses(candidate_, Ac);
  sums.excess.assign(M_, -std::numeric_limits<double>::infinity());
  sums.err2.assign(M_, 0.0);
  const bool counted_inactive = counted();
  const bool shift = relu_ && !counted_inactive && shift_row >= 0;
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (Eigen::Index m = 0; m < M_; ++m) {
    double top = -std::numeric_limits<double>::infinity();
    if (shift) {
      for (Eigen::Index p = 0; p < P_; ++p)
        if (!(Y_(p, m) > 0)) top = std::max(top, double(Ac(p, m)) - double(bound(p, m)));
    }
    if (shift && top > 0) {
      candidate_(shift_row, m) -= static_cast<T>(top);
      Ac.col(m).array() -= static_cast<T>(top);
    }
    double excess = -std::numeric_limits<double>::infinity(), err2 = 0;
    for (Eigen::Index p = 0; p < P_; ++p) {
      if (in_omega(p, m)) {
        const double d = double(Ac(p, m)) - double(Y_(p, m));
        err2 += d * d;
      } else if (counted_inactive) {
        const double d = double(Ac(p, m));
        if (!(d <= 0)) err2 += d * d;     // (a NaN is carried into the error)
      } else {
        const double e = double(Ac(p, m)) - double(bound(p, m));
        if (e > excess || std::isnan(e)) excess = e;
      }
    }
    sums.excess[m] = excess;
    sums.err2[m] = err2;
  }
  sums.finite = candidate_.allFinite();
  for (double e : sums.err2) sums.finite = sums.finite && std::isfinite(e);
}

// The candidate's sums again, with X U formed in double precision (rows in blocks, so X
// is never copied whole).  In float64 the candidate pass already was exact.
template <class T>
void CpuBackend<T>::exact_sums(CandidateSums& sums) {
  if constexpr (std::is_same_v<T, double>) {
    (void)sums;
    return;
  } else {
    const bool counted_inactive = counted();
    exact_U_ = candidate_.template cast<double>();
    sums.excess.assign(M_, -std::numeric_limits<double>::infinity());
    sums.err2.assign(M_, 0.0);
    for (Eigen::Index p0 = 0; p0 < P_; p0 += kExactBlock) {
      const Eigen::Index rows = std::min(kExactBlock, P_ - p0);
      auto Xc = exact_X_.topRows(rows);
      auto Ac = exact_A_.topRows(rows);
      Xc = X_->middleRows(p0, rows).template cast<double>();
      blas::gemm_columns<double>(threads_, chunks_, false, false, rows, M_, N_, 1.0, exact_X_.data(), exact_X_.rows(),
                                 exact_U_.data(), N_, 0.0, exact_A_.data(), exact_A_.rows());
#pragma omp parallel for schedule(static) num_threads(threads_)
      for (Eigen::Index m = 0; m < M_; ++m) {
        double excess = sums.excess[m], err2 = 0;
        for (Eigen::Index p = 0; p < rows; ++p) {
          if (in_omega(p0 + p, m)) {
            const double d = Ac(p, m) - double(Y_(p0 + p, m));
            err2 += d * d;
          } else if (counted_inactive) {
            if (!(Ac(p, m) <= 0)) err2 += Ac(p, m) * Ac(p, m);
          } else {
            const double e = Ac(p, m) - double(bound(p0 + p, m));
            if (e > excess || std::isnan(e)) excess = e;
          }
        }
        sums.excess[m] = excess;
        sums.err2[m] += err2;
      }
    }
    sums.finite = candidate_.allFinite();
    for (double e : sums.err2) sums.finite = sums.finite && std::isfinite(e);
  }
}

// nu = rho1 (T - Z1) with T = A_old - L1_old rebuilt from what the buffers hold after
// residual_sums: L1_old = L1 - alpha Z1 - (1 - alpha) A_old + A (see z_step, u_step), so
// nu = rho1 ((2 - alpha) A_old + (alpha - 1) Z1 - L1 - A).  nu overwrites Z1; X^T nu goes to R.
template <class T>
void CpuBackend<T>::dual_sums(double rho1, double alpha_d, Penalty penalty, int bias_row, DualSums& sums) {
  finish_dual();
  const T r1 = static_cast<T>(rho1), alpha = static_cast<T>(alpha_d);
  sums.a.assign(M_, 0.0);
  sums.d2.assign(M_, 0.0);
  const bool counted_inactive = counted();
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (Eigen::Index m = 0; m < M_; ++m) {
    T* nu = Z1_.col(m).data();
    const T* a_old = A_old_.col(m).data();
    const T* a = A_.col(m).data();
    const T* l1 = LB_.col(m).data();
    const T* y = Y_.col(m).data();
    const T* v = V_.size() ? V_.col(m).data() : nullptr;
    double am = 0, dm = 0;
    for (Eigen::Index p = 0; p < P_; ++p) {
      T n;
      if constexpr (std::is_same_v<T, double>) {
        n = r1 * ((T(2) - alpha) * a_old[p] + (alpha - T(1)) * nu[p] - l1[p] - a[p]);
      } else {
        // In float32 that difference of nearly equal terms loses the digits the bound needs
        // (measured: a gap stuck at 5e-3 on the digits layers); the scaled dual itself, -rho1 L1,
        // is the same point at the fixed point and is held to full precision.  On Omega^c the
        // dual must be >= 0: what is not is dropped.
        n = -r1 * l1[p];
        if (relu_ && !(y[p] > 0) && n < T(0)) n = T(0);
      }
      if (counted_inactive && !(y[p] > 0) && n < T(0)) n = T(0);   // (as above: the dual is >= 0 there)
      nu[p] = n;
      if (!relu_ || y[p] > 0) {
        am -= double(n) * double(y[p]);
        dm += double(n) * double(n);
      } else if (counted_inactive) {
        dm += double(n) * double(n);
      } else if (v) {
        am -= double(n) * double(v[p]);
      }
    }
    sums.a[m] = am;
    sums.d2[m] = dm;
  }
  blas::gemm_columns<T>(threads_, chunks_, false, false, N_, M_, P_, T(1), X_->data(), X_->outerStride(),
                        Z1_.data(), P_, T(0), R_.data(), N_);
  sums.finite = R_.allFinite();
  for (double x : sums.a) sums.finite = sums.finite && std::isfinite(x);
  if (penalty == Penalty::l1) {
    sums.colmax.assign(M_, 0.0);
    for (Eigen::Index m = 0; m < M_; ++m) sums.colmax[m] = double(R_.col(m).cwiseAbs().maxCoeff());
  } else {
    sums.rownorm2.assign(N_, 0.0);
    sums.bias_absmax = 0;
    for (Eigen::Index n = 0; n < N_; ++n) {
      if (n == bias_row) sums.bias_absmax = double(R_.row(n).cwiseAbs().maxCoeff());
      else sums.rownorm2[n] = double(R_.row(n).squaredNorm());
    }
  }
}

template <class T>
double CpuBackend<T>::penalty_of(const Mat& U, Penalty penalty, int bias_row) {
  if (penalty == Penalty::l1) return U.template cast<double>().cwiseAbs().sum();
  double value = 0;
  for (Eigen::Index n = 0; n < U.rows(); ++n)
    value += n == bias_row ? U.row(n).template cast<double>().cwiseAbs().sum()
                           : U.row(n).template cast<double>().norm();
  return value;
}

// The most this backend holds at once: the set-up's peak, or what it keeps from the set-up
// with a layer's buffers (the set-up's temporaries are freed before those are allocated; the
// sum of both was measured up to 1.7x the peak RSS where N is large, 2000 x 3001 x 100).
template <class T>
std::size_t CpuBackend<T>::workspace_bytes(long P, long N, long M, bool has_bound) const {
  const double p = double(P), n = double(N), m = double(M), r = double(std::min(N, P));
  const double t = double(sizeof(T)), d = 8.0;
  // The set-up (detail::GramInverse::compute), in double: the r x r Gram matrix and the
  // eigensolver's workspace (dsyevd: about 2 r^2) with, when P < N, X itself; then F in T
  // from the eigenvectors (with X and X^T Q in double when P < N), else a block of rows of X
  // while the Gram matrix is accumulated.
  const double setup = P < N ? std::max(d * (3 * r * r + p * n), d * (r * r + 2 * p * n) + t * n * p)
                             : std::max(d * std::max(3 * r * r, r * r + double(detail::GramInverse<T>::kBlockRows) * n),
                                        d * r * r + t * n * r);
  // Kept from the set-up: K, F and F w.
  const double kept = t * (n * n + 2 * n * r) + d * r;
  // A layer's buffers.  P x M: A, A_old, LB, Z1, Y (and V); N x M: U, U_old, Z2, L2, R,
  // candidate; in float32, the exact check's block of X, its responses and U in double.
  double layer = t * (p * m * (5 + (has_bound ? 1 : 0)) + n * m * 6) + d * (n + 5 * m);
  if constexpr (!std::is_same_v<T, double>) {
    const double block = double(std::min<long>(kExactBlock, P));
    layer += d * (block * (n + m) + n * m);
  }
  return static_cast<std::size_t>(std::max(setup, kept + layer));
}

template class CpuBackend<float>;
template class CpuBackend<double>;

}  // namespace nettrim::cpu
