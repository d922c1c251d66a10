// The ADMM driver (docs: "The ADMM"): penalties and their adaptation, the projection
// radius, stopping, the returned matrix and its verdict, interrupts and callbacks.  The
// arithmetic of an iteration is the backend's (nettrim/backend.hpp).
#include "nettrim/solver.hpp"

#include "nettrim/machine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace nettrim {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <class M>
void require_finite(const M& m, const char* name) {
  if (!m.allFinite()) {
    throw std::invalid_argument(std::string(name) + ": expected finite values, got NaN or Inf");
  }
}

std::string shape(long rows, long cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

void require_shape(long rows, long cols, long want_rows, long want_cols, const char* name) {
  if (rows != want_rows || cols != want_cols) {
    throw std::invalid_argument(std::string(name) + ": expected shape " + shape(want_rows, want_cols) +
                                ", got " + shape(rows, cols));
  }
}

// The smallest ratio sigma = rho2/rho1 relative to the largest eigenvalue of X^T X.  The
// U solve's matrix (X^T X + sigma I)^{-1} has condition number (lambda_max + sigma) / sigma,
// and float32 loses it first.  Measured on 360 rank-deficient 5 x 7 layers (rank-1 or
// duplicated inputs, scales 1 to 1e3), float32 runs that ended non-finite: 13 with no
// floor, 12 at 1e-6, 7 at 1e-5, 4 at 1e-4, 2 at 1e-3.  Real layers go lower than 1e-3:
// sigma / lambda_max ends at 1.0e-4 on the Fashion-MNIST first layer (1.2e-3 to 2.5e-3 on
// digits), so the floor is 1e-5, which they never reach.  (What float32 still cannot do,
// nettrim.LayerSolver hands to float64.)
template <class T>
constexpr double kSigmaFloor = std::is_same_v<T, float> ? 1e-5 : 1e-12;

// max(x, 0) that keeps NaN (std::max(0.0, NaN) is 0.0, which once reported an all-NaN
// matrix as feasible).
double positive_part(double x) { return std::isnan(x) ? x : std::max(x, 0.0); }

}  // namespace

template <class T>
struct Solver<T>::Impl {
  std::unique_ptr<Backend<T>> backend;
  Settings st;
  bool is_setup = false;
  long P = 0, N = 0, M = 0;
  double setup_seconds = 0;
  std::vector<double> eps;        // the ball the ADMM works with (internal units when compressed)
  std::vector<double> eps_given;  // as update_eps took it: the verdict's units
  long samples = 0;               // calibration samples: P, or the statistics' count

  // Set up from statistics (see Solver::setup(stats)): the rows R, Yc the backend iterates
  // on, in T and (for the verdict) in double, and the least-squares floor per column.
  bool packed = false;
  RowMatrix<T> packed_R, packed_Y;
  RowMatrix<double> exact_R, exact_Y;
  std::vector<double> floor2;
  double relative_uncertainty = 0;
  Matrix<T> verdict_U;           // (buffers of the float64 verdict, sized at setup)
  Matrix<double> verdict_A;
  bool has_bound = false;
  // The mode changed since the target was set: the target's active set (which outputs are
  // Omega) was derived under the other mode, so no solve runs until update_target.
  bool target_stale = false;

  // Where the next solve starts.
  enum class Start { cold, primal, state, previous } start = Start::cold;
  Matrix<T> U0;
  State<T> warm;
  bool have_iterates = false;   // a previous solve left iterates to continue from

  // The running ADMM.
  double rho1 = 1, rho2 = 1, rho1_box = 1, rho2_box = 1;
  double r1 = 0, r2 = 0, d1 = 0, d2 = 0;
  std::vector<double> ball, colsum;
  std::vector<T> scale;
  CandidateSums sums;
  DualSums dual;
  std::vector<double> scale_t;      // the dual bound's per-column scales
  double best_bound = -std::numeric_limits<double>::infinity();
  bool certifying = false;

  // The dual problem of the program (docs: "The certificate"):
  //   max  sum_m t_m a_m - eps ||(t_m sqrt(d2_m))_m||   over  0 <= t_m <= u_m = 1 / ||X^T nu_m||_inf
  // for the joint constraint (per-neuron: each column on its own, with its eps_m), where any
  // feasible t gives a lower bound on the optimum.  The maximum over t solves a scalar
  // equation: t_m(s) = clip(a_m s / (eps d2_m), 0, u_m) with s = ||sqrt(d2) t(s)||.
  double dual_value() {
    const long m_count = long(dual.a.size());
    if (!dual.finite) return -std::numeric_limits<double>::infinity();
    if (st.penalty == Penalty::group) {   // one scale for all: rows of X^T nu in the 2-norm
      double worst = dual.bias_absmax;
      for (double r : dual.rownorm2) worst = std::max(worst, std::sqrt(r));
      if (!(worst > 0)) return -std::numeric_limits<double>::infinity();
      double a = 0, d2 = 0, value = 0;
      if (st.constraint == Constraint::joint) {
        for (long m = 0; m < m_count; ++m) a += dual.a[m], d2 += dual.d2[m];
        value = a - eps[0] * std::sqrt(d2);
      } else {
        for (long m = 0; m < m_count; ++m) value += dual.a[m] - eps[m] * std::sqrt(dual.d2[m]);
      }
      return std::max(0.0, value / worst);
    }
    scale_t.resize(m_count);
    const auto u = [&](long m) { return dual.colmax[m] > 0 ? 1.0 / dual.colmax[m] : 0.0; };
    if (st.constraint == Constraint::neuron) {
      double value = 0;
      for (long m = 0; m < m_count; ++m) value += std::max(0.0, u(m) * (dual.a[m] - eps[m] * std::sqrt(dual.d2[m])));
      return value;
    }
    const double e = eps[0];
    const auto fill = [&](double s) {   // t(s), and ||sqrt(d2) t(s)|| / s
      double norm2 = 0;
      for (long m = 0; m < m_count; ++m) {
        const double t = dual.a[m] > 0 ? std::clamp(dual.a[m] * s / (e * std::max(dual.d2[m], 1e-300)), 0.0, u(m))
                                        : 0.0;
        scale_t[m] = t;
        norm2 += dual.d2[m] * t * t;
      }
      return std::sqrt(norm2) / s;
    };
    const auto value_of = [&]() {
      double lin = 0, norm2 = 0;
      for (long m = 0; m < m_count; ++m) lin += dual.a[m] * scale_t[m], norm2 += dual.d2[m] * scale_t[m] * scale_t[m];
      return lin - e * std::sqrt(norm2);
    };
    double best = 0;   // t = 0
    if (e > 0) {
      double lo = 1e-300, hi = 1.0;
      while (fill(hi) > 1.0 && hi < 1e300) hi *= 4.0;
      lo = hi / 4.0;
      while (fill(lo) < 1.0 && lo > 1e-250) lo /= 4.0;
      for (int i = 0; i < 200 && hi / lo > 1 + 1e-12; ++i) {
        const double mid = std::sqrt(lo * hi);
        if (fill(mid) > 1.0) lo = mid;
        else hi = mid;
      }
      fill(std::sqrt(lo * hi));
      best = std::max(best, value_of());
    }
    for (long m = 0; m < m_count; ++m) scale_t[m] = dual.a[m] > 0 ? u(m) : 0.0;   // every column at its bound
    return std::max(best, value_of());
  }

  // A lower bound from this iteration's dual point; the best one stays.
  void bound_from_iterates() {
    backend->dual_sums(rho1, st.alpha, st.penalty, st.bias_row, dual);
    const double value = dual_value();
    if (std::isfinite(value)) best_bound = std::max(best_bound, value);
  }

  double relative_gap(double objective) const {
    if (!(best_bound > -std::numeric_limits<double>::infinity())) return std::numeric_limits<double>::quiet_NaN();
    if (objective <= best_bound) return 0.0;
    return (objective - best_bound) / std::max(best_bound, 1e-300);
  }

  void require_setup(const char* what) const {
    if (!is_setup) throw std::logic_error(std::string(what) + ": call setup(X, settings) first");
  }
  void require_target(const char* what) const {
    require_setup(what);
    if (M == 0) throw std::logic_error(std::string(what) + ": call update_target(Y) first");
    if (target_stale) {
      throw std::logic_error(std::string(what) + ": the mode changed since the target was set; call update_target(Y) "
                             "again (its active set depends on the mode)");
    }
  }

  void check_memory(long m, bool bound) const {
    const std::size_t need = backend->workspace_bytes(P, N, m, bound);
    const std::size_t have = available_memory();
    if (have > 0 && need > have) {
      throw MemoryError("a layer of N=" + std::to_string(N) + ", P=" + std::to_string(P) + ", M=" +
                        std::to_string(m) + " needs about " + std::to_string(need >> 20) +
                        " MiB of working memory, but only " + std::to_string(have >> 20) +
                        " MiB are available; reduce the calibration samples P or use float32");
    }
  }

  // The initial penalties: rho2 = rho, rho1 = rho2 / sigma with sigma = 0.09 max diag(X^T X)
  // (the authors' c0^2) unless given.  Adaptation keeps each within 1e6 of these.
  void initial_rho(double& r1_out, double& r2_out) const {
    const double sigma =
        std::max(st.sigma > 0 ? st.sigma : std::max(0.09 * backend->gram_diag_max(), 1e-12), sigma_floor());
    r2_out = st.rho;
    r1_out = r2_out / sigma;
  }

  double sigma_floor() const { return kSigmaFloor<T> * backend->gram_norm(); }

  // U = 0 meets the constraints (every ball contains Y's distance from 0, and V >= 0
  // where Y == 0): then it is the solution, since the penalty is >= 0.  The balls are
  // compared with a relative slack of 1e-9, since a caller's ||Y_Omega|| is summed in
  // another order (numpy's float32 norm was 1e-7 below ours on a 9000 x 300 layer, and
  // ADMM then took 158 s to find U = 0 at eps_rel = 1).
  bool zero_is_optimal() const {
    if (st.lam > 0) return false;
    const TargetNorms& tn = backend->target_norms();
    if (!tn.zero_meets_bound) return false;
    constexpr double slack = 1 - 1e-9;
    if (st.constraint == Constraint::joint) return eps[0] >= slack * std::sqrt(tn.omega_norm2_total);
    for (long m = 0; m < M; ++m)
      if (eps[m] < slack * std::sqrt(tn.omega_norm2[m])) return false;
    return true;
  }

  // The ADMM aims inside the ball by the polish margin, so that the bias shift that
  // makes Omega^c exactly feasible does not push Omega out of the true ball.  Without a
  // shift (linear layers, no bias) there is nothing to make room for.  With inactive =
  // relu there is no shift, but Omega^c's ReLU outputs share the ball and move with the
  // exactly sparse returned matrix: the margin keeps that matrix inside the true ball.
  void set_ball() {
    const bool relu_ball = st.mode == Mode::relu && st.lam == 0;
    const bool margin = relu_ball && (shift_row() >= 0 || (st.polish && st.inactive == Inactive::relu));
    const double shrink = margin ? 1.0 - st.polish_margin : 1.0;
    ball.assign(eps.size(), 0.0);
    for (std::size_t i = 0; i < eps.size(); ++i) ball[i] = eps[i] * shrink;
  }

  void begin(Info& info) {
    initial_rho(rho1_box, rho2_box);
    switch (start) {
      case Start::state:
        backend->load_state(warm);
        rho1 = warm.rho1;
        rho2 = std::max(warm.rho2, sigma_floor() * warm.rho1);
        if (rho2 != warm.rho2) backend->rescale_duals(1.0, rho2 / warm.rho2);
        break;
      case Start::primal:
        backend->reset(&U0);
        rho1 = rho1_box;
        rho2 = rho2_box;
        break;
      case Start::previous:
        break;  // iterates and penalties as the last solve left them
      case Start::cold:
        backend->reset(nullptr);
        rho1 = rho1_box;
        rho2 = rho2_box;
        break;
    }
    backend->set_sigma(rho2 / rho1);
    (void)info;
  }

  void residuals(Info& info) {
    ResidualSums s;
    backend->residual_sums(s);
    const double tiny = 1e-300;
    const auto rt = [](double x) { return std::sqrt(x); };
    r1 = rt(s.r1) / std::max({rt(s.z1), rt(s.a), tiny});
    d1 = rt(s.da) / std::max(rt(s.l1), tiny);
    r2 = rt(s.r2) / std::max({rt(s.z2), rt(s.u), tiny});
    d2 = rt(s.du) / std::max(rt(s.l2), tiny);
    // Where a block is exactly at rest (e.g. U = 0 with zero duals) it is converged.
    if (s.r1 == 0 && s.z1 == 0 && s.a == 0) r1 = 0;
    if (s.da == 0) d1 = 0;
    if (s.r2 == 0) r2 = 0;
    if (s.du == 0) d2 = 0;
    info.primal_residual = std::max(r1, r2);
    info.dual_residual = std::max(d1, d2);
    // NaN must not pass for small: max() above would drop it.
    for (double v : {r1, r2, d1, d2})
      if (std::isnan(v)) info.primal_residual = info.dual_residual = v;
  }

  void adapt_rho(Info& info) {
    const auto factor = [&](double r, double s) {
      if (r == 0 && s == 0) return 1.0;
      const double bias = certifying ? st.certify_bias : st.adapt_bias;
      const double f = std::clamp(bias * std::sqrt(r / std::max(s, 1e-300)), 0.1, 10.0);
      return (f < st.adapt_threshold && f > 1.0 / st.adapt_threshold) ? 1.0 : f;
    };
    // Each penalty stays within 1e6 of where a cold start puts it: a degenerate block
    // (all of U thresholded to zero, say) must not drive it to 0 or overflow.
    const auto bounded = [](double rho, double f, double box) {
      return std::clamp(rho * f, box * 1e-6, box * 1e6) / rho;
    };
    double f1 = bounded(rho1, factor(r1, d1), rho1_box);
    const double f2 = bounded(rho2, factor(r2, d2), rho2_box);
    // Keep the U solve well conditioned: where sigma would fall below its floor, rho1
    // rises less.
    if (rho2 * f2 < sigma_floor() * rho1 * f1) f1 = std::max(rho2 * f2 / (sigma_floor() * rho1), 1.0);
    if (f1 == 1.0 && f2 == 1.0) return;
    rho1 *= f1;
    rho2 *= f2;
    backend->rescale_duals(f1, f2);
    ++info.rho_updates;
    if (f1 != f2) {
      backend->set_sigma(rho2 / rho1);
      ++info.factor_updates;
    }
  }

  // Violations of the candidate from its sums (see Info).
  void violations(const CandidateSums& c, Info& info) const {
    const TargetNorms& tn = backend->target_norms();
    double worst = 0;
    for (double e : c.excess) {
      if (std::isnan(e)) worst = e;
      else if (!std::isnan(worst)) worst = std::max(worst, e);
    }
    const double rms = tn.omega_count > 0 ? std::sqrt(tn.omega_norm2_total / double(tn.omega_count)) : 1.0;
    info.complement_violation = worst / (rms > 0 ? rms : 1.0);
    info.omega_violation = 0;
    if (!c.finite) {
      info.omega_violation = info.complement_violation = std::numeric_limits<double>::infinity();
      return;
    }
    if (st.lam > 0) return;
    // Compressed, the error is ||R U - Yc||^2 + floor^2 (zero floors on rows), against the
    // eps given.
    const auto floor_of = [&](long m) { return packed ? floor2[m] : 0.0; };
    if (st.constraint == Constraint::joint) {
      double total = 0;
      for (long m = 0; m < M; ++m) total += c.err2[m] + floor_of(m);
      const double e = eps_given[0];
      const double denom = e > 0 ? e : (tn.omega_norm2_total > 0 ? std::sqrt(tn.omega_norm2_total) : 1.0);
      info.omega_violation = positive_part(std::sqrt(total) - e) / denom;
    } else {
      for (long m = 0; m < M; ++m) {
        const double e = eps_given[m];
        const double denom = e > 0 ? e : (tn.omega_norm2[m] > 0 ? std::sqrt(tn.omega_norm2[m]) : 1.0);
        const double v = positive_part(std::sqrt(c.err2[m] + floor_of(m)) - e) / denom;
        if (std::isnan(v) || v > info.omega_violation) info.omega_violation = v;
      }
    }
  }

  // Compressed: the ball in the rows' units, sqrt(eps^2 - floor^2), from the eps given; an
  // eps below the floor by more than rounding is no program at all.
  void pack_eps() {
    eps = eps_given;
    if (!packed || st.lam > 0) return;
    const auto check = [&](double e, double f2, double scale2, const std::string& which) {
      const double slack = relative_uncertainty * scale2;
      if (e * e < f2 - slack) {
        throw std::invalid_argument("eps: " + std::to_string(e) + which + " is below the floor " +
                                    std::to_string(std::sqrt(f2)) + ", the error ||X U - Y|| of the dense "
                                    "least-squares U, which no U goes below; expected eps >= the floor");
      }
      return std::sqrt(std::max(e * e - f2, 0.0));
    };
    const TargetNorms& tn = backend->target_norms();
    if (st.constraint == Constraint::joint) {
      double f2 = 0;
      for (double v : floor2) f2 += v;
      eps[0] = check(eps_given[0], f2, tn.omega_norm2_total + f2, "");
    } else {
      for (long m = 0; m < M; ++m)
        eps[m] = check(eps_given[m], floor2[m], tn.omega_norm2[m] + floor2[m], " (output " + std::to_string(m) + ")");
    }
  }

  // Compressed: the returned matrix's errors ||R u_m - Yc_m||^2 again, with R and Yc in
  // double as compress() made them (the backend's are rounded to T), and whether rounding
  // leaves the verdict in doubt.
  void packed_sums(CandidateSums& c, Info& info) {
    if (!packed) return;
    backend->copy_candidate(verdict_U);
    verdict_A.noalias() = exact_R * verdict_U.template cast<double>();
    verdict_A -= exact_Y;
    for (long m = 0; m < M; ++m) c.err2[m] = verdict_A.col(m).squaredNorm();
    if (!verdict_A.allFinite()) c.finite = false;
    // The uncertainty of each column's ||X u - y||^2 is relative_uncertainty of
    // ||y||^2 + ||R u||^2 (the sums it is the difference of); R u = verdict_A + Yc, at hand.
    const TargetNorms& tn = backend->target_norms();
    double worst = 0, total_unc = 0, total_eps2 = 0;
    for (long m = 0; m < M; ++m) {
      const double ru2 = (verdict_A.col(m) + exact_Y.col(m)).squaredNorm();
      const double unc = relative_uncertainty * (tn.omega_norm2[m] + floor2[m] + ru2);
      total_unc += unc;
      if (st.constraint == Constraint::neuron && eps_given[m] > 0)
        worst = std::max(worst, unc / (eps_given[m] * eps_given[m]));
    }
    if (st.constraint == Constraint::joint) {
      total_eps2 = eps_given[0] * eps_given[0];
      worst = total_eps2 > 0 ? total_unc / total_eps2 : (total_unc > 0 ? 1.0 : 0.0);
    }
    // (The verdict's resolution: tol, and at tol = 0, what float64 sums resolve at all.)
    info.error_resolved = st.lam > 0 || worst <= std::max(st.tol, 1e-6);
  }

  bool feasible(const Info& info) const {
    return info.omega_violation <= st.tol && info.complement_violation <= st.tol;
  }

  // The bias shift makes Omega^c meet its bound; with inactive = relu there is no bound.
  int shift_row() const { return st.polish && st.inactive == Inactive::bounded ? st.bias_row : -1; }

  Result<T> solve(const Hooks& hooks) {
    require_target("solve");
    if (st.lam == 0) {
      const std::size_t want = st.constraint == Constraint::joint ? 1 : static_cast<std::size_t>(M);
      if (eps.size() != want) {
        throw std::invalid_argument("eps: expected " + std::to_string(want) + " value(s) for the " +
                                    (st.constraint == Constraint::joint ? "joint" : "per-neuron") +
                                    " constraint, got " + std::to_string(eps.size()) +
                                    (eps.empty() ? " (call update_eps)" : ""));
      }
    }
    pack_eps();
    if (st.mode == Mode::relu && !nonnegative_target) {
      throw std::invalid_argument("Y: expected ReLU outputs (>= 0) in relu mode, got negative values");
    }
    if (has_bound && st.inactive == Inactive::relu && st.mode == Mode::relu) {
      throw std::invalid_argument("V: a bound on the inactive outputs needs inactive = bounded; with inactive = "
                                  "relu their ReLU outputs are counted in the error instead");
    }
    if (st.bias_row >= N) {
      throw std::invalid_argument("bias_row: expected -1 or a row index < " + std::to_string(N) + ", got " +
                                  std::to_string(st.bias_row));
    }
    const Clock::time_point t_start = Clock::now();
    const double work = double(N) * double(P) * double(M);
    int threads = resolve_threads(st.threads, work);
    ThreadScope scope(threads);
    backend->set_threads(threads);
    backend->set_inactive(st.inactive);

    Result<T> res;
    Info& info = res.info;
    info.setup_seconds = setup_seconds;
    set_ball();
    Status status = Status::max_iterations;
    int it = 0;
    const bool zero_optimal = zero_is_optimal();
    if (zero_optimal) {  // objective 0: nothing to iterate (e.g. eps >= ||Y||)
      backend->reset(nullptr);
      initial_rho(rho1, rho2);
      backend->candidate(shift_row(), sums);
      status = Status::converged;
    } else {
      begin(info);
    }
    double last_objective = backend->z2_penalty(Penalty::l1, -1);  // a warm start may be settled already
    const Clock::time_point t_iter = Clock::now();
    Clock::time_point last_poll = t_iter;
    const ZStepSettings zbase{st.lam > 0, 0.0, st.alpha, false};
    // Every buffer of the loop is sized here: the iterations allocate nothing.
    scale.assign(M, T(1));
    colsum.assign(M, 0.0);
    sums.excess.assign(M, 0.0);
    sums.err2.assign(M, 0.0);
    dual.a.assign(M, 0.0);
    dual.d2.assign(M, 0.0);
    dual.colmax.assign(M, 0.0);
    dual.rownorm2.assign(N, 0.0);
    scale_t.assign(M, 0.0);
    best_bound = -std::numeric_limits<double>::infinity();   // eps may have changed since the last solve
    certifying = false;
    for (it = std::max(it, 1); status != Status::converged && it <= st.max_iter; ++it) {
      const bool check = (it % st.adapt_every) == 0;
      // One iteration: Z1 (projection), Z2 (prox), U (the linear solve), duals.
      backend->omega_norms(colsum);
      if (st.lam == 0) {
        if (st.constraint == Constraint::joint) {
          double total = 0;
          for (double v : colsum) total += v;
          const double norm = std::sqrt(total);
          const T g = norm > ball[0] ? static_cast<T>(ball[0] / norm) : T(1);
          std::fill(scale.begin(), scale.end(), g);
        } else {
          for (long m = 0; m < M; ++m) {
            const double norm = std::sqrt(colsum[m]);
            scale[m] = norm > ball[m] ? static_cast<T>(ball[m] / norm) : T(1);
          }
        }
      }
      ZStepSettings z = zbase;
      z.lam_weight = st.lam > 0 ? st.lam / (st.lam + rho1) : 0.0;
      z.keep_z1 = check;
      backend->z_step(scale, z);
      backend->prox_step(1.0 / rho2, st.alpha, st.penalty, st.bias_row);
      backend->u_step();
      if (check) {
        residuals(info);
        if (!std::isfinite(info.primal_residual) || !std::isfinite(info.dual_residual)) {
          status = Status::numerical_error;
          break;
        }
        if (hooks.progress) hooks.progress({it, info.primal_residual, info.dual_residual, seconds_since(t_start)});
        // The objective must also have settled: residuals alone stopped easy (linear)
        // problems while ||U||_1 was still 1e-3 away from the optimum (measured).
        const double obj = backend->z2_penalty(Penalty::l1, -1);
        const bool settled = std::abs(obj - last_objective) <= 0.1 * st.tol * std::max(obj, 1e-300);
        last_objective = obj;
        const bool certify = st.gap_tol > 0 && st.lam == 0;
        if (st.tol > 0 && info.primal_residual <= st.tol &&
            (certify || (settled && info.dual_residual <= st.dual_tol))) {
          if (st.lam == 0) bound_from_iterates();      // before the candidate, which reuses Z1's buffer
          backend->candidate(shift_row(), sums);
          violations(sums, info);
          if (feasible(info)) {
            // The verdict is the returned matrix's, with its responses in double precision.
            backend->exact_sums(sums);
            packed_sums(sums, info);
            violations(sums, info);
            if (feasible(info)) {
              const double gap = relative_gap(backend->candidate_penalty(st.penalty, st.bias_row));
              if (!certify || gap <= st.gap_tol) {
                status = Status::converged;
                break;
              }
              certifying = true;   // feasible, the gap still open: balance for the dual's sake
            }
          }
        }
        if (st.adaptive_rho) adapt_rho(info);
        if (st.threads == 0) {   // follow the machine's load (see resolve_threads)
          const int now = resolve_threads(0, work);
          if (now != threads) {
            threads = now;
            scope.set(threads);
            backend->set_threads(threads);
          }
        }
      }
      if (st.time_limit > 0 && seconds_since(t_start) > st.time_limit) {
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
    // Iterations run: `it` is the one that converged or stopped, one past the limit, or
    // (zero optimal) the loop never ran.
    info.iterations = zero_optimal ? 0 : (status == Status::converged ? it : std::min(it, st.max_iter));
    info.solve_seconds = seconds_since(t_iter);
    const Clock::time_point t_polish = Clock::now();
    if (status != Status::converged) {
      backend->candidate(shift_row(), sums);
      backend->exact_sums(sums);
      packed_sums(sums, info);
    } else if (zero_optimal) {
      packed_sums(sums, info);
    }
    violations(sums, info);
    if (!sums.finite) status = Status::numerical_error;
    info.polish_seconds = seconds_since(t_polish);
    info.threads = threads;
    info.status = status;
    info.rho1 = rho1;
    info.rho2 = rho2;
    info.objective = backend->candidate_penalty(st.penalty, st.bias_row);
    if (zero_optimal) best_bound = 0;
    info.dual_bound = best_bound > -std::numeric_limits<double>::infinity() ? best_bound
                                                                            : std::numeric_limits<double>::quiet_NaN();
    info.gap = zero_optimal ? 0.0 : relative_gap(info.objective);
    backend->copy_candidate(res.U);
    // Non-finite iterates are no place to continue from: the next solve starts cold.
    have_iterates = status != Status::numerical_error;
    start = (st.warm_start && have_iterates) ? Start::previous : Start::cold;
    return res;
  }

  bool nonnegative_target = true;
};

template <class T>
Solver<T>::Solver(const std::string& backend) : impl_(std::make_unique<Impl>()) {
  impl_->backend = make_backend<T>(backend);
}

template <class T>
Solver<T>::~Solver() = default;
template <class T>
Solver<T>::Solver(Solver&&) noexcept = default;
template <class T>
Solver<T>& Solver<T>::operator=(Solver&&) noexcept = default;

template <class T>
void Solver<T>::setup(ConstRowRef<T> X, const Settings& settings, const Hooks& hooks) {
  const Clock::time_point t0 = Clock::now();
  settings.validate();
  Impl& s = *impl_;
  const long P = X.rows(), N = X.cols();
  if (P == 0 || N == 0) {
    throw std::invalid_argument("X: expected a non-empty array, got shape " + shape(P, N));
  }
  require_finite(X, "X");
  s.is_setup = false;
  s.P = P;
  s.samples = P;
  s.N = N;
  s.M = 0;
  s.st = settings;
  s.packed = false;
  s.eps.clear();
  s.eps_given.clear();
  s.has_bound = false;
  s.have_iterates = false;
  s.start = Impl::Start::cold;
  s.check_memory(0, false);
  const int threads = resolve_threads(settings.threads, double(N) * double(N) * double(P));
  ThreadScope scope(threads);
  s.backend->set_threads(threads);
  try {
    s.backend->set_inputs(X, hooks.interrupted);
  } catch (const std::bad_alloc&) {
    throw MemoryError("out of memory while factorising the inputs of a layer of N=" + std::to_string(N) +
                      ", P=" + std::to_string(P));
  }
  s.backend->set_inactive(settings.inactive);   // (a backend without the choice says so now)
  s.is_setup = true;
  s.setup_seconds = seconds_since(t0);
}

template <class T>
void Solver<T>::setup(const SampleStatistics& stats, const Settings& settings, const Hooks& hooks) {
  const Clock::time_point t0 = Clock::now();
  settings.validate();
  if (settings.mode != Mode::linear) {
    throw std::invalid_argument("mode: sample statistics hold the linear program only (a ReLU layer's program "
                                "needs the rows, to tell its active outputs); expected mode = linear");
  }
  if (stats.samples() == 0) {
    throw std::invalid_argument("stats: expected at least one sample, got none (add batches first)");
  }
  Impl& s = *impl_;
  s.is_setup = false;
  s.packed = false;
  s.M = 0;
  // (compress() is one LAPACK call and two products: Ctrl-C is seen before and after it)
  if (hooks.interrupted && hooks.interrupted()) throw Interrupted();
  CompressedSamples c = compress(stats);
  if (hooks.interrupted && hooks.interrupted()) throw Interrupted();
  // A rank-0 X (all zero) reaches nothing: one zero row keeps the shapes valid, and U = 0 is
  // then the solution wherever eps meets the floor ||Y||.
  if (c.rank == 0) {
    c.R = RowMatrix<double>::Zero(1, stats.inputs());
    c.Y = RowMatrix<double>::Zero(1, stats.outputs());
  }
  s.packed_R = c.R.template cast<T>();
  s.packed_Y = c.Y.template cast<T>();
  s.exact_R = std::move(c.R);
  s.exact_Y = std::move(c.Y);
  s.floor2.assign(c.floor2.data(), c.floor2.data() + c.floor2.size());
  s.relative_uncertainty = c.relative_uncertainty;
  s.verdict_U.resize(stats.inputs(), stats.outputs());
  s.verdict_A.resize(s.exact_R.rows(), stats.outputs());
  setup(s.packed_R, settings, hooks);
  update_target(s.packed_Y);
  s.samples = stats.samples();
  s.packed = true;
  s.setup_seconds = seconds_since(t0);
}

template <class T>
void Solver<T>::update_settings(const Settings& settings) {
  settings.validate();
  Impl& s = *impl_;
  if (s.packed && settings.mode != Mode::linear) {
    throw std::invalid_argument("mode: this solver was set up from sample statistics, which hold the linear "
                                "program only; set one up from the rows X for mode = relu");
  }
  if (s.is_setup) s.backend->set_inactive(settings.inactive);
  if (s.M > 0 && settings.mode != s.st.mode) {
    s.target_stale = true;          // (update_target again: see Impl::target_stale)
    if (s.has_bound) s.backend->set_bound(nullptr);  // a bound belongs to the target and its mode
    s.has_bound = false;
  }
  s.st = settings;
}

template <class T>
void Solver<T>::update_target(ConstRowRef<T> Y) {
  Impl& s = *impl_;
  s.require_setup("update_target");
  if (s.packed) {
    throw std::logic_error("update_target: this solver was set up from sample statistics, which hold the target; "
                           "set it up again from the statistics of the new target");
  }
  if (Y.cols() == 0) throw std::invalid_argument("Y: expected at least one output column, got shape " +
                                                 shape(Y.rows(), Y.cols()));
  require_shape(Y.rows(), Y.cols(), s.P, Y.cols(), "Y");
  require_finite(Y, "Y");
  if (Y.cols() != s.M) s.check_memory(Y.cols(), s.has_bound);
  // A bound belongs to the target it was given for: a new target, even of as many outputs,
  // starts without one (update_bound again for the new one).
  if (s.has_bound) s.backend->set_bound(nullptr);
  s.has_bound = false;
  try {
    s.backend->set_target(Y, s.st.mode == Mode::relu);
  } catch (const std::bad_alloc&) {
    s.M = 0;
    throw MemoryError("out of memory while allocating the buffers of a layer of N=" + std::to_string(s.N) +
                      ", P=" + std::to_string(s.P) + ", M=" + std::to_string(Y.cols()));
  }
  s.nonnegative_target = !(Y.array() < T(0)).any();
  s.M = Y.cols();
  s.target_stale = false;
  s.have_iterates = false;
  s.start = Impl::Start::cold;
}

template <class T>
void Solver<T>::update_bound(ConstRowRef<T> V) {
  Impl& s = *impl_;
  s.require_target("update_bound");
  if (s.packed) throw std::logic_error("update_bound: a solver set up from sample statistics has no inactive outputs");
  require_shape(V.rows(), V.cols(), s.P, s.M, "V");
  require_finite(V, "V");
  s.backend->set_bound(&V);
  s.has_bound = true;
}

template <class T>
void Solver<T>::clear_bound() {
  Impl& s = *impl_;
  s.require_target("clear_bound");
  s.backend->set_bound(nullptr);
  s.has_bound = false;
}

template <class T>
void Solver<T>::update_eps(const std::vector<double>& eps) {
  for (double e : eps) {
    if (!(std::isfinite(e) && e >= 0)) {
      throw std::invalid_argument("eps: expected finite values >= 0, got " + std::to_string(e));
    }
  }
  impl_->eps = eps;
  impl_->eps_given = eps;
}

template <class T>
void Solver<T>::warm_start(const State<T>& state) {
  Impl& s = *impl_;
  s.require_target("warm_start");
  require_shape(state.U.rows(), state.U.cols(), s.N, s.M, "state.U");
  require_shape(state.L1.rows(), state.L1.cols(), s.P, s.M, "state.L1");
  require_shape(state.L2.rows(), state.L2.cols(), s.N, s.M, "state.L2");
  require_finite(state.U, "state.U");
  require_finite(state.L1, "state.L1");
  require_finite(state.L2, "state.L2");
  if (!(state.rho1 > 0 && state.rho2 > 0 && std::isfinite(state.rho1) && std::isfinite(state.rho2))) {
    throw std::invalid_argument("state: expected finite rho1 > 0 and rho2 > 0");
  }
  s.warm = state;
  s.start = Impl::Start::state;
}

template <class T>
void Solver<T>::warm_start(const Matrix<T>& U0) {
  Impl& s = *impl_;
  s.require_target("warm_start");
  require_shape(U0.rows(), U0.cols(), s.N, s.M, "U0");
  require_finite(U0, "U0");
  s.U0 = U0;
  s.start = Impl::Start::primal;
}

template <class T>
void Solver<T>::cold_start() {
  impl_->start = Impl::Start::cold;
}

template <class T>
Result<T> Solver<T>::solve(const Hooks& hooks) {
  return impl_->solve(hooks);
}

template <class T>
std::vector<Result<T>> Solver<T>::solve_path(const std::vector<std::vector<double>>& eps, const Hooks& hooks) {
  std::vector<Result<T>> path;
  path.reserve(eps.size());
  for (const std::vector<double>& e : eps) {
    update_eps(e);
    path.push_back(solve(hooks));
    if (path.back().info.status == Status::interrupted) break;
  }
  return path;
}

template <class T>
State<T> Solver<T>::state() const {
  Impl& s = *impl_;
  s.require_target("state");
  State<T> out;
  s.backend->save_state(out);
  out.rho1 = s.rho1;
  out.rho2 = s.rho2;
  return out;
}

template <class T>
const Settings& Solver<T>::settings() const {
  return impl_->st;
}
template <class T>
long Solver<T>::samples() const {
  return impl_->samples;
}
template <class T>
long Solver<T>::rows() const {
  return impl_->P;
}
template <class T>
bool Solver<T>::compressed() const {
  return impl_->packed;
}
template <class T>
std::vector<double> Solver<T>::floor() const {
  const Impl& s = *impl_;
  std::vector<double> f(static_cast<std::size_t>(s.M), 0.0);
  if (s.packed)
    for (std::size_t m = 0; m < f.size(); ++m) f[m] = std::sqrt(s.floor2[m]);
  return f;
}
template <class T>
long Solver<T>::inputs() const {
  return impl_->N;
}
template <class T>
long Solver<T>::outputs() const {
  return impl_->M;
}
template <class T>
const char* Solver<T>::backend() const {
  return impl_->backend->name();
}
template <class T>
std::size_t Solver<T>::workspace_bytes(long P, long N, long M, bool has_bound) const {
  return impl_->backend->workspace_bytes(P, N, M, has_bound);
}

template <class T>
Result<T> solve_layer(ConstRowRef<T> X, ConstRowRef<T> Y, const std::optional<ConstRowRef<T>>& V,
                      const std::vector<double>& eps, const Settings& settings, const Hooks& hooks) {
  Solver<T> solver;
  solver.setup(X, settings, hooks);
  solver.update_target(Y);
  if (V) solver.update_bound(*V);
  solver.update_eps(eps);
  return solver.solve(hooks);
}

template class Solver<float>;
template class Solver<double>;
template Result<float> solve_layer(ConstRowRef<float>, ConstRowRef<float>, const std::optional<ConstRowRef<float>>&,
                                   const std::vector<double>&, const Settings&, const Hooks&);
template Result<double> solve_layer(ConstRowRef<double>, ConstRowRef<double>,
                                    const std::optional<ConstRowRef<double>>&, const std::vector<double>&,
                                    const Settings&, const Hooks&);

}  // namespace nettrim
