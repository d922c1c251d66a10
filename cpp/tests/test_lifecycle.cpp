// The lifecycle: updates followed by a solve give what a fresh solver gives, without
// refactorising; warm starts converge to the same optimum in fewer iterations.
#include "check.hpp"

using namespace nettrim;

Settings settings_for(long bias_row) {
  Settings s;
  s.bias_row = bias_row;
  s.threads = 1;
  return s;
}

template <class T>
Result<T> fresh(const RowMatrix<T>& X, const RowMatrix<T>& Y, const RowMatrix<T>* V, double eps, const Settings& s) {
  Solver<T> solver;
  solver.setup(X, s);
  solver.update_target(Y);
  if (V) solver.update_bound(*V);
  solver.update_eps({eps});
  return solver.solve();
}

template <class T>
bool same(const Result<T>& a, const Result<T>& b) {
  return a.U == b.U && a.info.iterations == b.info.iterations && a.info.status == b.info.status;
}

template <class T>
void updates_equal_fresh_solves() {
  const Layer<T> L = random_layer<T>(11, 400, 20, 6);
  const Layer<T> L2 = random_layer<T>(12, 400, 20, 6);
  RowMatrix<T> Y2 = (L.X * L2.W).cwiseMax(T(0));
  const Settings s = settings_for(20);
  const double e1 = 0.05 * omega_norm(L), e2 = 0.1 * omega_norm(L);

  Solver<T> solver;
  solver.setup(L.X, s);
  solver.update_target(L.Y);
  solver.update_eps({e1});
  CHECK(same(solver.solve(), fresh<T>(L.X, L.Y, nullptr, e1, s)));

  // New eps, cold: bit for bit the fresh solve.
  solver.update_eps({e2});
  solver.cold_start();
  const Result<T> cold = solver.solve();
  CHECK(same(cold, fresh<T>(L.X, L.Y, nullptr, e2, s)));

  // New target: starts cold by itself.
  solver.update_target(Y2);
  solver.update_eps({0.05 * std::sqrt(Y2.template cast<double>().squaredNorm())});
  CHECK(same(solver.solve(), fresh<T>(L.X, Y2, nullptr, 0.05 * std::sqrt(Y2.template cast<double>().squaredNorm()), s)));

  // A bound (the cascade's V): as the one-call solve_layer.
  solver.update_target(L.Y);
  RowMatrix<T> V = (L.X * L2.W);
  V = V.cwiseMax(T(0)) * T(0.5);
  solver.update_bound(V);
  solver.update_eps({e1});
  const Result<T> bounded = solver.solve();
  CHECK(same(bounded, solve_layer<T>(L.X, L.Y, std::optional<ConstRowRef<T>>(V), {e1}, s)));
  solver.clear_bound();
  solver.cold_start();
  CHECK(same(solver.solve(), fresh<T>(L.X, L.Y, nullptr, e1, s)));

  // A bound belongs to its target: a new target of as many outputs starts without it.
  solver.update_bound(V);
  solver.update_target(Y2);
  const double e3 = 0.05 * std::sqrt(Y2.template cast<double>().squaredNorm());
  solver.update_eps({e3});
  CHECK(same(solver.solve(), fresh<T>(L.X, Y2, nullptr, e3, s)));
}

template <class T>
void a_new_mode_needs_its_target_again() {
  // The target's active set depends on the mode: after a change of mode, no solve runs on the
  // old one (it would answer another program), and update_target makes it the new mode's.
  const Layer<T> L = random_layer<T>(13, 300, 10, 4);
  Settings s = settings_for(10);
  Solver<T> solver;
  solver.setup(L.X, s);
  solver.update_target(L.Y);
  solver.update_eps({0.05 * omega_norm(L)});
  solver.solve();
  s.mode = Mode::linear;
  solver.update_settings(s);
  CHECK_THROWS(solver.solve(), std::logic_error, "the mode changed since the target was set");
  solver.update_target(L.Y);
  CHECK(same(solver.solve(), fresh<T>(L.X, L.Y, nullptr, 0.05 * omega_norm(L), s)));
}

template <class T>
void warm_starts_reach_the_same_optimum() {
  const Layer<T> L = random_layer<T>(13, 600, 30, 8);
  const Settings s = settings_for(30);
  const double e1 = 0.05 * omega_norm(L), e2 = 0.06 * omega_norm(L);
  Solver<T> solver;
  solver.setup(L.X, s);
  solver.update_target(L.Y);
  solver.update_eps({e1});
  const Result<T> first = solver.solve();
  const State<T> at_first = solver.state();
  solver.update_eps({e2});
  const Result<T> warm = solver.solve();          // continues from the previous iterates
  const Result<T> cold = fresh<T>(L.X, L.Y, nullptr, e2, s);
  CHECK(first.info.status == Status::converged && warm.info.status == Status::converged);
  CHECK(std::abs(warm.info.objective / cold.info.objective - 1) <= 2e-3);
  CHECK(warm.info.iterations <= cold.info.iterations);
  // From the optimum's own state it stops at once.
  solver.update_eps({e1});
  solver.warm_start(at_first);
  const Result<T> again = solver.solve();
  CHECK(again.info.iterations <= 10);
  CHECK(std::abs(again.info.objective / first.info.objective - 1) <= 1e-3);
}

template <class T>
void a_path_is_a_sequence_of_warm_solves() {
  const Layer<T> L = random_layer<T>(14, 500, 25, 6);
  const Settings s = settings_for(25);
  const double y = omega_norm(L);
  Solver<T> solver;
  solver.setup(L.X, s);
  solver.update_target(L.Y);
  const std::vector<Result<T>> path = solver.solve_path({{0.02 * y}, {0.05 * y}, {0.1 * y}, {0.2 * y}});
  CHECK(path.size() == 4);
  double last = 1e300;
  for (const Result<T>& r : path) {
    CHECK(r.info.status == Status::converged);
    CHECK(r.info.objective <= last);   // a larger ball can only lower the optimum
    last = r.info.objective;
  }
  const Result<T> cold = fresh<T>(L.X, L.Y, nullptr, 0.2 * y, s);
  CHECK(std::abs(path.back().info.objective / cold.info.objective - 1) <= 2e-3);
}

int main() {
  updates_equal_fresh_solves<float>();
  updates_equal_fresh_solves<double>();
  warm_starts_reach_the_same_optimum<float>();
  warm_starts_reach_the_same_optimum<double>();
  a_path_is_a_sequence_of_warm_solves<float>();
  a_path_is_a_sequence_of_warm_solves<double>();
  a_new_mode_needs_its_target_again<float>();
  a_new_mode_needs_its_target_again<double>();
  return report("lifecycle");
}
