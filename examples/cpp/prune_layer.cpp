// Prune one ReLU layer with the nettrim engine from C++: a synthetic layer whose outputs
// come from a sparse teacher, solved at three tolerances on one factorisation.
#include <cstdio>
#include <random>

#include <nettrim/nettrim.hpp>

int main() {
  using Mat = nettrim::RowMatrix<float>;
  const long P = 2000, n_in = 100, M = 20;

  // Inputs (samples by features) with a column of ones for the bias; a teacher with 10%
  // of its weights nonzero; the layer's ReLU outputs.
  std::mt19937 gen(0);
  std::normal_distribution<float> normal;
  std::bernoulli_distribution keep(0.1);
  Mat X(P, n_in + 1);
  for (long p = 0; p < P; ++p) {
    for (long n = 0; n < n_in; ++n) X(p, n) = normal(gen);
    X(p, n_in) = 1.0f;
  }
  nettrim::Matrix<float> W = nettrim::Matrix<float>::Zero(n_in + 1, M);
  for (long m = 0; m < M; ++m)
    for (long n = 0; n <= n_in; ++n)
      if (n == n_in || keep(gen)) W(n, m) = normal(gen) * 0.3f;
  const Mat Y = (X * W).cwiseMax(0.0f);
  const double y_norm = Y.cast<double>().norm();

  nettrim::Settings settings;
  settings.bias_row = n_in;          // the last row of U is the bias
  nettrim::Solver<float> solver;     // the "cpu" backend
  solver.setup(X, settings);         // validates and factorises X^T X once
  solver.update_target(Y);

  std::printf("layer %ld x %ld x %ld (N x P x M), teacher keeps %ld of %ld weights\n", n_in + 1, P, M,
              long((W.topRows(n_in).array() != 0).count()), n_in * M);
  std::printf("%8s %10s %8s %10s %12s %10s\n", "eps_rel", "status", "iters", "nonzeros", "objective", "seconds");
  double setup_seconds = 0;
  for (double eps_rel : {0.01, 0.05, 0.2}) {
    solver.update_eps({eps_rel * y_norm});     // no refactorisation; warm started
    const nettrim::Result<float> r = solver.solve();
    setup_seconds = r.info.setup_seconds;
    const long nnz = long((r.U.topRows(n_in).array() != 0).count());
    std::printf("%8.2f %10s %8d %10ld %12.4f %10.4f\n", eps_rel, nettrim::status_name(r.info.status),
                r.info.iterations, nnz, r.info.objective, r.info.solve_seconds);
    if (r.info.status != nettrim::Status::converged) return 1;
  }
  std::printf("setup (paid once): %.4f s; backends: ", setup_seconds);
  for (const std::string& b : nettrim::available_backends()) std::printf("%s ", b.c_str());
  std::printf("\n");
  return 0;
}
