// pybind11 module nettrim._core: the engine's one entry point per dtype.
// Arrays arrive already validated and converted by nettrim/layer.py (C order, the
// solve dtype), so they are taken with noconvert: the large X is never copied here.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "nettrim/solver.hpp"

namespace py = pybind11;
using namespace nettrim;

namespace {

template <class T>
py::tuple solve(ConstRowRef<T> X, ConstRowRef<T> Y, std::optional<ConstRowRef<T>> V,
                std::vector<double> eps, std::optional<Matrix<T>> U0, py::object state,
                const Settings& settings, py::object progress) {
  Problem<T> problem(X, Y);
  if (V) problem.V.emplace(*V);
  problem.eps = std::move(eps);
  if (U0) problem.U0 = &*U0;
  State<T> warm;
  if (!state.is_none()) {
    warm.U = state.attr("U").cast<Matrix<T>>();
    warm.L1 = state.attr("L1").cast<Matrix<T>>();
    warm.L2 = state.attr("L2").cast<Matrix<T>>();
    warm.rho1 = state.attr("rho1").cast<double>();
    warm.rho2 = state.attr("rho2").cast<double>();
    problem.state = &warm;
  }

  // Hooks run on the solving thread with the GIL released; they take it briefly.
  bool python_error = false;
  Hooks hooks;
  hooks.interrupted = [&python_error]() {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) python_error = true;  // e.g. KeyboardInterrupt, left set
    return python_error;
  };
  if (!progress.is_none()) {
    hooks.progress = [&](const Progress& p) {
      py::gil_scoped_acquire gil;
      if (python_error) return;
      try {
        progress(p.iteration, p.primal_residual, p.dual_residual, p.elapsed);
      } catch (py::error_already_set& e) {
        e.restore();
        python_error = true;
      }
    };
  }

  Result<T> result;
  {
    py::gil_scoped_release release;
    result = solve_layer(problem, settings, hooks);
  }
  if (python_error && PyErr_Occurred()) throw py::error_already_set();

  py::dict st;
  st["U"] = std::move(result.state.U);
  st["L1"] = std::move(result.state.L1);
  st["L2"] = std::move(result.state.L2);
  st["rho1"] = result.state.rho1;
  st["rho2"] = result.state.rho2;
  return py::make_tuple(std::move(result.U), result.info, st);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "Net-Trim layer ADMM engine (C++/Eigen)";
  py::register_exception<MemoryError>(m, "EngineMemoryError", PyExc_MemoryError);

  py::enum_<Mode>(m, "Mode").value("relu", Mode::relu).value("linear", Mode::linear);
  py::enum_<Constraint>(m, "Constraint").value("joint", Constraint::joint).value("neuron", Constraint::neuron);
  py::enum_<Penalty>(m, "Penalty").value("l1", Penalty::l1).value("group", Penalty::group);

  py::class_<Settings>(m, "Settings")
      .def(py::init<>())
      .def_readwrite("mode", &Settings::mode)
      .def_readwrite("constraint", &Settings::constraint)
      .def_readwrite("penalty", &Settings::penalty)
      .def_readwrite("lam", &Settings::lam)
      .def_readwrite("bias_row", &Settings::bias_row)
      .def_readwrite("rho", &Settings::rho)
      .def_readwrite("sigma", &Settings::sigma)
      .def_readwrite("adaptive_rho", &Settings::adaptive_rho)
      .def_readwrite("adapt_every", &Settings::adapt_every)
      .def_readwrite("adapt_bias", &Settings::adapt_bias)
      .def_readwrite("adapt_threshold", &Settings::adapt_threshold)
      .def_readwrite("alpha", &Settings::alpha)
      .def_readwrite("max_iter", &Settings::max_iter)
      .def_readwrite("time_limit", &Settings::time_limit)
      .def_readwrite("tol", &Settings::tol)
      .def_readwrite("dual_tol", &Settings::dual_tol)
      .def_readwrite("polish", &Settings::polish)
      .def_readwrite("polish_margin", &Settings::polish_margin)
      .def_readwrite("threads", &Settings::threads)
      .def("validate", &Settings::validate);

  py::class_<Info>(m, "Info")
      .def_property_readonly("status", [](const Info& i) { return status_name(i.status); })
      .def_readonly("iterations", &Info::iterations)
      .def_readonly("primal_residual", &Info::primal_residual)
      .def_readonly("dual_residual", &Info::dual_residual)
      .def_readonly("objective", &Info::objective)
      .def_readonly("omega_violation", &Info::omega_violation)
      .def_readonly("complement_violation", &Info::complement_violation)
      .def_readonly("rho1", &Info::rho1)
      .def_readonly("rho2", &Info::rho2)
      .def_readonly("rho_updates", &Info::rho_updates)
      .def_readonly("factor_updates", &Info::factor_updates)
      .def_readonly("threads", &Info::threads)
      .def_readonly("setup_time", &Info::setup_time)
      .def_readonly("solve_time", &Info::solve_time)
      .def_readonly("polish_time", &Info::polish_time);

  m.def("solve_float32", &solve<float>, py::arg("X").noconvert(), py::arg("Y").noconvert(),
        py::arg("V").noconvert(), py::arg("eps"), py::arg("U0"), py::arg("state"), py::arg("settings"),
        py::arg("progress"), "Solve one layer in float32 (see nettrim.prune_layer).");
  m.def("solve_float64", &solve<double>, py::arg("X").noconvert(), py::arg("Y").noconvert(),
        py::arg("V").noconvert(), py::arg("eps"), py::arg("U0"), py::arg("state"), py::arg("settings"),
        py::arg("progress"), "Solve one layer in float64 (see nettrim.prune_layer).");
  m.def("workspace_bytes", &workspace_bytes, py::arg("N"), py::arg("P"), py::arg("M"), py::arg("has_V"),
        py::arg("scalar_size"), "Bytes of working memory a layer solve allocates.");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
