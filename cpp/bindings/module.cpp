// pybind11 module nettrim._core: the engine's Solver, Settings, Info, State and Result.
// Arrays arrive already validated and converted by nettrim/solver.py (C order, the
// solve dtype), so they are taken with noconvert: the large X is never copied here,
// and the solver keeps it alive (keep_alive) because the engine holds a view of it.
#include <pybind11/eigen.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "nettrim/nettrim.hpp"

#ifdef NETTRIM_WITH_CUDA
#include "cuda_backend.hpp"
#endif

namespace py = pybind11;
using namespace nettrim;

namespace {

// Hooks run on the solving thread with the GIL released; they take it briefly.  A Python
// exception raised in them (KeyboardInterrupt from a signal, or one from the progress
// callback) stops the work and is re-raised when the call returns.
class PythonHooks {
 public:
  explicit PythonHooks(py::object progress) : progress_(std::move(progress)) {
    hooks_.interrupted = [this]() {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) failed_ = true;  // e.g. KeyboardInterrupt, left set
      return failed_;
    };
    if (!progress_.is_none()) {
      hooks_.progress = [this](const Progress& p) {
        py::gil_scoped_acquire gil;
        if (failed_) return;
        try {
          progress_(p.iteration, p.primal_residual, p.dual_residual, p.elapsed);
        } catch (py::error_already_set& e) {
          e.restore();
          failed_ = true;
        }
      };
    }
  }
  const Hooks& hooks() const { return hooks_; }
  // After the GIL is back: re-raise what a hook caught.
  void rethrow() const {
    if (failed_ && PyErr_Occurred()) throw py::error_already_set();
  }

 private:
  py::object progress_;
  Hooks hooks_;
  bool failed_ = false;
};

// A set-up with the GIL released; an interrupt (Ctrl-C) becomes KeyboardInterrupt, or the
// exception a hook caught.
template <class Work>
void interruptible(py::object progress, Work&& work) {
  PythonHooks h(std::move(progress));
  try {
    py::gil_scoped_release release;
    work(h.hooks());
  } catch (const Interrupted&) {
    h.rethrow();
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}

template <class T>
void bind_solver(py::module_& m, const char* suffix) {
  using S = Solver<T>;
  const std::string tag = suffix;

  py::class_<State<T>>(m, ("State" + tag).c_str(), "ADMM state to warm start from (U, L1, L2, rho1, rho2).")
      .def(py::init<>())
      .def_readwrite("U", &State<T>::U)
      .def_readwrite("L1", &State<T>::L1)
      .def_readwrite("L2", &State<T>::L2)
      .def_readwrite("rho1", &State<T>::rho1)
      .def_readwrite("rho2", &State<T>::rho2);

  py::class_<Result<T>>(m, ("Result" + tag).c_str(), "A solve's matrix U (N x M) and its Info.")
      .def_readonly("U", &Result<T>::U)
      .def_readonly("info", &Result<T>::info);

  py::class_<S>(m, ("Solver" + tag).c_str(), "The layer solver (see nettrim.LayerSolver).")
      .def(py::init<const std::string&>(), py::arg("backend") = "cpu")
      .def(
          "setup",
          [](S& s, ConstRowRef<T> X, const Settings& settings, py::object progress) {
            interruptible(progress, [&](const Hooks& hooks) { s.setup(X, settings, hooks); });
          },
          py::arg("X").noconvert(), py::arg("settings"), py::arg("progress") = py::none(),
          py::keep_alive<1, 2>())
      .def(
          "setup_statistics",
          [](S& s, const SampleStatistics& stats, const Settings& settings, py::object progress) {
            interruptible(progress, [&](const Hooks& hooks) { s.setup(stats, settings, hooks); });
          },
          py::arg("stats"), py::arg("settings"), py::arg("progress") = py::none())
      .def("update_settings", &S::update_settings, py::arg("settings"))
      .def("update_target", &S::update_target, py::arg("Y").noconvert())
      .def("update_bound", &S::update_bound, py::arg("V").noconvert())
      .def("clear_bound", &S::clear_bound)
      .def("update_eps", &S::update_eps, py::arg("eps"))
      .def("warm_start", py::overload_cast<const State<T>&>(&S::warm_start), py::arg("state"))
      .def("warm_start_primal", py::overload_cast<const Matrix<T>&>(&S::warm_start), py::arg("U0"))
      .def("cold_start", &S::cold_start)
      .def(
          "solve",
          [](S& s, py::object progress) {
            PythonHooks h(progress);
            Result<T> r;
            {
              py::gil_scoped_release release;
              r = s.solve(h.hooks());
            }
            h.rethrow();
            return r;
          },
          py::arg("progress") = py::none())
      .def(
          "solve_path",
          [](S& s, const std::vector<std::vector<double>>& eps, py::object progress) {
            PythonHooks h(progress);
            std::vector<Result<T>> path;
            {
              py::gil_scoped_release release;
              path = s.solve_path(eps, h.hooks());
            }
            h.rethrow();
            return path;
          },
          py::arg("eps"), py::arg("progress") = py::none())
      .def("state", &S::state)
      .def_property_readonly("settings", &S::settings)
      .def_property_readonly("samples", &S::samples)
      .def_property_readonly("rows", &S::rows)
      .def_property_readonly("compressed", &S::compressed)
      .def("floor", &S::floor)
      .def_property_readonly("inputs", &S::inputs)
      .def_property_readonly("outputs", &S::outputs)
      .def_property_readonly("backend", &S::backend)
      .def("workspace_bytes", &S::workspace_bytes, py::arg("P"), py::arg("N"), py::arg("M"),
           py::arg("has_bound"));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "Net-Trim layer ADMM engine (C++/Eigen)";
  py::register_exception<MemoryError>(m, "EngineMemoryError", PyExc_MemoryError);
  // Bad data or settings: nettrim.InvalidArgument (a ValueError and a NettrimError), the same
  // class the Python layer raises, so that callers and the CLI see one kind of error.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      static PyObject* invalid = py::object(py::module_::import("nettrim.errors").attr("InvalidArgument")).release().ptr();
      PyErr_SetString(invalid, e.what());
    }
  });

  py::enum_<Mode>(m, "Mode").value("relu", Mode::relu).value("linear", Mode::linear);
  py::enum_<Constraint>(m, "Constraint").value("joint", Constraint::joint).value("neuron", Constraint::neuron);
  py::enum_<Inactive>(m, "Inactive").value("bounded", Inactive::bounded).value("relu", Inactive::relu);
  py::enum_<Penalty>(m, "Penalty").value("l1", Penalty::l1).value("group", Penalty::group);

  // The attributes from the engine's own list of fields (nettrim/settings.hpp).
  py::class_<Settings> settings(m, "Settings", "Every setting of a layer solve, with the engine's defaults.");
  settings.def(py::init<>());
  for_each_setting([&settings](const char* name, auto member) { settings.def_readwrite(name, member); });
  settings.def("validate", &Settings::validate);
  settings.def_static(
      "fields",
      []() {
        const Settings defaults;
        py::dict fields;
        for_each_setting([&](const char* name, auto member) { fields[name] = py::cast(defaults.*member); });
        return fields;
      },
      "Every field of the engine's Settings, in its order: {name: default}.");

  py::class_<Info>(m, "Info", "How a solve went (see nettrim/result.hpp).")
      .def_property_readonly("status", [](const Info& i) { return status_name(i.status); })
      .def_readonly("iterations", &Info::iterations)
      .def_readonly("primal_residual", &Info::primal_residual)
      .def_readonly("dual_residual", &Info::dual_residual)
      .def_readonly("objective", &Info::objective)
      .def_readonly("dual_bound", &Info::dual_bound)
      .def_readonly("gap", &Info::gap)
      .def_readonly("omega_violation", &Info::omega_violation)
      .def_readonly("complement_violation", &Info::complement_violation)
      .def_readonly("error_resolved", &Info::error_resolved)
      .def_readonly("rho1", &Info::rho1)
      .def_readonly("rho2", &Info::rho2)
      .def_readonly("rho_updates", &Info::rho_updates)
      .def_readonly("factor_updates", &Info::factor_updates)
      .def_readonly("threads", &Info::threads)
      .def_readonly("setup_seconds", &Info::setup_seconds)
      .def_readonly("solve_seconds", &Info::solve_seconds)
      .def_readonly("polish_seconds", &Info::polish_seconds);

  py::class_<SampleStatistics>(m, "SampleStatistics",
                               "X^T X, X^T Y and ||Y||^2 summed over batches in float64 (nettrim/statistics.hpp).")
      .def(py::init<long, long, bool>(), py::arg("inputs"), py::arg("outputs"), py::arg("ones_column") = false)
      .def(
          "add",
          [](SampleStatistics& s, py::array X, py::array Y) {
            // float32 or float64 pairs, C order (nettrim.SampleStatistics converts them).
            if (py::isinstance<py::array_t<float>>(X) && py::isinstance<py::array_t<float>>(Y)) {
              auto x = X.cast<Eigen::Ref<const RowMatrix<float>>>();
              auto y = Y.cast<Eigen::Ref<const RowMatrix<float>>>();
              py::gil_scoped_release release;
              s.add<float>(x, y);
            } else {
              auto x = X.cast<Eigen::Ref<const RowMatrix<double>>>();
              auto y = Y.cast<Eigen::Ref<const RowMatrix<double>>>();
              py::gil_scoped_release release;
              s.add<double>(x, y);
            }
          },
          py::arg("X"), py::arg("Y"))
      .def_property_readonly("samples", &SampleStatistics::samples)
      .def_property_readonly("inputs", &SampleStatistics::inputs)
      .def_property_readonly("outputs", &SampleStatistics::outputs)
      .def_property_readonly("ones_column", &SampleStatistics::ones_column)
      .def_property_readonly("gram", &SampleStatistics::gram)
      .def_property_readonly("cross", &SampleStatistics::cross)
      .def_property_readonly("target_norm2", &SampleStatistics::target_norm2);

  bind_solver<float>(m, "Float32");
  bind_solver<double>(m, "Float64");

  m.def(
      "refit_support",
      [](const ConstRowRef<double>& X, const ConstRowRef<double>& Y, const Eigen::Ref<const RowMatrix<double>>& support,
         const ConstRowRef<double>& start_weights, const Eigen::Ref<const Eigen::VectorXd>& start_bias,
         const ConstRowRef<double>& V, bool fit_bias, int max_iter, double ridge, int threads,
         const std::string& inactive) {
        RefitSettings settings;
        if (inactive == "relu")
          settings.inactive = Inactive::relu;
        else if (inactive != "bounded")
          throw std::invalid_argument("inactive: expected 'bounded' or 'relu', got '" + inactive + "'");
        settings.max_iter = max_iter;
        settings.ridge = ridge;
        settings.threads = threads;
        RefitResult r;
        {
          py::gil_scoped_release release;
          r = refit_support(X, Y, support, start_weights, start_bias, V, fit_bias, settings);
        }
        return py::make_tuple(std::move(r.weights), std::move(r.bias), std::move(r.iterations), r.unconverged);
      },
      py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("support").noconvert(),
      py::arg("start_weights").noconvert(), py::arg("start_bias").noconvert(), py::arg("V").noconvert(),
      py::arg("fit_bias"), py::arg("max_iter") = 0, py::arg("ridge") = 1e-9, py::arg("threads") = 0,
      py::arg("inactive") = "bounded",
      "Exact least squares on a fixed support from a start meeting the inactive rows' bounds "
      "(inactive='bounded'), or with the inactive rows' ReLU outputs in the error (inactive='relu') "
      "(float64, C order): (weights, bias, iterations per neuron, neurons unconverged).");

  m.def("available_backends", &available_backends, "Names of the backends this build and machine have.");
  m.def(
      "backend_capabilities",
      [](const std::string& name) {
        const BackendCapabilities c = backend_capabilities(name);
        py::list inactive, dtypes;
        if (c.inactive_bounded) inactive.append("bounded");
        if (c.inactive_relu) inactive.append("relu");
        if (c.float32) dtypes.append("float32");
        if (c.float64) dtypes.append("float64");
        py::dict d;
        d["name"] = c.name;
        d["built"] = c.built;
        d["available"] = c.available;
        d["gpu"] = c.gpu;
        d["inactive"] = inactive;
        d["dtypes"] = dtypes;
        return d;
      },
      py::arg("name"),
      "What the backend `name` ('cpu', 'cuda', 'cuda:tf32') can do, from the backend itself: {name, built, "
      "available (this build and machine have it), gpu, inactive (the programs it solves), dtypes}.");
  m.def(
      "workspace_bytes",
      [](long P, long N, long M, bool has_bound, const std::string& dtype, const std::string& backend) {
        if (dtype != "float32" && dtype != "float64")
          throw std::invalid_argument("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
        return backend_workspace_bytes(backend, dtype == "float64", P, N, M, has_bound);
      },
      py::arg("P"), py::arg("N"), py::arg("M"), py::arg("has_bound"), py::arg("dtype") = "float32",
      py::arg("backend") = "cpu",
      "Bytes of host memory the backend's solver allocates for a layer of P samples, N inputs (the bias "
      "included) and M outputs, beyond X: the backend's own figure, without setting up a solver.");
  m.def("available_memory", &available_memory,
        "Bytes of memory available now (Linux MemAvailable), 0 when unknown.");
#ifdef NETTRIM_WITH_CUDA
  m.attr("cuda") = true;   // compiled in; whether a device is present: available_backends()
  m.def("cuda_device_count", &cuda::device_count, "CUDA devices visible (0 without a GPU or driver).");
  m.def("cuda_device_name", &cuda::device_name, "The current CUDA device's name and compute capability.");
  m.def(
      "cuda_gemm_seconds",
      [](long P, long N, long M, bool float64, bool tf32, int repeats) {
        py::gil_scoped_release release;
        return cuda::gemm_seconds(P, N, M, float64, tf32, repeats);
      },
      py::arg("P"), py::arg("N"), py::arg("M"), py::arg("float64") = false, py::arg("tf32") = false,
      py::arg("repeats") = 5,
      "Median seconds of an iteration's two P x N x M products (X U and X^T B) with cuBLAS on random data.");
#else
  m.attr("cuda") = false;
#endif
  m.attr("max_threads") = kMaxThreads;
  m.attr("version") = NETTRIM_VERSION;
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
}
