"""The layer solver with a lifecycle: factorise once, then solve for many eps, targets, bounds.

:class:`LayerSolver` is the Python face of the C++ ``nettrim::Solver`` (nettrim/solver.hpp).
Its settings and their defaults are the engine's own (``nettrim._core.Settings``); this
module converts and checks the inputs once and re-checks every returned matrix in float64.

    solver = nettrim.LayerSolver(X, W=W, b=b)          # factorises X^T X once
    res = solver.solve(eps_rel=0.05)                   # a LayerResult
    res = solver.solve(eps_rel=0.08)                   # warm started, no refactorisation
    path = solver.solve_path(eps_rel=np.geomspace(0.02, 0.3, 8))
"""
from __future__ import annotations

import functools
import numbers
import threading
import time
import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from . import _core, standard_forms
from ._threads import blas_threads
from ._validate import (
    as_float_matrix,
    check_choice,
    check_finite,
    check_nonnegative,
    default_threads,
    resolve_dtype,
)
from .errors import ConvergenceWarning, InvalidArgument, InvalidArgumentType, NumericalError, NumericalWarning

FORMS = ("auto", "rows", "compressed")
"""How a solver holds the samples: their rows, or ``X^T X`` and ``X^T Y`` (the linear program
only; see :class:`SampleStatistics`); "auto" compresses where that measures faster."""

COMPRESS_RATIO = 2.0
"""'auto' compresses a linear-program layer with at least this many samples per input (P >=
ratio * N).  Compressing costs X^T Y and a second eigendecomposition once, and saves (P - N) / P
of every iteration.  Measured (random sparse teachers, eps_rel 0.1, one thread, 40-60
iterations, setup included; compressed against rows): N = 200, M = 100: 1.3x slower at P = N,
1.1x faster at 2N, 1.7x at 4N, 3.1x at 10N; N = 500: M = 10 1.7x slower at N, 1.1x slower at 2N,
1.2x faster at 4N; M = 300 1.3x slower at N, 1.3x faster at 2N, 2.3x at 4N.  Real layers take
hundreds of iterations, which moves the crossover lower still."""
from .result import LayerResult, SolutionPath
from .statistics import SampleStatistics

DEFAULTS = _core.Settings()
"""The engine's defaults: the single source of every default below."""

FIELDS = _core.Settings.fields()
"""Every field of the engine's settings, ``{name: default}`` in the engine's order: the single
source of the names below (nettrim/settings.hpp, for_each_setting)."""

# Settings a caller may pass by keyword: every field but bias_row (it follows from fit_bias)
# and warm_start (the lifecycle's, see LayerSolver.warm_start), each checked by its default's
# type: an enum's names, an integer (in a range where one is known), a bool, a number.
_LIFECYCLE = ("bias_row", "warm_start")
_OPTIONAL_REALS = ("lam", "sigma", "time_limit")   # None: the engine's 0 (off / automatic / none)
_INT_RANGES = {"adapt_every": (1, 2**31 - 1), "max_iter": (0, 2**31 - 1), "threads": (0, _core.max_threads)}
_OPTIONS = {name: default for name, default in FIELDS.items() if name not in _LIFECYCLE}
_CHOICES = {name: tuple(type(d).__members__) for name, d in _OPTIONS.items() if hasattr(type(d), "__members__")}
_INTS = {name: _INT_RANGES.get(name, (-2**31, 2**31 - 1)) for name, d in _OPTIONS.items()
         if isinstance(d, int) and not isinstance(d, bool) and name not in _CHOICES}
_BOOLS = tuple(name for name, d in _OPTIONS.items() if isinstance(d, bool))
_REALS = tuple(name for name, d in _OPTIONS.items() if isinstance(d, float) and name not in _OPTIONAL_REALS)
SETTINGS = tuple(_OPTIONS)
"""The settings a caller may pass by keyword, in the engine's order."""


def backends():
    """Names of the engine backends this build and machine have, e.g. ``['cpu']``, or
    ``['cpu', 'cuda']`` for a build with the CUDA backend (NETTRIM_CUDA=ON) where a GPU
    is visible."""
    return list(_core.available_backends())


def make_settings(base=None, **options):
    """An engine ``Settings``: ``base`` (or the defaults) with ``options`` applied and checked.

    Every error names the option and what was expected."""
    s = _core.Settings()
    if base is not None:
        for name in FIELDS:
            setattr(s, name, getattr(base, name))
    for name, value in options.items():
        if name in _CHOICES:
            setattr(s, name, getattr(type(FIELDS[name]), check_choice(name, value, _CHOICES[name])))
        elif name in _INTS:
            lo, hi = _INTS[name]
            setattr(s, name, _check_int(name, value, lo, hi))
        elif name in _BOOLS:
            if not isinstance(value, (bool, np.bool_)):
                raise InvalidArgumentType(f"{name}: expected True or False, got {value!r}")
            setattr(s, name, bool(value))
        elif name in _REALS:
            setattr(s, name, _check_real(name, value))
        elif name in _OPTIONAL_REALS:
            number = 0.0 if value is None else _check_real(name, value)
            if value is not None and not (np.isfinite(number) and number > 0):
                raise InvalidArgument(f"{name}: expected a finite number > 0 (or None), got {value!r}")
            setattr(s, name, number)
        else:
            raise InvalidArgumentType(f"unexpected keyword argument {name!r} (settings are: {', '.join(SETTINGS)})")
    if s.threads == 0:
        s.threads = default_threads()
    s.validate()     # ranges; the engine's messages name the field
    return s


def _check_int(name, value, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name}: expected an integer in [{lo}, {hi}], got {value}")
    return value


def _check_real(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArgumentType(f"{name}: expected a number, got {value!r}")
    return float(value)


def _exclusive(method):
    """One call at a time on a solver: a call while another is under way (from another thread,
    or from the solver's own progress callback) is a RuntimeError at once, never a second use of
    the engine's buffers."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"LayerSolver: in use by another call ({method.__name__} called from another thread, "
                               "or from this solver's own progress callback); one call at a time")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()
    return call


class LayerSolver:
    """The Net-Trim program of one layer, factorised once, solved for many eps.

    Parameters
    ----------
    X : array (P, n_in)
        Layer inputs on the calibration data, samples by features.  Converted once to a
        C-ordered array of ``dtype`` with a column of ones appended when ``fit_bias``;
        any float dtype or memory order is accepted, read-only and memory-mapped arrays
        included.  The solver keeps the converted array.
    Y : array (P, M), optional
        Target outputs (ReLU outputs in ``mode="relu"``); computed from ``W`` and ``b``
        when omitted.
    W, b : arrays (n_in, M) and (M,), optional
        The trained weights and bias (``W`` oriented like scikit-learn's ``coefs_``).
    V : array (P, M), optional
        Upper bound on pre-activations where ``Y == 0`` (the cascade scheme); default 0.
        Only with ``inactive="bounded"``.
    fit_bias : bool
        Whether the pruned layer has a bias (the last row of ``U``).
    dtype : {"float32", "float64"}
        Precision of the solve; float32 is the fast path.  Returned matrices are
        re-checked in float64 either way.
    backend : str
        Engine backend (see :func:`nettrim.backends`): "cpu", or "cuda" in a build with the
        CUDA backend on a machine with a GPU; "cuda:tf32" is the CUDA backend with its
        float32 products on TF32 tensor cores (faster, about 1e-3 relative rounding).
        A backend the build or the machine lacks raises ``InvalidArgument``.
    progress : callable(iteration, primal_residual, dual_residual, elapsed), optional
        Called at every convergence check of every solve.
    form : {"auto", "rows", "compressed"}
        How the samples are held.  "rows" (the default) keeps X: every iteration costs
        P x N x M, and every call of the lifecycle works.  "compressed" keeps only ``X^T X``,
        ``X^T Y`` and ``||Y||^2`` and solves the same program on at most N rows, so that an
        iteration costs N x N x M whatever P is; the linear program only (``mode="linear"``,
        no ``V``), and the target stays the one given (no ``update_target``, no change of
        mode).  "auto": compressed for the linear program when ``P >= COMPRESS_RATIO * N``
        (what :func:`~nettrim.prune_layer` and the network schemes use).  ``solver.form``
        says which.  See also :meth:`from_batches` for calibration sets larger than memory.
    **settings
        The engine's settings (see :func:`nettrim.prune_layer` for each):
        mode, constraint, inactive, penalty, lam, rho, sigma, adaptive_rho, adapt_every, adapt_bias,
        adapt_threshold, alpha, max_iter, time_limit, tol, dual_tol, gap_tol, certify_bias, polish,
        polish_margin, threads.
    """

    def __init__(self, X, Y=None, W=None, b=None, *, V=None, fit_bias: bool = True, dtype="float32",
                 backend: str = "cpu", progress: Optional[Callable] = None, form: str = "rows", **settings):
        t0 = time.perf_counter()
        self._begin(fit_bias, dtype, backend, progress, settings)
        Xa = as_float_matrix("X", X, finite=False)   # values are checked after the memory estimate
        P, n_in = Xa.shape
        Wa, ba = _weights(W, b, n_in)
        if Y is not None:
            M = np.shape(Y)[1] if np.ndim(Y) == 2 else None
        elif Wa is not None:
            M = Wa.shape[1]
        else:
            raise InvalidArgument("Y: expected the target outputs, or W (and b) to compute them; got neither")
        self.n_in, self.N = n_in, n_in + (1 if self.fit_bias else 0)
        self._settings.bias_row = n_in if self.fit_bias else -1
        self.W, self.b = Wa, ba
        self.form = self._choose_form(form, P, V)
        if self.form == "compressed":
            self._setup_compressed(_statistics_of(Xa, Y, Wa, ba, self.fit_bias, M))
            self.setup_seconds = time.perf_counter() - t0
            return
        self._check_memory(P, M, V is not None)
        check_finite("X", Xa)
        self._check_range("X", Xa)
        # One conversion of X: C order, the solve dtype, the bias column appended.
        if self.fit_bias:
            Xs = np.empty((P, self.N), dtype=self.dtype)
            Xs[:, :n_in] = Xa
            Xs[:, n_in] = 1
        else:
            Xs = np.ascontiguousarray(Xa, dtype=self.dtype)
        self.Xs = Xs
        self.statistics = None
        self._engine.setup(Xs, self._settings, self.progress)
        self.setup_seconds = time.perf_counter() - t0
        self._start = None
        self.update_target(Y, W=Wa, b=ba)
        if V is not None:
            self.update_bound(V)

    @classmethod
    def from_batches(cls, batches, *, W=None, b=None, fit_bias: bool = True, dtype="float32", backend: str = "cpu",
                     progress: Optional[Callable] = None, **settings) -> "LayerSolver":
        """The linear program of a layer from an iterable of ``(X, Y)`` batches, read once and
        summed (:class:`SampleStatistics`): a calibration set of any size, never in memory at
        once.  ``mode`` is "linear" (the only program the sums hold); ``W``, ``b`` (optional)
        are the trained weights, for ``warm_start("W")``."""
        return cls.from_statistics(SampleStatistics.from_batches(batches, fit_bias=fit_bias), W=W, b=b, dtype=dtype,
                                   backend=backend, progress=progress, **settings)

    @classmethod
    def from_statistics(cls, statistics: SampleStatistics, *, W=None, b=None, dtype="float32", backend: str = "cpu",
                        progress: Optional[Callable] = None, **settings) -> "LayerSolver":
        """The linear program of a layer from its :class:`SampleStatistics` (see :meth:`from_batches`)."""
        if not isinstance(statistics, SampleStatistics):
            raise InvalidArgumentType(f"statistics: expected a nettrim.SampleStatistics, got {type(statistics).__name__}")
        t0 = time.perf_counter()
        self = cls.__new__(cls)
        settings.setdefault("mode", "linear")
        self._begin(statistics.fit_bias, dtype, backend, progress, settings)
        self.N = statistics.inputs
        self.n_in = self.N - (1 if self.fit_bias else 0)
        self._settings.bias_row = self.n_in if self.fit_bias else -1
        self.W, self.b = _weights(W, b, self.n_in)
        if self.W is not None and self.W.shape[1] != statistics.outputs:
            raise InvalidArgument(f"W: expected {statistics.outputs} columns (the statistics' outputs), "
                                  f"got {self.W.shape[1]}")
        self.form = "compressed"
        self._setup_compressed(statistics)
        self.setup_seconds = time.perf_counter() - t0
        return self

    def _begin(self, fit_bias, dtype, backend, progress, settings):
        """What every constructor sets first: the lock, dtype, progress, fit_bias, settings, engine."""
        self._busy = threading.Lock()
        self.dtype = np.dtype(resolve_dtype(dtype))
        self.progress = _check_progress(progress)
        if not isinstance(fit_bias, (bool, np.bool_)):
            raise InvalidArgumentType(f"fit_bias: expected True or False, got {fit_bias!r}")
        self.fit_bias = bool(fit_bias)
        self._settings = make_settings(**settings)
        if not isinstance(backend, str):
            raise InvalidArgumentType(f"backend: expected a name such as 'cpu', got {backend!r}")
        self._engine = (_core.SolverFloat32 if self.dtype == np.float32 else _core.SolverFloat64)(backend)
        self._start = None

    def _choose_form(self, form, P, V):
        form = check_choice("form", form, FORMS)
        linear = self._settings.mode.name == "linear" and V is None
        if form == "compressed" and not linear:
            raise InvalidArgument("form: 'compressed' holds the linear program only (mode='linear', no V); a ReLU "
                                  "layer's program needs the rows, to tell its active outputs")
        if form == "auto":
            return "compressed" if linear and P >= COMPRESS_RATIO * self.N else "rows"
        return form

    def _setup_compressed(self, statistics):
        """Set the engine up from the sums (the target is in them): no X, Y or V is kept."""
        if self._settings.mode.name != "linear":
            raise InvalidArgument("mode: sample statistics hold the linear program only; expected mode='linear'")
        self._check_memory(self.N, statistics.outputs, False, statistics=True)
        self.statistics = statistics
        self.Xs = self.Ys = self.V = None
        self.M = statistics.outputs
        self._target_weights = None
        self._engine.setup_statistics(statistics._sums, self._settings, self.progress)
        norms = np.sqrt(statistics.target_norm2)
        self._omega_norm = norms
        self._omega_norm_total = float(np.linalg.norm(norms))
        self._y_norm = self._omega_norm_total

    # --- the problem ----------------------------------------------------------------------
    @property
    def settings(self):
        """The engine settings in force (a copy)."""
        return make_settings(self._settings)

    @property
    def shape(self):
        """(P, N, M): samples, inputs (with the bias row), outputs."""
        return (self._engine.samples, self.N, self.M)

    @property
    def floor(self):
        """The least-squares floor of ``||X U - Y||``, per output (M,): the error of the dense
        least-squares U, which no eps can go below.  Known for a compressed solver (zeros
        otherwise: the rows form does not compute it)."""
        return np.array(self._engine.floor())

    @property
    def mode(self):
        return self._settings.mode.name

    @_exclusive
    def update_settings(self, **settings):
        """Change settings (tolerances, penalties, mode, ...) without refactorising.

        Everything that depends on a setting is derived again: a new ``mode`` re-derives the
        target (from the weights it was given by, else the outputs given, which ``mode="relu"``
        needs nonnegative) and its active set, and the next solve starts cold.  A setting that
        cannot hold with the solver's bound V (``mode="linear"``, ``inactive="relu"``) is
        refused: call ``update_bound(None)`` first."""
        if "progress" in settings:
            raise InvalidArgumentType("progress: pass it to solve() or the constructor")
        new = make_settings(self._settings, **settings)
        if self.form == "compressed" and new.mode.name != "linear":
            raise InvalidArgument("mode: this solver holds its samples compressed, which keeps the linear program "
                                  "only; make one with form='rows' for mode='relu'")
        if self.V is not None and new.inactive.name != "bounded":
            raise InvalidArgument("inactive: 'relu' counts the inactive outputs in the error, but this solver has "
                                  "a bound V on them; call update_bound(None) first")
        if self.V is not None and new.mode.name != "relu":
            raise InvalidArgument("mode: 'linear' has no inactive outputs to bound, but this solver has a bound V; "
                                  "call update_bound(None) first")
        if new.mode != self._settings.mode:
            Y = self._target_for(new.mode.name)
            self._engine.update_settings(new)
            self._settings = new
            self._set_target(Y)      # (the engine derives the active set again, and starts cold)
            return
        self._engine.update_settings(new)
        self._settings = new

    @_exclusive
    def update_target(self, Y=None, *, W=None, b=None):
        """New outputs to keep (or the response of new weights ``W``, ``b``); starts cold, and
        without a bound (a bound V belongs to the target it was given for)."""
        if self.form == "compressed":
            raise InvalidArgument("update_target: this solver holds its samples compressed, target included; make "
                                  "a new one (LayerSolver.from_batches, or form='rows' to keep the rows)")
        P = self.Xs.shape[0]
        if Y is None:
            if W is None:
                raise InvalidArgument("Y: expected the target outputs, or W (and b) to compute them; got neither")
            weights = _weights(W, b, self.n_in)
            Ya = self._response(weights, self.mode)
        else:
            if b is not None and W is None:
                raise InvalidArgument("b: the bias goes with W, to compute the target from them; with Y given it "
                                      "would not be used")
            Ya = as_float_matrix("Y", Y, rows=P, finite=False)
            if W is not None and np.shape(W)[-1] != Ya.shape[1]:
                raise InvalidArgument(f"Y: expected {np.shape(W)[-1]} columns (W has {np.shape(W)[-1]} outputs), "
                                 f"got {Ya.shape[1]}")
            weights = None
        self._set_target(Ya)
        self._target_weights = weights      # (what a change of mode derives the target from)

    def _response(self, weights, mode):
        """The outputs of ``weights`` = (W, b) on this solver's inputs, under ``mode``."""
        Wa, ba = weights
        Z = self.Xs[:, :self.n_in] @ Wa.astype(self.dtype, copy=False) + (0 if ba is None else ba)
        return np.maximum(Z, 0) if mode == "relu" else Z

    def _target_for(self, mode):
        """The target under ``mode``: the response of the weights the target was given by, or
        the outputs given (checked: ``mode="relu"`` needs them nonnegative)."""
        if self._target_weights is not None:
            return self._response(self._target_weights, mode)
        if mode == "relu" and (self.Ys < 0).any():
            raise InvalidArgument("mode: 'relu' needs ReLU outputs (>= 0), but the target given has negative values; "
                                  "give the target again with update_target")
        return self.Ys

    def _set_target(self, Ya):
        check_finite("Y", Ya)
        self._check_range("Y", Ya)
        if self.mode == "relu" and (Ya < 0).any():
            raise InvalidArgument("Y: expected ReLU outputs (>= 0) in mode='relu', got negative values; "
                             "use mode='linear' for a layer without ReLU")
        self.Ys = np.ascontiguousarray(Ya, dtype=self.dtype)
        self.M = self.Ys.shape[1]
        self._engine.update_target(self.Ys)        # (the engine drops any bound, and starts cold)
        self.V = None
        self._summarize_target()
        self._start = None

    @_exclusive
    def update_bound(self, V):
        """Upper bound on pre-activations where ``Y == 0`` (cascade), or None for 0."""
        if self.form == "compressed":
            raise InvalidArgument("V: an upper bound on inactive outputs needs mode='relu'; this solver holds the "
                                  "linear program (mode='linear'), compressed")
        if V is None:
            self._engine.clear_bound()
            self.V = None
            return
        if self.mode != "relu":
            raise InvalidArgument("V: an upper bound on inactive outputs needs mode='relu'")
        if self._settings.inactive.name != "bounded":
            raise InvalidArgument("V: an upper bound on inactive outputs needs inactive='bounded'; with "
                                  "inactive='relu' their ReLU outputs are counted in the error instead")
        Va = as_float_matrix("V", V, rows=self.Xs.shape[0], cols=self.M)
        self._check_range("V", Va)
        self.V = np.ascontiguousarray(Va, dtype=self.dtype)
        self._engine.update_bound(self.V)

    def _summarize_target(self):
        omega = self.Ys > 0 if self.mode == "relu" else np.ones(self.Ys.shape, bool)
        Yo = np.where(omega, self.Ys, 0).astype(np.float64)
        self._omega_norm = _column_norms(Yo)
        self._omega_norm_total = float(np.linalg.norm(self._omega_norm))
        self._y_norm = float(np.linalg.norm(_column_norms(self.Ys.astype(np.float64))))

    # --- where a solve starts ----------------------------------------------------------------
    @_exclusive
    def warm_start(self, start):
        """Where the next solve starts.

        ``start``: a :class:`LayerResult` that carries its ADMM state (from
        :func:`prune_layer` or :meth:`solve`), a state from :meth:`state`, ``"W"`` (the trained weights given to the
        constructor), ``"zero"``, or a matrix ``U`` of shape (N, M) or weights (n_in, M).
        Without a call, a solve continues from the previous solve's iterates."""
        if isinstance(start, (LayerResult, _core.StateFloat32, _core.StateFloat64)):
            st = start.state if isinstance(start, LayerResult) else start
            if st is None or np.shape(st.U) != (self.N, self.M):
                raise InvalidArgument(f"warm_start: expected a LayerResult of a layer with U of shape {(self.N, self.M)}"
                                 f" and its ADMM state")
            state = (_core.StateFloat32 if self.dtype == np.float32 else _core.StateFloat64)()
            state.U, state.L1, state.L2 = (np.asarray(a, self.dtype) for a in (st.U, st.L1, st.L2))
            state.rho1, state.rho2 = st.rho1, st.rho2
            self._engine.warm_start(state)
            return
        if isinstance(start, str):
            choice = check_choice("warm_start", start, ("zero", "W"))
            if choice == "zero":
                self._engine.cold_start()
                return
            if self.W is None:
                raise InvalidArgument("warm_start: 'W' needs the trained weights W")
            start = self.W if self.b is None or not self.fit_bias else np.vstack([self.W, self.b[None, :]])
        U = as_float_matrix("warm_start", start)
        if U.shape == (self.n_in, self.M) and self.fit_bias:
            U = np.vstack([U, np.zeros((1, self.M), U.dtype)])
        if U.shape != (self.N, self.M):
            raise InvalidArgument(f"warm_start: expected a matrix of shape {(self.N, self.M)} or {(self.n_in, self.M)}, "
                             f"got {U.shape}")
        self._engine.warm_start_primal(np.asfortranarray(U, dtype=self.dtype))

    @_exclusive
    def state(self):
        """The ADMM state the next solve would continue from (U, L1, L2, rho1, rho2)."""
        return self._engine.state()

    # --- solving -------------------------------------------------------------------------
    def eps_for(self, eps_rel=None, eps=None):
        """Absolute tolerance(s) for ``eps_rel`` (relative to the outputs on Omega) or ``eps``."""
        joint = self._settings.constraint.name == "joint"
        if self._settings.lam > 0:
            return np.zeros(1 if joint else self.M)
        if eps is not None:
            e = _as_real_array("eps", eps)
            if joint:
                if e.size != 1:
                    raise InvalidArgument(f"eps: expected a scalar for constraint='joint', got shape {e.shape}")
                e = e.reshape(1)
            elif e.size in (1, self.M):
                e = np.broadcast_to(e, (self.M,)).copy()
            else:
                raise InvalidArgument(f"eps: expected a scalar or shape ({self.M},) for constraint='neuron', "
                                 f"got shape {e.shape}")
            if not np.all(np.isfinite(e)) or np.any(e < 0):
                raise InvalidArgument(f"eps: expected finite values >= 0, got {eps!r}")
            return self._above_floor("eps", eps, e)
        if eps_rel is None:
            raise InvalidArgument("eps_rel: expected a relative tolerance (or eps, an absolute one), got neither")
        if isinstance(eps_rel, (bool, np.bool_)) or not isinstance(eps_rel, numbers.Real):
            raise InvalidArgumentType(f"eps_rel: expected a number, got {eps_rel!r}")
        rel = check_nonnegative("eps_rel", eps_rel)
        with np.errstate(over="ignore"):          # (an overflow is the error below, not a numpy warning)
            e = rel * (np.array([self._omega_norm_total]) if joint else self._omega_norm)
        if not np.all(np.isfinite(e)):
            raise InvalidArgument(f"eps_rel: {eps_rel!r} times the outputs' norm ({self._omega_norm_total:.3g}) "
                             f"overflows; expected a value that keeps eps finite")
        return self._above_floor("eps_rel", eps_rel, e)

    def _above_floor(self, name, given, e):
        """``e``, checked against the least-squares floor where it is known (compressed): below
        it no weights meet the constraint, and the rows form would only run to max_iter.  As
        the engine judges it: below by more than the rounding of the sums it comes from
        (compress()'s relative uncertainty of ||y||^2), so that a floor that is rounding alone
        (an exact fit) never refuses an eps."""
        if self.form != "compressed" or e.size == 0:
            return e
        joint = self._settings.constraint.name == "joint"
        floor2 = self.floor ** 2
        norm2 = self._omega_norm ** 2
        floors2, scales2 = (np.array([floor2.sum()]), np.array([norm2.sum()])) if joint else (floor2, norm2)
        slack = self.statistics.relative_uncertainty * scales2
        below = np.flatnonzero(e ** 2 < floors2 - slack)
        if below.size:
            i = below[0]
            floor, scale = float(np.sqrt(floors2[i])), float(np.sqrt(scales2[i]))
            where = "" if joint else f" (output {i})"
            relative = f" ({floor / scale:.4g} of the outputs' norm)" if scale > 0 else ""
            raise InvalidArgument(f"{name}: {given!r} is below the floor{where}: the error of the dense least-squares "
                                  f"weights is {floor:.6g}{relative}, and no weights go below it; expected a "
                                  f"larger {name}")
        return e

    @_exclusive
    def solve(self, *, eps_rel=None, eps=None, progress: Optional[Callable] = None, warn: bool = True,
              keep_state: bool = True) -> LayerResult:
        """Solve at ``eps_rel`` (default 0.05 when neither is given) or absolute ``eps``.

        Raises :class:`nettrim.NumericalError` when the iterates became non-finite; warns
        with :class:`nettrim.ConvergenceWarning` at the iteration or time limit (unless
        ``warn=False``: the status says it either way).  ``keep_state`` attaches a copy of
        the ADMM state to the result (for ``warm_start`` of another solver; a P x M copy)."""
        t0 = time.perf_counter()
        if eps_rel is None and eps is None:
            eps_rel = 0.05
        e = self.eps_for(eps_rel, eps)
        if warn:
            self._warn_if_unresolvable(e)
        progress = _check_progress(progress) or self.progress
        self._engine.update_eps([float(v) for v in e])
        res = self._engine.solve(progress)
        if res.info.status == "numerical_error" and self._promote_to_float64():
            self._engine.update_eps([float(v) for v in e])
            res = self._engine.solve(progress)
        result = self._result(res, e, time.perf_counter() - t0, with_state=keep_state)
        _warn_or_raise(result, stacklevel=3, quiet_limits=not warn)
        return result

    @_exclusive
    def solve_path(self, eps_rel: Optional[Sequence[float]] = None, *, eps=None,
                   progress: Optional[Callable] = None, warn: bool = True) -> SolutionPath:
        """Solutions for a sequence of ``eps_rel`` (or absolute ``eps``) values, in order,
        each warm started from the one before with the factorisation reused.  Monotone
        sequences are where warm starts pay; see :class:`SolutionPath` for what is returned."""
        if (eps_rel is None) == (eps is None):
            raise InvalidArgument("eps_rel: expected a sequence of relative tolerances, or eps (absolute), not both")
        values = list(np.atleast_1d(np.asarray(eps_rel if eps is None else eps, dtype=object)))
        if not values:
            raise InvalidArgument(f"{'eps_rel' if eps is None else 'eps'}: expected at least one value, got none")
        if eps is None:
            targets = [self.eps_for(v, None) for v in values]
        else:
            targets = [self.eps_for(None, v) for v in values]
        t0 = time.perf_counter()
        progress = _check_progress(progress) or self.progress
        raw = list(self._engine.solve_path([[float(x) for x in e] for e in targets], progress))
        failed = next((i for i, r in enumerate(raw) if r.info.status == "numerical_error"), None)
        if failed is not None and self._promote_to_float64():   # the rest of the path in float64
            raw = raw[:failed] + list(self._engine.solve_path([[float(x) for x in e] for e in targets[failed:]],
                                                              progress))
        results = []
        for r, e in zip(raw, targets):
            results.append(self._result(r, e, r.info.solve_seconds + r.info.polish_seconds, with_state=False))
        for r in results:
            _warn_or_raise(r, stacklevel=3, quiet_limits=True)
        if len(results) < len(targets):     # interrupted: the engine stopped the path
            raise KeyboardInterrupt
        limited = [i for i, r in enumerate(results) if r.status in ("max_iterations", "time_limit")]
        if limited and warn:
            warnings.warn(f"solve_path: {len(limited)} of {len(results)} points stopped at their iteration or "
                          f"time limit (points {limited}); raise max_iter or time_limit", ConvergenceWarning,
                          stacklevel=2)
        rel = np.array([float(v) for v in values]) if eps is None else None
        return SolutionPath(eps_rel=rel, results=results, setup_seconds=self.setup_seconds,
                            seconds=time.perf_counter() - t0)

    def _result(self, res, eps_vec, seconds, with_state):
        info = res.info
        U = res.U
        failed = info.status == "numerical_error"      # (raised by _warn_or_raise, never returned)
        weight, bias = (U[:self.n_in], U[self.n_in].copy()) if self.fit_bias else (U, None)
        return LayerResult(
            weight=np.asarray(weight), bias=bias, method="nettrim", U=U, status=info.status,
            iterations=info.iterations, solves=1, objective=float("nan") if failed else info.objective,
            dual_bound=info.dual_bound, gap=info.gap,
            omega_violation=info.omega_violation, complement_violation=info.complement_violation,
            relative_error=float("nan") if failed else self._relative_error(U),
            primal_residual=info.primal_residual, dual_residual=info.dual_residual, eps=eps_vec,
            rho1=info.rho1, rho2=info.rho2, rho_updates=info.rho_updates, factor_updates=info.factor_updates,
            threads=info.threads, dtype=self.dtype.name, setup_seconds=self.setup_seconds,
            solve_seconds=info.solve_seconds, polish_seconds=info.polish_seconds, seconds=seconds,
            final_seconds=seconds, state=self._engine.state() if with_state and not failed else None,
            backend=self._engine.backend, form=self.form, error_resolved=bool(info.error_resolved))

    def _relative_error(self, U, block=4096):
        """``||act(X U) - Y|| / ||Y||`` in float64, from the returned matrix (rows in blocks), or
        from the sums of a compressed solver (a route apart from the engine's, which goes
        through its rows R)."""
        denom = self._y_norm if self._y_norm > 0 else 1.0
        if self.form == "compressed":
            err2, _ = self.statistics.errors2(U)
            return float(np.sqrt(np.sum(err2))) / denom
        Ud = U.astype(np.float64)
        relu = self.mode == "relu"
        total = 0.0
        # numpy's BLAS on one thread: its idle threads spin for a while after a threaded call,
        # on the cores the next solve's threads need.  Measured (digits MLP's first layer, 200
        # iterations, threads=2, solves one after another): 1.03 -> 0.71 ms per iteration.
        with blas_threads(1):
            for p0 in range(0, self.Xs.shape[0], block):
                A = self.Xs[p0:p0 + block].astype(np.float64) @ Ud
                if relu:
                    np.maximum(A, 0, out=A)
                A -= self.Ys[p0:p0 + block]
                total += float(np.sum(A * A))
        return float(np.sqrt(total)) / denom

    def _warn_if_unresolvable(self, e):
        """float32 responses carry rounding errors of about 1e-7 sqrt(N) of the outputs: a
        tighter ball cannot be certified (measured: eps_rel 1e-7 ran to max_iter on a
        30-input layer in float32 and converged in 970 iterations in float64)."""
        if self.dtype != np.float32 or self._settings.lam > 0:
            return
        joint = self._settings.constraint.name == "joint"
        scale = np.array([self._omega_norm_total]) if joint else self._omega_norm
        floor = 1e-7 * np.sqrt(self.N) * scale
        if np.any((e < floor) & (scale > 0)):
            warnings.warn(f"eps: below what float32 can resolve (about {1e-7 * np.sqrt(self.N):.1e} of the "
                          f"outputs for {self.N} inputs); the solve will likely stop at max_iter: use "
                          f"dtype='float64'", NumericalWarning, stacklevel=4)

    def _promote_to_float64(self):
        """After a float32 solve went non-finite: the same problem, set up again in float64,
        for this solve and every later one.  False when already in float64."""
        if self.dtype == np.float64:
            return False
        warnings.warn("the float32 iterates became non-finite (inputs of extreme scale or rank); solving "
                      "again in float64, and from now on for this layer", NumericalWarning, stacklevel=4)
        t0 = time.perf_counter()
        self.dtype = np.dtype(np.float64)
        engine = _core.SolverFloat64(self._engine.backend)
        if self.form == "compressed":     # (the sums are float64 already)
            engine.setup_statistics(self.statistics._sums, self._settings, self.progress)
            self._engine = engine
            self.setup_seconds += time.perf_counter() - t0
            return True
        self.Xs = self.Xs.astype(np.float64)
        engine.setup(self.Xs, self._settings, self.progress)
        self.Ys = self.Ys.astype(np.float64)
        engine.update_target(self.Ys)
        if self.V is not None:
            self.V = self.V.astype(np.float64)
            engine.update_bound(self.V)
        self._engine = engine
        self.setup_seconds += time.perf_counter() - t0
        return True

    # --- the program in standard forms -------------------------------------------------------
    def to_cvxpy(self, *, eps_rel=None, eps=None):
        """This solver's program (its data, settings and bound) as a ``cvxpy.Problem``, at
        ``eps_rel`` (default 0.05) or absolute ``eps``: ``(problem, U)``, ``U`` the (N, M) variable
        (bias as the last row).  Needs cvxpy (``pip install "nettrim[bench]"``)."""
        e = self._standard_eps("to_cvxpy", eps_rel, eps)
        lam = self._settings.lam if self._settings.lam > 0 else None
        return standard_forms.to_cvxpy(self.Xs, self.Ys, e, relu=self.mode == "relu",
                                       constraint=self._settings.constraint.name, penalty=self._settings.penalty.name,
                                       inactive=self._settings.inactive.name, V=self.V, lam=lam,
                                       bias_row=self.N - 1 if self.fit_bias else None)

    def write_cbf(self, path, *, eps_rel=None, eps=None):
        """Write this solver's program as a CBF file (:func:`nettrim.standard_forms.write_cbf`: the
        l1 penalty, the constrained form); returns its sizes."""
        e = self._standard_eps("write_cbf", eps_rel, eps)
        if self._settings.penalty.name != "l1" or self._settings.lam > 0:
            raise InvalidArgument("penalty: write_cbf writes the l1 penalty's constrained program (no group penalty, "
                                  "no lam); to_cvxpy takes every variant")
        return standard_forms.write_cbf(path, self.Xs, self.Ys, e, relu=self.mode == "relu",
                                        constraint=self._settings.constraint.name,
                                        inactive=self._settings.inactive.name, V=self.V)

    def _standard_eps(self, what, eps_rel, eps):
        if self.form == "compressed":
            raise InvalidArgument(f"{what}: this solver holds its samples compressed; the program in a standard "
                                  "form is written from the rows (form='rows')")
        return self.eps_for(0.05 if eps_rel is None and eps is None else eps_rel, eps)

    # --- checks --------------------------------------------------------------------------
    def _check_memory(self, P, M, has_bound, statistics=False):
        if M is None:
            return
        itemsize = self.dtype.itemsize
        if statistics:    # at most N rows R, Yc (in double and the solve dtype), and the eigenvectors
            need = (self._engine.workspace_bytes(self.N, self.N, M, False)
                    + self.N * (self.N + M) * (8 + itemsize) + 2 * self.N * max(self.N, M) * 8)
        else:
            need = (self._engine.workspace_bytes(P, self.N, M, has_bound)
                    + P * self.N * itemsize            # the converted X
                    + P * M * (itemsize + 8)           # Y in the solve dtype, and its float64 norms
                    + P * max(self.n_in, M))           # the finite checks' boolean temporaries
        have = _core.available_memory()
        if have and need > have:
            raise MemoryError(f"X: a layer with P={P} samples, N={self.N} inputs and M={M} outputs needs about "
                              f"{need >> 20} MiB, but only {have >> 20} MiB are available; use fewer "
                              f"calibration samples or dtype='float32'")

    def _check_range(self, name, a):
        if self.dtype == np.float32 and a.dtype != np.float32:
            big = float(np.max(np.abs(a), initial=0.0))
            if big > np.finfo(np.float32).max:
                raise InvalidArgument(f"{name}: values up to {big:.3g} exceed the float32 range; use dtype='float64' "
                                 f"or rescale the data")


def _weights(W, b, n_in):
    Wa = None if W is None else as_float_matrix("W", W, rows=n_in)
    if b is None:
        return Wa, None
    if Wa is None:
        raise InvalidArgument("b: a bias needs the weights W it belongs to; got b without W")
    ba = np.asarray(b)
    if ba.ndim != 1 or ba.shape[0] != Wa.shape[1]:
        raise InvalidArgument(f"b: expected shape ({Wa.shape[1]},), got {ba.shape}")
    return Wa, as_float_matrix("b", ba[None, :])[0]


def _statistics_of(Xa, Y, W, b, fit_bias, M):
    """The sums of X and its target Y (or the response of W, b), a block of rows at a time:
    neither X with its bias column nor the whole of X W is ever formed."""
    check_finite("X", Xa)
    n_in = Xa.shape[1]
    Ya = None if Y is None else as_float_matrix("Y", Y, rows=Xa.shape[0], cols=M)
    statistics = SampleStatistics(n_in, M, fit_bias=fit_bias)
    rows = max(1, (1 << 24) // max(1, n_in + M))          # about 64 MiB of float32 per block
    with blas_threads(None):
        for p0 in range(0, Xa.shape[0], rows):
            Xb = Xa[p0:p0 + rows]
            if Ya is not None:
                Yb = Ya[p0:p0 + rows]
            else:
                Yb = Xb @ W.astype(Xb.dtype, copy=False)
                if b is not None:
                    Yb += b.astype(Yb.dtype, copy=False)
            statistics.add(Xb, Yb)
    return statistics


def _as_real_array(name, value):
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray([object()])
    if arr.dtype == object or arr.dtype.kind not in "fiu" or arr.dtype == bool:
        raise InvalidArgumentType(f"{name}: expected a number or an array of numbers, got {value!r}")
    return arr.astype(np.float64)


def _column_norms(A):
    """Column norms that neither overflow nor underflow (values near 1e+-200 included)."""
    scale = np.max(np.abs(A), axis=0, initial=0.0)
    safe = np.where(scale > 0, scale, 1.0)
    return np.linalg.norm(A / safe, axis=0) * scale


def _check_progress(progress):
    if progress is not None and not callable(progress):
        raise InvalidArgumentType(f"progress: expected a callable(iteration, primal_residual, dual_residual, elapsed), "
                        f"got {progress!r}")
    return progress


def _warn_or_raise(result, stacklevel=2, quiet_limits=False):
    if not result.error_resolved and result.status != "numerical_error":
        warnings.warn("the layer's error, computed from its compressed samples (a difference of sums), is uncertain "
                      "by more than tol at this eps: its violation is not exact; use form='rows' to check it on the "
                      "rows", NumericalWarning, stacklevel=stacklevel + 1)
    if result.status == "numerical_error":
        raise NumericalError(
            f"the ADMM iterates became non-finite after {result.iterations} iterations ({result.dtype}); "
            f"nothing was returned.  Inputs of extreme scale or rank can cause this: try dtype='float64' "
            f"or rescale the data")
    if result.status in ("max_iterations", "time_limit") and not quiet_limits:
        warnings.warn(f"the solve stopped at its {result.status.replace('_', ' ')} after "
                      f"{result.iterations} iterations (primal {result.primal_residual:.1e}, dual "
                      f"{result.dual_residual:.1e}, violations {result.omega_violation:.1e} / "
                      f"{result.complement_violation:.1e}); raise max_iter or time_limit",
                      ConvergenceWarning, stacklevel=stacklevel + 1)
