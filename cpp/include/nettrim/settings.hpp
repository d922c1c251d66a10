// Settings of a layer solve: every knob of the ADMM, with its default, in one place.
// The Python layer reads its fields and defaults from here (nettrim._core.Settings.fields(),
// listed by for_each_setting below).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace nettrim {

enum class Mode { relu, linear };           // ReLU after the layer, or nothing (logits)
enum class Constraint { joint, neuron };    // one eps for the layer, or one per output neuron
enum class Penalty { l1, group };           // ||U||_1, or sum of row norms (neuron pruning)
// The inactive outputs (Omega^c, where Y = 0) of a ReLU layer: each kept below its bound V
// (the papers' program), or its ReLU output counted in the error with those of Omega, so
// that the ball bounds the layer's own output error ||ReLU(X U) - Y|| (docs: "Inactive
// outputs").  The re-fit on a support (refit.hpp) takes the same choice.
enum class Inactive { bounded, relu };

// The most threads a solve may be given; more than the machine's processors are not used.
inline constexpr int kMaxThreads = 1024;

struct Settings {
  // --- the program (docs: "The program of one layer") -------------------------------
  Mode mode = Mode::relu;
  Constraint constraint = Constraint::joint;
  Penalty penalty = Penalty::l1;
  Inactive inactive = Inactive::bounded;
  // > 0 selects the regularized form  min ||U||_1 + lam/2 ||(U^T X - Y)_Omega||^2.
  double lam = 0.0;
  // Row of U that multiplies the constant-one feature (the bias), or -1 for none.
  // The polish shifts this row; the group penalty treats it with plain l1.
  int bias_row = -1;

  // --- the ADMM (docs: "The ADMM") --------------------------------------------------
  double rho = 1.0;          // initial penalty of the split Z2 = U (soft threshold 1/rho)
  double sigma = 0.0;        // initial ratio rho2/rho1; 0: 0.09 max diag(X^T X), the authors' c0^2
  bool adaptive_rho = true;  // per-block residual balancing, biased toward the primal
  int adapt_every = 10;      // iterations between rho updates and convergence checks
  double adapt_bias = 10.0;  // rho_j *= clip(adapt_bias * sqrt(r_j / s_j), 0.1, 10)
  double adapt_threshold = 5.0;  // change rho_j only when that factor is outside [1/t, t] (as OSQP)
  double alpha = 1.8;        // over-relaxation, in (0, 2)

  // --- stopping and the returned matrix ----------------------------------------------
  int max_iter = 10000;
  double time_limit = 0.0;   // seconds; 0: none
  double tol = 1e-3;         // primal residuals and feasibility of the returned U (relative)
  double dual_tol = 1e-2;    // dual residuals (relative); used only when gap_tol is 0
  // Optimality certified: with gap_tol > 0 a solve converges when the returned U is feasible
  // to tol and the relative gap to the dual bound is at most gap_tol.  0 (the default): the
  // residual test (primal <= tol, dual <= dual_tol, objective settled), and the gap is
  // reported.  Certifying costs iterations (measured on the digits second layer, float64:
  // 220 without, 480 to a gap of 1e-3), and float32 duals are too noisy for a gap much below
  // 5e-3 (same layer): certify in float64.
  double gap_tol = 0.0;
  // Once the returned U is feasible but the gap is still open, residual balancing uses this
  // bias instead of adapt_bias: the dual iterates, which the bound is built from, converge
  // faster without the primal bias.
  double certify_bias = 1.0;
  bool polish = true;        // bias shift of the returned U (needs bias_row)
  double polish_margin = 1e-3;  // ADMM aims at eps (1 - margin) so the shift stays feasible

  // --- lifecycle and machine ---------------------------------------------------------
  bool warm_start = true;    // a solve continues from the previous solve's iterates
  int threads = 0;           // 0: automatic; at most the machine's processors are used

  // Throws std::invalid_argument naming the offending field.
  void validate() const;
};

// Every field of Settings, in declaration order: f(name, member pointer) for each.  The
// bindings define the Python attributes from this list, and Python reads it back
// (nettrim._core.Settings.fields()); a field added above and not here fails to compile.
template <class F>
constexpr void for_each_setting(F&& f) {
  f("mode", &Settings::mode);
  f("constraint", &Settings::constraint);
  f("penalty", &Settings::penalty);
  f("inactive", &Settings::inactive);
  f("lam", &Settings::lam);
  f("bias_row", &Settings::bias_row);
  f("rho", &Settings::rho);
  f("sigma", &Settings::sigma);
  f("adaptive_rho", &Settings::adaptive_rho);
  f("adapt_every", &Settings::adapt_every);
  f("adapt_bias", &Settings::adapt_bias);
  f("adapt_threshold", &Settings::adapt_threshold);
  f("alpha", &Settings::alpha);
  f("max_iter", &Settings::max_iter);
  f("time_limit", &Settings::time_limit);
  f("tol", &Settings::tol);
  f("dual_tol", &Settings::dual_tol);
  f("gap_tol", &Settings::gap_tol);
  f("certify_bias", &Settings::certify_bias);
  f("polish", &Settings::polish);
  f("polish_margin", &Settings::polish_margin);
  f("warm_start", &Settings::warm_start);
  f("threads", &Settings::threads);
}

namespace detail {
// The number of fields of an aggregate: the most initialisers its braces take.
struct AnyField {
  template <class U>
  operator U() const;   // (unevaluated only)
};
template <class T, class Seq, class = void>
struct BraceInitializable : std::false_type {};
template <class T, std::size_t... I>
struct BraceInitializable<T, std::index_sequence<I...>, std::void_t<decltype(T{(void(I), AnyField{})...})>>
    : std::true_type {};
template <class T, std::size_t N = 0>
constexpr std::size_t field_count() {
  if constexpr (BraceInitializable<T, std::make_index_sequence<N + 1>>::value) return field_count<T, N + 1>();
  else return N;
}
constexpr std::size_t settings_listed() {
  std::size_t n = 0;
  for_each_setting([&n](const char*, auto) { ++n; });
  return n;
}
}  // namespace detail

static_assert(detail::field_count<Settings>() == detail::settings_listed(),
              "for_each_setting must list every field of nettrim::Settings");

}  // namespace nettrim
