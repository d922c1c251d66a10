// Bad data and settings throw, naming what was wrong; misuse of the lifecycle too.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"

using namespace nettrim;

int main() {
  const Layer<double> L = random_layer<double>(21, 100, 8, 3);
  Settings s;
  s.bias_row = 8;

  RowMatrix<double> nan_X = L.X;
  nan_X(3, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS(Solver<double>().setup(nan_X, s), std::invalid_argument, "X: expected finite");
  CHECK_THROWS(Solver<double>().setup(RowMatrix<double>(0, 4), s), std::invalid_argument, "X: expected a non-empty");

  Settings bad = s;
  bad.alpha = 2.5;
  CHECK_THROWS(Solver<double>().setup(L.X, bad), std::invalid_argument, "alpha: expected a value in (0, 2), got 2.5");
  bad = s;
  bad.threads = 5000;
  CHECK_THROWS(Solver<double>().setup(L.X, bad), std::invalid_argument, "threads: expected an integer in [0, 1024]");
  bad = s;
  bad.tol = -1;
  CHECK_THROWS(bad.validate(), std::invalid_argument, "tol: expected a finite value >= 0");
  CHECK_THROWS(Solver<double>("gpu"), std::invalid_argument, "backend: expected one of 'cpu'");
  // CUDA asked for where the build or the machine has none: an error naming the argument.
  const std::vector<std::string> names = available_backends();
  if (std::find(names.begin(), names.end(), "cuda") == names.end()) {
    CHECK_THROWS(Solver<float>("cuda"), std::invalid_argument, "backend: ");
    CHECK_THROWS(Solver<double>("cuda:tf32"), std::invalid_argument, "backend: ");
  }

  // The re-fit on a support: shapes and finiteness, named.
  {
    const RowMatrix<double> support = RowMatrix<double>::Ones(9, 3), start = RowMatrix<double>::Zero(9, 3);   // (X has a bias column)
    const Eigen::VectorXd bias = Eigen::VectorXd::Zero(3);
    const RowMatrix<double> Y = L.Y.cast<double>(), none(0, 3);
    CHECK_THROWS(refit_support(L.X, Y, RowMatrix<double>::Ones(7, 3), start, bias, none, true), std::invalid_argument,
                 "support: expected shape (9, 3), got (7, 3)");
    CHECK_THROWS(refit_support(L.X, Y.topRows(50), support, start, bias, none, true), std::invalid_argument,
                 "Y: expected shape (100, 3)");
    CHECK_THROWS(refit_support(L.X, Y, support, start, Eigen::VectorXd::Zero(2), none, true), std::invalid_argument,
                 "start_bias: expected shape (3, 1)");
    RowMatrix<double> nan_start = start;
    nan_start(1, 1) = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS(refit_support(L.X, Y, support, nan_start, bias, none, true), std::invalid_argument,
                 "start_weights: expected finite");
  }

  Solver<double> solver;
  CHECK_THROWS(solver.update_target(L.Y), std::logic_error, "call setup");
  solver.setup(L.X, s);
  CHECK_THROWS(solver.solve(), std::logic_error, "call update_target");
  CHECK_THROWS(solver.update_target(L.Y.topRows(50)), std::invalid_argument, "Y: expected shape (100, 3), got (50, 3)");
  RowMatrix<double> negative = L.Y;
  negative(0, 0) = -1;
  solver.update_target(negative);
  solver.update_eps({1.0});
  CHECK_THROWS(solver.solve(), std::invalid_argument, "Y: expected ReLU outputs");
  solver.update_target(L.Y);
  CHECK_THROWS(solver.update_eps({-1.0}), std::invalid_argument, "eps: expected finite values >= 0");
  CHECK_THROWS(solver.update_bound(L.Y.leftCols(2)), std::invalid_argument, "V: expected shape (100, 3)");
  solver.update_eps({1.0, 2.0});
  CHECK_THROWS(solver.solve(), std::invalid_argument, "eps: expected 1 value(s) for the joint constraint, got 2");
  CHECK_THROWS(solver.warm_start(Matrix<double>::Zero(4, 3)), std::invalid_argument, "U0: expected shape (9, 3)");
  Settings wrong_row = s;
  wrong_row.bias_row = 20;
  solver.update_settings(wrong_row);
  solver.update_eps({1.0});
  CHECK_THROWS(solver.solve(), std::invalid_argument, "bias_row: expected -1 or a row index < 9, got 20");
  // A bound on the inactive outputs belongs to inactive = bounded; with relu they are counted instead.
  Settings counted = s;
  counted.inactive = Inactive::relu;
  solver.update_settings(counted);
  solver.update_bound(RowMatrix<double>::Zero(100, 3));
  CHECK_THROWS(solver.solve(), std::invalid_argument, "V: a bound on the inactive outputs needs inactive = bounded");
  solver.clear_bound();
  solver.solve();
  return report("bad_input");
}
