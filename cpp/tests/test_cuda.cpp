// The CUDA backend against the CPU backend.  Exits with 77 (CTest's SKIP_RETURN_CODE)
// where the build has no CUDA backend or the machine no GPU.
//
// 1. Lockstep: both backends run the same iterations from the same data (the driver's
//    calls, in its order, with the same scales and penalties), and every sum that the
//    driver reads must agree: to 1e-7 in float64 (only summation order differs), loosely
//    in float32 (the iterates' roundings differ: FMA on the device, GEMM blocking).
// 2. Whole solves of every variant (joint/neuron, relu/linear, l1/group, a bound V,
//    a solution path, warm starts from a saved state, P < N): both
//    backends converge, each returned matrix is feasible, and the objectives agree to a
//    backend-specific tolerance.
//
// NETTRIM_TEST_CUDA_BACKEND=cpu runs every check with the CPU backend in the CUDA
// backend's place: a check of this test's own expectations on a machine without a GPU.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "check.hpp"

using namespace nettrim;

namespace {

// The backend under test: "cuda", or what NETTRIM_TEST_CUDA_BACKEND names.
std::string gpu_name() {
  const char* name = std::getenv("NETTRIM_TEST_CUDA_BACKEND");
  return name && *name ? name : "cuda";
}

bool has_cuda() {
  const std::vector<std::string> names = available_backends();
  return std::find(names.begin(), names.end(), "cuda") != names.end();
}

bool close(double a, double b, double tol, double scale = 0) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs(a - b) <= tol * std::max({std::abs(a), std::abs(b), scale, 1e-300});
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v)
    if (std::isfinite(x)) m = std::max(m, std::abs(x));
  return m;
}

#define CHECK_CLOSE(a, b, tol, scale)                                                                      \
  do {                                                                                                     \
    if (!close((a), (b), (tol), (scale))) {                                                                \
      std::fprintf(stderr, "%s:%d: %s = %.12g (cpu) vs %.12g (cuda)\n", __FILE__, __LINE__, #a, double(a), \
                   double(b));                                                                             \
      ++g_failures;                                                                                        \
    }                                                                                                      \
  } while (0)

template <class T>
void check_vectors(const std::vector<double>& a, const std::vector<double>& b, double tol, const char* what) {
  CHECK(a.size() == b.size());
  const double scale = std::max(max_abs(a), max_abs(b));
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (!close(a[i], b[i], tol, scale)) {
      std::fprintf(stderr, "%s[%zu] = %.12g (cpu) vs %.12g (cuda)\n", what, i, a[i], b[i]);
      ++g_failures;
      return;
    }
  }
}

// One layer of P samples, n_in inputs (and the bias), M outputs; a bound V >= -0.1.
template <class T>
struct Problem {
  Layer<T> L;
  RowMatrix<T> V;
  double eps;
};

template <class T>
Problem<T> problem(unsigned seed, long P, long n_in, long M) {
  Problem<T> pr{random_layer<T>(seed, P, n_in, M), RowMatrix<T>(), 0};
  pr.V = RowMatrix<T>::Constant(P, M, T(-0.1));
  pr.eps = 0.05 * omega_norm(pr.L);
  return pr;
}

// --- 1. lockstep ------------------------------------------------------------------------
template <class T>
void lockstep(long P, long n_in, long M, Penalty penalty, bool relu, bool bound) {
  // float64: the iterates differ by FMA and summation order alone (about 1e-15 per step);
  // the dual point nu is a difference of nearly equal terms, so its sums get more room.
  const double tol = std::is_same_v<T, double> ? 1e-7 : 2e-3;
  const double dual_tol = std::is_same_v<T, double> ? 1e-5 : 2e-3;
  const Problem<T> pr = problem<T>(5, P, n_in, M);
  std::unique_ptr<Backend<T>> cpu = make_backend<T>("cpu"), gpu = make_backend<T>(gpu_name());
  const int bias_row = int(n_in);
  for (Backend<T>* b : {cpu.get(), gpu.get()}) {
    b->set_threads(1);
    b->set_inputs(pr.L.X, {});
    b->set_target(pr.L.Y, relu);
    if (bound) {
      const ConstRowRef<T> v(pr.V);
      b->set_bound(&v);
    }
  }
  CHECK_CLOSE(cpu->gram_diag_max(), gpu->gram_diag_max(), 1e-10, 0);
  CHECK_CLOSE(cpu->gram_norm(), gpu->gram_norm(), 1e-9, 0);
  const TargetNorms &tc = cpu->target_norms(), &tg = gpu->target_norms();
  CHECK(tc.omega_count == tg.omega_count && tc.zero_meets_bound == tg.zero_meets_bound);
  CHECK_CLOSE(tc.omega_norm2_total, tg.omega_norm2_total, 1e-12, 0);
  check_vectors<T>(tc.omega_norm2, tg.omega_norm2, 1e-12, "omega_norm2");

  const double rho2 = 1.0, rho1 = rho2 / (0.09 * cpu->gram_diag_max());
  for (Backend<T>* b : {cpu.get(), gpu.get()}) {
    b->reset(nullptr);
    b->set_sigma(rho2 / rho1);
  }
  std::vector<double> cs(M), gs(M);
  std::vector<T> scale(M);
  const int iterations = std::is_same_v<T, double> ? 30 : 8;
  for (int it = 1; it <= iterations; ++it) {
    cpu->omega_norms(cs);
    gpu->omega_norms(gs);
    check_vectors<T>(cs, gs, tol, "colsum");
    double total = 0;
    for (double v : cs) total += v;
    const T g = std::sqrt(total) > pr.eps ? static_cast<T>(pr.eps / std::sqrt(total)) : T(1);
    std::fill(scale.begin(), scale.end(), g);
    const ZStepSettings z{false, 0.0, 1.8, true};
    ResidualSums rc, rg;
    for (Backend<T>* b : {cpu.get(), gpu.get()}) {
      b->z_step(scale, z);
      b->prox_step(1.0 / rho2, 1.8, penalty, bias_row);
      b->u_step();
    }
    cpu->residual_sums(rc);
    gpu->residual_sums(rg);
    CHECK_CLOSE(rc.r1, rg.r1, tol, rc.z1);
    CHECK_CLOSE(rc.z1, rg.z1, tol, 0);
    CHECK_CLOSE(rc.a, rg.a, tol, 0);
    CHECK_CLOSE(rc.da, rg.da, tol, rc.a);
    CHECK_CLOSE(rc.l1, rg.l1, tol, rc.a);
    CHECK_CLOSE(rc.r2, rg.r2, tol, rc.u);
    CHECK_CLOSE(rc.z2, rg.z2, tol, 0);
    CHECK_CLOSE(rc.u, rg.u, tol, 0);
    CHECK_CLOSE(rc.du, rg.du, tol, rc.u);
    CHECK_CLOSE(rc.l2, rg.l2, tol, rc.u);
    CHECK_CLOSE(cpu->z2_penalty(penalty, bias_row), gpu->z2_penalty(penalty, bias_row), tol, 0);
    if (it == 10) {   // as adapt_rho does: new penalties, the duals rescaled, K rebuilt
      for (Backend<T>* b : {cpu.get(), gpu.get()}) {
        b->rescale_duals(2.0, 1.0);
        b->set_sigma(rho2 / (2 * rho1));
      }
    }
  }
  DualSums dc, dg;
  cpu->dual_sums(rho1, 1.8, penalty, bias_row, dc);
  gpu->dual_sums(rho1, 1.8, penalty, bias_row, dg);
  CHECK(dc.finite == dg.finite);
  check_vectors<T>(dc.a, dg.a, dual_tol, "dual a");
  check_vectors<T>(dc.d2, dg.d2, dual_tol, "dual d2");
  if (penalty == Penalty::l1) {
    check_vectors<T>(dc.colmax, dg.colmax, dual_tol, "dual colmax");
  } else {
    check_vectors<T>(dc.rownorm2, dg.rownorm2, dual_tol, "dual rownorm2");
    CHECK_CLOSE(dc.bias_absmax, dg.bias_absmax, dual_tol, 0);
  }
  CandidateSums cc, cg;
  cpu->candidate(relu ? bias_row : -1, cc);
  gpu->candidate(relu ? bias_row : -1, cg);
  CHECK(cc.finite && cg.finite);
  check_vectors<T>(cc.err2, cg.err2, tol, "candidate err2");
  check_vectors<T>(cc.excess, cg.excess, tol, "candidate excess");
  cpu->exact_sums(cc);
  gpu->exact_sums(cg);
  check_vectors<T>(cc.err2, cg.err2, tol, "exact err2");
  check_vectors<T>(cc.excess, cg.excess, tol, "exact excess");
  CHECK_CLOSE(cpu->candidate_penalty(penalty, bias_row), gpu->candidate_penalty(penalty, bias_row), tol, 0);
  Matrix<T> uc, ug;
  cpu->copy_candidate(uc);
  gpu->copy_candidate(ug);
  CHECK(uc.rows() == ug.rows() && uc.cols() == ug.cols());
  CHECK((uc - ug).norm() <= 10 * tol * std::max<double>(uc.norm(), 1e-300));
  State<T> sc, sg;
  cpu->save_state(sc);
  gpu->save_state(sg);
  CHECK((sc.U - sg.U).norm() <= 10 * tol * std::max<double>(sc.U.norm(), 1e-300));
  CHECK((sc.L1 - sg.L1).norm() <= 10 * tol * std::max<double>(sc.L1.norm(), 1e-300));
  CHECK((sc.L2 - sg.L2).norm() <= 10 * tol * std::max<double>(sc.L2.norm(), 1e-300));
  // A state loaded back gives the same responses: the next pass's norms agree.
  gpu->load_state(sg);
  cpu->load_state(sc);
  cpu->omega_norms(cs);
  gpu->omega_norms(gs);
  check_vectors<T>(cs, gs, 10 * tol, "colsum after load_state");
}

// --- 2. whole solves ----------------------------------------------------------------------
struct Variant {
  const char* name;
  Mode mode;
  Constraint constraint;
  Penalty penalty;
  bool bound;
  double lam;
};

template <class T>
void solves_agree(const Variant& v, long P, long n_in, long M) {
  const Problem<T> pr = problem<T>(9, P, n_in, M);
  Settings s;
  s.mode = v.mode;
  s.constraint = v.constraint;
  s.penalty = v.penalty;
  s.lam = v.lam;
  s.bias_row = int(n_in);
  s.threads = 1;
  RowMatrix<T> Y = pr.L.Y;
  if (v.mode == Mode::linear) Y = pr.L.X * pr.L.W;   // logits: no ReLU
  std::vector<double> eps;
  if (v.constraint == Constraint::joint) {
    eps = {0.05 * std::sqrt(Y.template cast<double>().squaredNorm())};
  } else {
    for (long m = 0; m < M; ++m) eps.push_back(0.05 * Y.col(m).template cast<double>().norm());
  }
  Result<T> r[2];
  const std::string names[2] = {"cpu", gpu_name()};
  for (int b = 0; b < 2; ++b) {
    Solver<T> solver(names[b]);
    solver.setup(pr.L.X, s);
    solver.update_target(Y);
    if (v.bound) solver.update_bound(pr.V);
    solver.update_eps(eps);
    r[b] = solver.solve();
  }
  const double tol = std::is_same_v<T, double> ? 2e-3 : 1e-2;
  const bool ok = r[0].info.status == Status::converged && r[1].info.status == Status::converged &&
                  r[1].info.omega_violation <= s.tol && r[1].info.complement_violation <= s.tol &&
                  close(r[0].info.objective, r[1].info.objective, tol);
  std::printf("%-22s %s: cpu %s %d it obj %.6g | cuda %s %d it obj %.6g viol %.1e %.1e\n", v.name,
              sizeof(T) == 4 ? "float32" : "float64", status_name(r[0].info.status), r[0].info.iterations,
              r[0].info.objective, status_name(r[1].info.status), r[1].info.iterations, r[1].info.objective,
              r[1].info.omega_violation, r[1].info.complement_violation);
  if (!ok) {
    std::fprintf(stderr, "  %s (%s): the backends disagree\n", v.name, sizeof(T) == 4 ? "float32" : "float64");
    ++g_failures;
  }
}

// A path and warm starts stay on the device: the same answers as the CPU backend's.
template <class T>
void path_and_warm_starts() {
  const Problem<T> pr = problem<T>(13, 500, 30, 8);
  Settings s;
  s.bias_row = 30;
  s.threads = 1;
  const double y = omega_norm(pr.L);
  const std::vector<std::vector<double>> grid = {{0.02 * y}, {0.05 * y}, {0.1 * y}, {0.2 * y}};
  std::vector<Result<T>> paths[2];
  State<T> states[2];
  const std::string names[2] = {"cpu", gpu_name()};
  for (int b = 0; b < 2; ++b) {
    Solver<T> solver(names[b]);
    CHECK(solver.backend() == names[b]);
    solver.setup(pr.L.X, s);
    solver.update_target(pr.L.Y);
    paths[b] = solver.solve_path(grid);
    states[b] = solver.state();
    // From the saved state, the last problem again: converged at once.
    solver.warm_start(states[b]);
    const Result<T> again = solver.solve();
    CHECK(again.info.status == Status::converged);
    CHECK(again.info.iterations <= s.adapt_every * 2);
  }
  const double tol = std::is_same_v<T, double> ? 2e-3 : 1e-2;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    CHECK(paths[1][i].info.status == Status::converged);
    CHECK_CLOSE(paths[0][i].info.objective, paths[1][i].info.objective, tol, 0);
  }
  // Device sizes follow a new target width: a new M reallocates.
  Solver<T> solver(gpu_name());
  solver.setup(pr.L.X, s);
  solver.update_target(pr.L.Y.leftCols(3));
  solver.update_eps({0.05 * std::sqrt(pr.L.Y.leftCols(3).template cast<double>().squaredNorm())});
  CHECK(solver.solve().info.status == Status::converged);
  solver.update_target(pr.L.Y);
  solver.update_eps({0.05 * y});
  CHECK(solver.solve().info.status == Status::converged);
}

// P < N: the Gram matrix is X X^T and K follows from the Woodbury identity.
template <class T>
void fewer_samples_than_inputs() {
  const Problem<T> pr = problem<T>(17, 60, 120, 4);
  Settings s;
  s.bias_row = 120;
  s.threads = 1;
  Result<T> r[2];
  const std::string names[2] = {"cpu", gpu_name()};
  for (int b = 0; b < 2; ++b) {
    Solver<T> solver(names[b]);
    solver.setup(pr.L.X, s);
    solver.update_target(pr.L.Y);
    solver.update_eps({pr.eps});
    r[b] = solver.solve();
  }
  const double tol = std::is_same_v<T, double> ? 2e-3 : 1e-2;
  CHECK(r[1].info.status == r[0].info.status);
  CHECK_CLOSE(r[0].info.objective, r[1].info.objective, tol, 0);
}

}  // namespace

int main() {
  if (gpu_name() == "cuda") {
    if (!has_cuda()) {
      std::printf("cuda: no CUDA backend in this build, or no CUDA device: skipped\n");
      return 77;
    }
    // The "cuda:tf32" name makes a backend too (TF32 only changes float32's products).
    CHECK(std::string(Solver<float>("cuda:tf32").backend()) == "cuda:tf32");
  }
  std::printf("cuda: testing the '%s' backend against 'cpu'\n", gpu_name().c_str());

  for (bool relu : {true, false})
    for (Penalty pen : {Penalty::l1, Penalty::group}) {
      lockstep<double>(300, 20, 6, pen, relu, false);
      lockstep<float>(300, 20, 6, pen, relu, false);
    }
  lockstep<double>(300, 20, 6, Penalty::l1, true, true);
  lockstep<double>(2500, 40, 300, Penalty::l1, true, false);   // several blocks per column, many columns
  lockstep<double>(40, 80, 5, Penalty::l1, true, false);       // P < N

  const Variant variants[] = {
      {"joint relu l1", Mode::relu, Constraint::joint, Penalty::l1, false, 0},
      {"neuron relu l1", Mode::relu, Constraint::neuron, Penalty::l1, false, 0},
      {"joint linear l1", Mode::linear, Constraint::joint, Penalty::l1, false, 0},
      {"joint relu group", Mode::relu, Constraint::joint, Penalty::group, false, 0},
      {"neuron linear group", Mode::linear, Constraint::neuron, Penalty::group, false, 0},
      {"cascade V, joint relu", Mode::relu, Constraint::joint, Penalty::l1, true, 0},
  };
  for (const Variant& v : variants) {
    solves_agree<double>(v, 400, 25, 6);
    solves_agree<float>(v, 400, 25, 6);
  }
  path_and_warm_starts<double>();
  path_and_warm_starts<float>();
  fewer_samples_than_inputs<double>();
  return report("cuda");
}
