// Known answers: problems whose solution is known in closed form or by construction.
#include "check.hpp"

#include <Eigen/Cholesky>

using namespace nettrim;

// Linear mode, one constant feature: min |u| s.t. ||u 1 - y|| <= eps has the solution
// u = ybar - sqrt((eps^2 - ||y - ybar||^2) / P) when ||y - ybar|| <= eps <= ||y||.
template <class T>
void one_feature() {
  const long P = 50;
  RowMatrix<T> X = RowMatrix<T>::Ones(P, 1), Y(P, 1);
  for (long p = 0; p < P; ++p) Y(p, 0) = T(2.0 + 0.1 * std::sin(double(p)));
  const double ybar = Y.template cast<double>().mean();
  const double spread2 = (Y.template cast<double>().array() - ybar).square().sum();
  const double eps = 0.5 * std::sqrt(double(Y.template cast<double>().squaredNorm()));
  const double want = ybar - std::sqrt((eps * eps - spread2) / double(P));
  Settings s;
  s.mode = Mode::linear;
  s.tol = 1e-5;
  s.dual_tol = 1e-4;
  s.threads = 1;
  const Result<T> r = solve_layer<T>(X, Y, std::nullopt, {eps}, s);
  CHECK(r.info.status == Status::converged);
  std::printf("one feature (%s): u = %.9g, want %.9g\n", sizeof(T) == 4 ? "float" : "double", double(r.U(0, 0)), want);
  CHECK(std::abs(double(r.U(0, 0)) - want) <= (sizeof(T) == 4 ? 1e-4 : 1e-6) * want);
  CHECK(r.info.omega_violation <= s.tol);
}

// eps >= ||Y_Omega||: U = 0 is feasible, so it is the solution, found without iterating.
template <class T>
void zero_when_eps_covers_the_outputs() {
  const Layer<T> L = random_layer<T>(1, 200, 10, 4);
  Settings s;
  s.bias_row = 10;
  const Result<T> r = solve_layer<T>(L.X, L.Y, std::nullopt, {1.01 * omega_norm(L)}, s);
  CHECK(r.info.status == Status::converged);
  CHECK(r.info.iterations == 0);
  CHECK(r.U.cwiseAbs().maxCoeff() == T(0));
}

// A sparse teacher, enough Gaussian samples, tiny eps: the solution is the teacher.
void recovers_a_sparse_teacher() {
  const Layer<double> L = random_layer<double>(7, 600, 40, 5, 0.15);
  Settings s;
  s.bias_row = 40;
  s.tol = 1e-4;
  s.dual_tol = 1e-3;
  s.threads = 1;
  const Result<double> r = solve_layer<double>(L.X, L.Y, std::nullopt, {1e-3 * omega_norm(L)}, s);
  CHECK(r.info.status == Status::converged);
  const double top = L.W.cwiseAbs().maxCoeff();
  for (long n = 0; n < 40; ++n)
    for (long m = 0; m < 5; ++m) {
      CHECK((std::abs(r.U(n, m)) > 1e-3 * top) == (L.W(n, m) != 0));
      CHECK(std::abs(r.U(n, m) - L.W(n, m)) <= 0.02 * top);
    }
}

// What Info reports is what the returned matrix does (recomputed here in double).
template <class T>
void reported_violations_are_the_matrix_s() {
  const Layer<T> L = random_layer<T>(3, 400, 25, 6);
  Settings s;
  s.bias_row = 25;
  s.max_iter = 30;   // far from converged: violations are large
  s.tol = 0;
  const double eps = 0.05 * omega_norm(L);
  const Result<T> r = solve_layer<T>(L.X, L.Y, std::nullopt, {eps}, s);
  CHECK(r.info.status == Status::max_iterations);
  const double v = std::max(0.0, omega_error(L, r.U) - eps) / eps;
  CHECK(std::abs(v - r.info.omega_violation) <= 1e-6 * std::max(1.0, v));
}

// float32 and float64 agree on the optimum.
void precisions_agree() {
  const Layer<double> L = random_layer<double>(8, 500, 30, 8);
  const Layer<float> Lf{L.X.cast<float>(), L.Y.cast<float>(), L.W.cast<float>()};
  Settings s;
  s.bias_row = 30;
  const double eps = 0.05 * omega_norm(L);
  const Result<double> r64 = solve_layer<double>(L.X, L.Y, std::nullopt, {eps}, s);
  const Result<float> r32 = solve_layer<float>(Lf.X, Lf.Y, std::nullopt, {eps}, s);
  CHECK(r64.info.status == Status::converged && r32.info.status == Status::converged);
  CHECK(std::abs(r32.info.objective / r64.info.objective - 1) <= 2e-3);
}

// The re-fit on a support: with every output active there is no inequality, and the answer
// is the least squares on the support (normal equations); with inactive rows, every bound
// is met and the error is no larger than the start's.
void refit_is_least_squares_on_the_support() {
  const long P = 120, n = 6, M = 3;
  RowMatrix<double> X(P, n), Y(P, M), support(n, M), start = RowMatrix<double>::Zero(n, M);
  for (long p = 0; p < P; ++p)
    for (long i = 0; i < n; ++i) X(p, i) = std::sin(0.37 * double((i + 1) * p) + double(i));
  for (long i = 0; i < n; ++i)
    for (long j = 0; j < M; ++j) support(i, j) = (i + j) % 2 == 0 ? 1.0 : 0.0;
  for (long p = 0; p < P; ++p)
    for (long j = 0; j < M; ++j) Y(p, j) = 30.0 + X.row(p).sum() * double(j + 1) + std::cos(double(p));
  const Eigen::VectorXd bias = Eigen::VectorXd::Zero(M);
  const RowMatrix<double> none(0, M);
  RefitSettings exact;
  exact.ridge = 0;   // the normal equations as they are
  const RefitResult all_active = refit_support(X, Y, support, start, bias, none, true, exact);
  CHECK(all_active.unconverged == 0);
  for (long j = 0; j < M; ++j) {
    std::vector<long> cols;
    for (long i = 0; i < n; ++i)
      if (support(i, j) != 0) cols.push_back(i);
    Eigen::MatrixXd A(P, long(cols.size()) + 1);
    for (long c = 0; c < long(cols.size()); ++c) A.col(c) = X.col(cols[size_t(c)]);
    A.col(long(cols.size())).setOnes();
    const Eigen::VectorXd want = (A.transpose() * A).ldlt().solve(A.transpose() * Y.col(j));
    for (long c = 0; c < long(cols.size()); ++c) CHECK(std::abs(all_active.weights(cols[size_t(c)], j) - want(c)) < 1e-8);
    CHECK(std::abs(all_active.bias(j) - want(long(cols.size()))) < 1e-8);
    for (long i = 0; i < n; ++i)
      if (support(i, j) == 0) CHECK(all_active.weights(i, j) == 0.0);
  }
  // ReLU outputs: a third of the rows inactive, from the zero weights and a bias low enough.
  RowMatrix<double> R = Y;
  for (long p = 0; p < P; p += 3) R.row(p).setZero();
  const Eigen::VectorXd low = Eigen::VectorXd::Constant(M, -1.0);
  const RefitResult relu = refit_support(X, R, support, start, low, none, true);
  CHECK(relu.unconverged == 0);
  const Eigen::MatrixXd Z = (X * relu.weights).rowwise() + relu.bias.transpose();
  for (long j = 0; j < M; ++j) {
    double fitted = 0, started = 0;
    for (long p = 0; p < P; ++p) {
      if (R(p, j) > 0) {
        fitted += (Z(p, j) - R(p, j)) * (Z(p, j) - R(p, j));
        started += (-1.0 - R(p, j)) * (-1.0 - R(p, j));
      } else {
        CHECK(Z(p, j) <= 1e-8);
      }
    }
    CHECK(fitted < started);
  }
  // Inactive::relu: with every output active, the same least squares; with inactive rows, the
  // minimiser of the error with their ReLU outputs counted: its gradient vanishes, and it errs
  // less than the bounded re-fit, which is a point of the same function.
  RefitSettings counted = exact;
  counted.inactive = Inactive::relu;
  const RefitResult same = refit_support(X, Y, support, start, bias, none, true, counted);
  CHECK(same.unconverged == 0);
  CHECK((same.weights - all_active.weights).cwiseAbs().maxCoeff() < 1e-8);
  CHECK((same.bias - all_active.bias).cwiseAbs().maxCoeff() < 1e-8);
  const RefitResult soft = refit_support(X, R, support, start, low, none, true, counted);
  CHECK(soft.unconverged == 0);
  const Eigen::MatrixXd S = (X * soft.weights).rowwise() + soft.bias.transpose();
  for (long j = 0; j < M; ++j) {
    double soft_error = 0, bounded_error = 0;
    Eigen::VectorXd grad = Eigen::VectorXd::Zero(n + 1);   // over the weights and the bias
    for (long p = 0; p < P; ++p) {
      const double r = R(p, j) > 0 ? S(p, j) - R(p, j) : std::max(S(p, j), 0.0);
      const double b = R(p, j) > 0 ? Z(p, j) - R(p, j) : std::max(Z(p, j), 0.0);
      soft_error += r * r;
      bounded_error += b * b;
      grad.head(n) += r * X.row(p).transpose();
      grad(n) += r;
    }
    for (long i = 0; i < n; ++i)
      if (support(i, j) == 0) grad(i) = 0.0;
    CHECK(soft_error < bounded_error);
    CHECK(grad.norm() < 1e-8 * (1.0 + std::sqrt(soft_error)) * double(P));
  }
  std::printf("refit on a support: least squares, bounds met; relu: the minimiser\n");
}

int main() {
  one_feature<float>();
  one_feature<double>();
  zero_when_eps_covers_the_outputs<float>();
  zero_when_eps_covers_the_outputs<double>();
  recovers_a_sparse_teacher();
  reported_violations_are_the_matrix_s<float>();
  reported_violations_are_the_matrix_s<double>();
  precisions_agree();
  refit_is_least_squares_on_the_support();
  return report("known_answers");
}
