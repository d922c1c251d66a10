// The active-set re-fit (see nettrim/refit.hpp).  One neuron at a time, OpenMP over neurons:
// each is a small dense least-squares problem over its support (tens to hundreds of unknowns)
// with one inequality per inactive row.
#include "nettrim/refit.hpp"

#include "cpu/blas.hpp"

#include <Eigen/Cholesky>
#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace nettrim {
namespace {

using MatrixXd = Eigen::MatrixXd;
using RowMatrixXd = RowMatrix<double>;   // the rows of A and B are gathered one sample at a time
using VectorXd = Eigen::VectorXd;

struct Outcome {
  int iterations = 0;
  bool converged = false;
};

// argmin ||A u - y|| s.t. B u <= v from u (meeting the bounds once v is raised to B u).
// The working set's Schur complement S = B_W G^-1 B_W^T is formed from Z = L^-1 B_W^T
// (G = L L^T), one triangular solve per bound added.
Outcome active_set(const RowMatrixXd& A, const VectorXd& y, const RowMatrixXd& B, VectorXd v, VectorXd& u, double ridge,
                   int max_iter) {
  const long n = A.cols();
  // A^T A, one triangle, by the BLAS when there is one (a portable build's Eigen has only SSE2).
  // Row-major A (na x n) is the column-major n x na matrix.
  MatrixXd G = MatrixXd::Zero(n, n);
  cpu::blas::syrk_lower(n, A.rows(), A.data(), n, G.data());
  G.diagonal().array() += ridge * (G.trace() / double(n) + 1.0);
  const Eigen::LLT<MatrixXd, Eigen::Lower> llt(G);
  const auto L = llt.matrixL();
  const VectorXd free = llt.solve(A.transpose() * y);
  const VectorXd u0 = u;
  VectorXd Bu = B * u;
  const VectorXd norms = B.rowwise().norm();
  // Bounds at the start's value, and rows tight at once, make steps of length zero that can
  // cycle: each bound gets a distinct slack of order 1e-10 of its row's scale (the classic
  // perturbation against degeneracy; the violation it allows is of that order).
  const double size = 1.0 + u.norm();
  const long m = B.rows();
  for (long p = 0; p < m; ++p)
    v(p) = std::max(v(p), Bu(p)) + 1e-10 * norms(p) * size * (1.0 + double(p) / double(m));
  const VectorXd tiny = 1e-12 * (norms.array() + 1e-300).matrix();
  std::vector<long> work;
  MatrixXd Z(n, n);                 // at most n independent bounds in the working set
  MatrixXd S(n, n);                 // Z_W^T Z_W, kept up to date as bounds come and go
  VectorXd rhs(n);                  // B_W free - v_W
  VectorXd target(n), d(n), Bd(B.rows()), mu;
  std::vector<char> in_work(B.rows(), 0);
  Outcome out;
  for (int iteration = 1; iteration <= max_iter; ++iteration) {
    out.iterations = iteration;
    const long w = long(work.size());
    if (w > 0) {
      const auto Zw = Z.leftCols(w);
      const Eigen::LDLT<MatrixXd> schur(S.topLeftCorner(w, w));
      mu = schur.solve(rhs.head(w));
      target = free - L.transpose().solve(Zw * mu);
    } else {
      target = free;
      mu.resize(0);
    }
    d = target - u;
    if (d.norm() <= 1e-10 * (1.0 + u.norm())) {
      if (w == 0 || mu.minCoeff() >= -1e-10 * (1.0 + mu.cwiseAbs().maxCoeff())) {
        out.converged = true;
        break;
      }
      long drop;
      mu.minCoeff(&drop);
      in_work[work[drop]] = 0;
      work.erase(work.begin() + drop);
      for (long k = drop; k < w - 1; ++k) {
        Z.col(k) = Z.col(k + 1);
        S.col(k).head(w) = S.col(k + 1).head(w);
        rhs(k) = rhs(k + 1);
      }
      for (long k = drop; k < w - 1; ++k) S.row(k).head(w - 1) = S.row(k + 1).head(w - 1);
      continue;
    }
    Bd.noalias() = B * d;
    double step = 1.0;
    long blocking = -1;
    for (long p = 0; p < B.rows(); ++p) {
      if (in_work[p] || Bd(p) <= tiny(p)) continue;
      const double ratio = std::max(v(p) - Bu(p), 0.0) / Bd(p);
      if (ratio < step) {
        step = ratio;
        blocking = p;
      }
    }
    u += step * d;
    Bu += step * Bd;
    if (blocking >= 0 && w < n) {
      Z.col(w) = L.solve(B.row(blocking).transpose());
      S.col(w).head(w + 1).noalias() = Z.leftCols(w + 1).transpose() * Z.col(w);
      S.row(w).head(w) = S.col(w).head(w).transpose();
      rhs(w) = B.row(blocking).dot(free) - v(blocking);
      work.push_back(blocking);
      in_work[blocking] = 1;
    }
  }
  // Rounding in a degenerate corner (more bounds tight than unknowns, nearly dependent) can
  // step outside the bounds or uphill: then the start, flagged as not converged.
  const bool outside =
      m > 0 && ((B * u - v).array() / ((norms.array() + 1e-300) * size)).maxCoeff() > 1e-9;
  if (outside || (A * u - y).norm() > (A * u0 - y).norm() * (1 + 1e-12) + 1e-300) {
    out.converged = false;
    u = u0;
  }
  return out;
}

// argmin ||A u - y||^2 + ||max(0, B u - v)||^2 (+ the ridge r ||u||^2) from u.  The function is
// convex and piecewise quadratic: on the rows of B with a positive value it is the least
// squares with those rows' targets at v, so Newton's step is that least squares' solution
// (the semismooth Newton method; a few steps in practice), taken whole when it lowers the
// function and halved until it does otherwise.  It stops at the minimiser: a full step
// whose rows are the ones it was computed on.
Outcome relu_newton(const RowMatrixXd& A, const VectorXd& y, const RowMatrixXd& B, const VectorXd& v, VectorXd& u,
                    double ridge, int max_iter) {
  const long n = A.cols(), m = B.rows();
  MatrixXd GA = MatrixXd::Zero(n, n);
  cpu::blas::syrk_lower(n, A.rows(), A.data(), n, GA.data());
  const double r = ridge * (GA.trace() / double(n) + 1.0);
  GA.diagonal().array() += r;
  const VectorXd c = A.transpose() * y;
  const VectorXd u0 = u;
  VectorXd Au = A * u, Bu = B * u - v, Ad(A.rows()), Bd(m), d(n), rhs(n);
  const auto value = [&](const VectorXd& a, const VectorXd& b, const VectorXd& w) {
    return (a - y).squaredNorm() + b.cwiseMax(0.0).squaredNorm() + r * w.squaredNorm();
  };
  double f = value(Au, Bu, u);
  const double f0 = (Au - y).squaredNorm() + Bu.cwiseMax(0.0).squaredNorm();
  std::vector<char> counted(size_t(m), 0);
  RowMatrixXd Bc(m, n);
  MatrixXd G(n, n);
  Outcome out;
  for (int iteration = 1; iteration <= max_iter; ++iteration) {
    out.iterations = iteration;
    long k = 0;
    for (long p = 0; p < m; ++p) {
      counted[size_t(p)] = Bu(p) > 0;
      if (counted[size_t(p)]) Bc.row(k++) = B.row(p);
    }
    G = GA;
    rhs = c;
    if (k > 0) {
      cpu::blas::syrk_lower(n, k, Bc.data(), n, G.data());
      for (long p = 0; p < m; ++p)
        if (counted[size_t(p)]) rhs.noalias() += v(p) * B.row(p).transpose();
    }
    const Eigen::LLT<MatrixXd, Eigen::Lower> llt(G);
    if (llt.info() != Eigen::Success) break;
    d = llt.solve(rhs) - u;
    if (d.norm() <= 1e-12 * (1.0 + u.norm())) {
      out.converged = true;
      break;
    }
    Ad.noalias() = A * d;
    Bd.noalias() = B * d;
    double step = 1.0, f_new = value(Au + Ad, Bu + Bd, u + d);
    while (!(f_new < f) && step > 1e-10) {
      step *= 0.5;
      f_new = value(Au + step * Ad, Bu + step * Bd, u + step * d);
    }
    if (!(f_new < f)) {   // Newton's direction descends unless at the minimiser: rounding
      out.converged = true;
      break;
    }
    u += step * d;
    Au += step * Ad;
    Bu += step * Bd;
    f = f_new;
    if (step == 1.0) {
      bool same = true;
      for (long p = 0; p < m && same; ++p) same = (Bu(p) > 0) == bool(counted[size_t(p)]);
      if (same) {
        out.converged = true;
        break;
      }
    }
  }
  // The ridge aside, the error never rises; guard against rounding all the same.
  if (!((Au - y).squaredNorm() + Bu.cwiseMax(0.0).squaredNorm() <= f0 * (1 + 1e-12) + 1e-300)) {
    out.converged = false;
    u = u0;
  }
  return out;
}

void check_shape(const char* name, long rows, long cols, long want_rows, long want_cols) {
  if (rows != want_rows || cols != want_cols)
    throw std::invalid_argument(std::string(name) + ": expected shape (" + std::to_string(want_rows) + ", " +
                                std::to_string(want_cols) + "), got (" + std::to_string(rows) + ", " +
                                std::to_string(cols) + ")");
}

}  // namespace

RefitResult refit_support(const ConstRowRef<double>& X, const ConstRowRef<double>& Y,
                          const Eigen::Ref<const RowMatrix<double>>& support,
                          const ConstRowRef<double>& start_weights, const Eigen::Ref<const Eigen::VectorXd>& start_bias,
                          const ConstRowRef<double>& V, bool fit_bias, const RefitSettings& settings) {
  const long P = X.rows(), n = X.cols(), M = Y.cols();
  check_shape("Y", Y.rows(), Y.cols(), P, M);
  check_shape("support", support.rows(), support.cols(), n, M);
  check_shape("start_weights", start_weights.rows(), start_weights.cols(), n, M);
  check_shape("start_bias", start_bias.size(), 1, M, 1);
  if (V.size() != 0) check_shape("V", V.rows(), V.cols(), P, M);
  const auto finite = [](const char* name, bool ok) {
    if (!ok) throw std::invalid_argument(std::string(name) + ": expected finite values (no NaN or inf)");
  };
  finite("X", X.allFinite());
  finite("Y", Y.allFinite());
  finite("start_weights", start_weights.allFinite());
  finite("start_bias", start_bias.allFinite());
  finite("V", V.allFinite());
  if (settings.max_iter < 0) throw std::invalid_argument("max_iter: expected >= 0");
  if (!(settings.ridge >= 0)) throw std::invalid_argument("ridge: expected >= 0");

  RefitResult result;
  result.weights = Matrix<double>::Zero(n, M);
  result.bias = start_bias;
  result.iterations.assign(size_t(M), 0);
  int unconverged = 0;
  cpu::blas::set_threads(1);   // the threads are over the neurons
#ifdef _OPENMP
  const int threads = settings.threads > 0 ? settings.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : unconverged)
#endif
  for (long j = 0; j < M; ++j) {
    const bool relu = settings.inactive == Inactive::relu;
    std::vector<long> cols;
    for (long i = 0; i < n; ++i)
      if (support(i, j) != 0) cols.push_back(i);
    const long k = long(cols.size()) + (fit_bias ? 1 : 0);
    if (k == 0) continue;
    long active = 0;
    for (long p = 0; p < P; ++p) active += Y(p, j) > 0;
    RowMatrixXd A(active, k), B(P - active, k);
    VectorXd y(active), v(P - active), u(k);
    const double fixed = fit_bias ? 0.0 : start_bias(j);
    for (long p = 0, a = 0, b = 0; p < P; ++p) {
      const bool on = Y(p, j) > 0;
      auto row = on ? A.row(a) : B.row(b);
      for (long c = 0; c < long(cols.size()); ++c) row(c) = X(p, cols[size_t(c)]);
      if (fit_bias) row(k - 1) = 1.0;
      if (on) y(a++) = Y(p, j) - fixed;
      else v(b++) = (relu || !V.size() ? 0.0 : V(p, j)) - fixed;
    }
    for (long c = 0; c < long(cols.size()); ++c) u(c) = start_weights(cols[size_t(c)], j);
    if (fit_bias) u(k - 1) = start_bias(j);
    const int limit = settings.max_iter > 0 ? settings.max_iter : int(3 * k + 20);
    const Outcome out = relu ? relu_newton(A, y, B, v, u, settings.ridge, limit)
                             : active_set(A, y, B, v, u, settings.ridge, limit);
    result.iterations[size_t(j)] = out.iterations;
    unconverged += out.converged ? 0 : 1;
    for (long c = 0; c < long(cols.size()); ++c) result.weights(cols[size_t(c)], j) = u(c);
    if (fit_bias) result.bias(j) = u(k - 1);
  }
  result.unconverged = unconverged;
  return result;
}

}  // namespace nettrim
