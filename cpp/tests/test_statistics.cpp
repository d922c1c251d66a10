// The linear program from sample statistics (nettrim/statistics.hpp): the sums against a
// direct product, batching that does not change them, the same optimum as the rows, the
// floor, and what a compressed solver refuses.
#include "check.hpp"

#include <Eigen/QR>
#include <limits>

using namespace nettrim;

namespace {

// A linear layer: X (P x n_in) Gaussian, Y = X W + b + noise (no ReLU).
struct Linear {
  RowMatrix<double> X, Y, Xb;   // Xb: X with the column of ones
};

Linear linear_layer(unsigned seed, long P, long n_in, long M, double noise) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  Linear L;
  L.X.resize(P, n_in);
  for (long p = 0; p < P; ++p)
    for (long n = 0; n < n_in; ++n) L.X(p, n) = normal(gen);
  Eigen::MatrixXd W(n_in, M);
  for (long n = 0; n < n_in; ++n)
    for (long m = 0; m < M; ++m) W(n, m) = (n % 3 == 0) ? normal(gen) : 0.0;
  L.Y = L.X * W;
  for (long p = 0; p < P; ++p)
    for (long m = 0; m < M; ++m) L.Y(p, m) += 0.5 + noise * normal(gen);
  L.Xb.resize(P, n_in + 1);
  L.Xb << L.X, Eigen::VectorXd::Ones(P);
  return L;
}

// The linear program with its bias in row bias_row, solved to tol (dual_tol 10 tol), one thread.
Settings linear_settings(int bias_row, double tol) {
  Settings s;
  s.mode = Mode::linear;
  s.bias_row = bias_row;
  s.tol = tol;
  s.dual_tol = 10 * tol;
  s.threads = 1;
  return s;
}

SampleStatistics sums_of(const Linear& L, long batch) {
  SampleStatistics s(L.X.cols(), L.Y.cols(), true);
  for (long p0 = 0; p0 < L.X.rows(); p0 += batch) {
    const long rows = std::min(batch, long(L.X.rows()) - p0);
    s.add<double>(L.X.middleRows(p0, rows), L.Y.middleRows(p0, rows));
  }
  return s;
}

void sums_match_the_products_and_not_the_batching() {
  const Linear L = linear_layer(1, 5000, 12, 4, 0.1);
  const SampleStatistics one = sums_of(L, 5000);
  const Eigen::MatrixXd G = L.Xb.transpose() * L.Xb, C = L.Xb.transpose() * L.Y;
  CHECK((one.gram() - G).cwiseAbs().maxCoeff() <= 1e-12 * G.cwiseAbs().maxCoeff());
  CHECK((one.cross() - C).cwiseAbs().maxCoeff() <= 1e-12 * C.cwiseAbs().maxCoeff());
  CHECK(one.samples() == 5000 && one.inputs() == 13 && one.outputs() == 4);
  for (long batch : {1L, 7L, 2048L, 3000L}) {   // bit-identical, however the rows are cut
    const SampleStatistics many = sums_of(L, batch);
    CHECK(many.gram() == one.gram());
    CHECK(many.cross() == one.cross());
    CHECK(many.target_norm2() == one.target_norm2());
  }
}

// The compressed program has the rows' optimum, and its reported error is the rows' error.
template <class T>
void same_optimum_as_the_rows() {
  const Linear L = linear_layer(2, 3000, 20, 5, 0.3);
  const RowMatrix<T> X = L.Xb.cast<T>(), Y = L.Y.cast<T>();
  const Settings s = linear_settings(20, 1e-5);
  const double eps = 0.2 * L.Y.norm();
  const Result<T> rows = solve_layer<T>(X, Y, std::nullopt, {eps}, s);
  Solver<T> packed;
  packed.setup(sums_of(L, 1000), s);
  CHECK(packed.compressed() && packed.samples() == 3000 && packed.rows() == 21);
  packed.update_eps({eps});
  const Result<T> r = packed.solve();
  CHECK(rows.info.status == Status::converged && r.info.status == Status::converged);
  const double rel = std::abs(r.info.objective - rows.info.objective) / rows.info.objective;
  std::printf("compressed (%s): objective %.9g, rows %.9g (relative difference %.2e), %d and %d iterations\n",
              sizeof(T) == 4 ? "float" : "double", r.info.objective, rows.info.objective, rel, r.info.iterations,
              rows.info.iterations);
  CHECK(rel <= (sizeof(T) == 4 ? 1e-3 : 1e-4));
  // The verdict's error, recomputed on the rows in double: within eps (1 + tol).
  const double err = (L.Xb * r.U.template cast<double>() - L.Y).norm();
  CHECK(err <= eps * (1 + s.tol) + 1e-9 * eps);
  CHECK(r.info.omega_violation <= s.tol);
  CHECK(r.info.error_resolved);
}

void the_floor_and_refusals() {
  const Linear L = linear_layer(3, 800, 10, 3, 0.5);
  const SampleStatistics sums = sums_of(L, 800);
  Settings s;
  s.mode = Mode::linear;
  s.bias_row = 10;
  Solver<double> solver;
  solver.setup(sums, s);
  // The floor is the dense least-squares residual, per output.
  const Eigen::MatrixXd U = L.Xb.colPivHouseholderQr().solve(L.Y);
  const Eigen::MatrixXd residual = L.Xb * U - L.Y;
  const std::vector<double> floor = solver.floor();
  for (long m = 0; m < 3; ++m) CHECK(std::abs(floor[m] - residual.col(m).norm()) <= 1e-9 * L.Y.col(m).norm());
  solver.update_eps({0.5 * residual.norm()});
  CHECK_THROWS(solver.solve(), std::invalid_argument, "below the floor");
  solver.update_eps({residual.norm() * 1.2});
  CHECK(solver.solve().info.status == Status::converged);
  CHECK_THROWS(solver.update_target(L.Y), std::logic_error, "statistics");
  Settings relu = s;
  relu.mode = Mode::relu;
  CHECK_THROWS(solver.update_settings(relu), std::invalid_argument, "mode");
  Solver<double> other;
  CHECK_THROWS(other.setup(sums, relu), std::invalid_argument, "mode");
  SampleStatistics empty(10, 3, true);
  CHECK_THROWS(other.setup(empty, s), std::invalid_argument, "no");
  RowMatrix<double> bad = L.X.topRows(5);
  bad(2, 3) = std::numeric_limits<double>::quiet_NaN();
  SampleStatistics more(10, 3, true);
  CHECK_THROWS(more.add<double>(bad, L.Y.topRows(5)), std::invalid_argument, "X");
  CHECK(more.samples() == 0);
  CHECK_THROWS(more.add<double>(L.X.topRows(5), L.Y.topRows(4)), std::invalid_argument, "Y");
  CHECK_THROWS(SampleStatistics(0, 3), std::invalid_argument, "inputs");
}

// Duplicate and zero columns: X^T X is singular; the program is the same on its range.
void rank_deficient() {
  Linear L = linear_layer(4, 600, 8, 2, 0.2);
  L.X.col(5) = L.X.col(2);
  L.X.col(6).setZero();
  L.Xb.leftCols(8) = L.X;
  L.Y = L.X * Eigen::MatrixXd::Ones(8, 2) + 0.02 * L.Y;
  const Settings s = linear_settings(8, 1e-6);
  const double eps = 0.2 * L.Y.norm();
  const Result<double> rows = solve_layer<double>(L.Xb, L.Y, std::nullopt, {eps}, s);
  Solver<double> packed;
  packed.setup(sums_of(L, 100), s);
  CHECK(packed.rows() == 7);   // rank 7 of 9 inputs (the ones column included): one duplicate, one zero
  packed.update_eps({eps});
  const Result<double> r = packed.solve();
  CHECK(r.info.status == Status::converged);
  CHECK(std::abs(r.info.objective - rows.info.objective) <= 1e-4 * rows.info.objective);
  CHECK((L.Xb * r.U - L.Y).norm() <= eps * (1 + s.tol));
}

}  // namespace

int main() {
  sums_match_the_products_and_not_the_batching();
  same_optimum_as_the_rows<double>();
  same_optimum_as_the_rows<float>();
  the_floor_and_refusals();
  rank_deficient();
  return report("statistics");
}
