"""Prune one layer: the Python face of the C++ engine."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import scipy.sparse as sp

from . import _core
from .metrics import relative_error
from ._validate import (as_float_matrix, available_memory, check_choice, check_finite, check_nonnegative,
                        default_threads, resolve_dtype)


class ConvergenceWarning(UserWarning):
    """The solve stopped at its iteration or time limit before meeting its tolerances."""


@dataclass
class LayerResult:
    """The pruned layer and how the solve went.

    ``weights`` has shape (n_in, M) like the input ``W``; ``bias`` (M,) or None.
    ``U`` is the full (N, M) matrix of the formulation (bias as the last row)."""

    weights: np.ndarray
    bias: Optional[np.ndarray]
    U: np.ndarray
    status: str
    iterations: int
    objective: float
    nnz: int
    density: float
    omega_violation: float
    complement_violation: float
    relative_error: float
    primal_residual: float
    dual_residual: float
    eps: np.ndarray
    rho1: float
    rho2: float
    rho_updates: int
    factor_updates: int
    threads: int
    dtype: str
    setup_time: float
    solve_time: float
    polish_time: float
    total_time: float
    state: dict = field(repr=False, default=None)

    @property
    def sparse_weights(self) -> sp.csr_matrix:
        """The pruned weights as a CSR matrix of shape (n_in, M)."""
        return sp.csr_matrix(self.weights)

    def summary(self) -> str:
        return (f"{self.status} in {self.iterations} iterations, {self.total_time:.3g} s: "
                f"{self.nnz} nonzeros ({100 * self.density:.1f}%), relative error "
                f"{self.relative_error:.4f}, violations {self.omega_violation:.1e} / "
                f"{self.complement_violation:.1e}")


def prune_layer(X, Y=None, W=None, b=None, *, eps_rel: float = 0.05, eps=None,
                mode: str = "relu", constraint: str = "joint", penalty: str = "l1",
                lam: Optional[float] = None, V=None, fit_bias: bool = True,
                warm_start="auto", dtype="float32", threads: int = 0,
                max_iter: int = 10000, time_limit: Optional[float] = None,
                tol: float = 1e-3, dual_tol: float = 1e-2, rho: float = 1.0,
                sigma: Optional[float] = None, adaptive_rho: bool = True, adapt_every: int = 10,
                adapt_bias: float = 10.0, adapt_threshold: float = 5.0, alpha: float = 1.8, polish: bool = True,
                polish_margin: float = 1e-3,
                progress: Optional[Callable[[int, float, float, float], None]] = None) -> LayerResult:
    """Find the sparsest weights whose layer response stays within ``eps`` of ``Y``.

    Solves the Net-Trim program of one layer (formulation.md, section 1) with the C++
    ADMM engine.  The GIL is released during the solve; Ctrl-C raises
    ``KeyboardInterrupt`` within about 50 ms (the engine's buffers are freed).

    Parameters
    ----------
    X : array (P, n_in)
        Layer inputs on the calibration data, **samples by features** (as in numpy,
        scikit-learn and PyTorch).  Converted once to a C-ordered array of ``dtype``
        with a column of ones appended when ``fit_bias``; any float dtype or memory
        order is accepted, read-only and memory-mapped arrays included.
    Y : array (P, M), optional
        Target outputs: the trained layer's ReLU outputs (``mode="relu"``) or linear
        outputs (``mode="linear"``).  Computed from ``W`` and ``b`` when omitted.
    W, b : arrays (n_in, M) and (M,), optional
        The trained weights and bias (``W`` oriented like scikit-learn's ``coefs_``).
    eps_rel : float
        Tolerance relative to the outputs: ``eps = eps_rel * ||Y_Omega||_F`` (joint) or
        ``eps_m = eps_rel * ||y_m||`` (per neuron).  Larger means sparser.
    eps : float or array (M,), optional
        Absolute tolerance(s); overrides ``eps_rel``.
    mode : {"relu", "linear"}
        Whether a ReLU follows the layer.  Linear layers are sparse least squares.
    constraint : {"joint", "neuron"}
        One Frobenius ball for the layer, or one ball per output neuron.
    penalty : {"l1", "group"}
        ``||U||_1``, or the sum of row norms (removes whole input neurons).
    lam : float, optional
        Solve the regularized form ``||U||_1 + lam/2 ||(U^T X - Y)_Omega||^2`` instead.
    V : array (P, M), optional
        Upper bound on pre-activations where ``Y == 0`` (the cascade scheme); default 0.
    fit_bias : bool
        Whether the pruned layer has a bias (the last row of ``U``, l1-penalized too).
    warm_start : {"auto", "zero", "W"} or LayerResult
        Start from zero, from the trained weights, or from a previous result's ADMM
        state (measured 1.2-1.8x fewer iterations for a nearby ``eps``).  "auto" is
        "W" when ``W`` is given, else "zero" (both measured the same on real layers).
    dtype : {"float32", "float64"}
        Precision of the solve: float32 is the fast path.
    threads : int
        Threads for the engine (0: automatic, or the environment variable ``NETTRIM_THREADS``
        when it is set).
    max_iter, time_limit : limits; hitting one gives a ``ConvergenceWarning``.
    tol, dual_tol : float
        Relative tolerances: primal residuals and the constraint violations of the
        returned matrix (``tol``), dual residuals (``dual_tol``).
    rho, sigma, adaptive_rho, adapt_every, adapt_bias, adapt_threshold, alpha : ADMM tuning
        Initial penalty, initial penalty ratio, residual balancing (rho_j changes by
        ``clip(adapt_bias * sqrt(r_j / s_j), 0.1, 10)`` when that factor is outside
        ``[1/adapt_threshold, adapt_threshold]``), over-relaxation.
    polish, polish_margin : bool, float
        Bias-shift polish that makes inactive outputs exactly inactive.
    progress : callable(iteration, primal_residual, dual_residual, elapsed), optional
        Called at every convergence check (every ``adapt_every`` iterations).

    Returns
    -------
    LayerResult
    """
    t0 = time.perf_counter()
    dt = resolve_dtype(dtype)
    mode = check_choice("mode", mode, ("relu", "linear"))
    constraint = check_choice("constraint", constraint, ("joint", "neuron"))
    penalty = check_choice("penalty", penalty, ("l1", "group"))
    Xa = as_float_matrix("X", X, finite=False)  # values are checked after the memory estimate
    P, n_in = Xa.shape
    Wa = None if W is None else as_float_matrix("W", W, rows=n_in)
    ba = None
    if b is not None:
        ba = np.asarray(b)
        if ba.ndim != 1 or (Wa is not None and ba.shape[0] != Wa.shape[1]):
            want = f"({Wa.shape[1]},)" if Wa is not None else "a 1-D array"
            raise ValueError(f"b: expected shape {want}, got {ba.shape}")
        ba = as_float_matrix("b", ba[None, :])[0]
    if Y is None:
        if Wa is None:
            raise ValueError("Y: expected the target outputs, or W (and b) to compute them; got neither")
        check_finite("X", Xa)
        Ya = Xa @ Wa + (0 if ba is None else ba)
        if mode == "relu":
            Ya = np.maximum(Ya, 0)
    else:
        Ya = as_float_matrix("Y", Y, rows=P, finite=False)
        if Wa is not None and Ya.shape[1] != Wa.shape[1]:
            raise ValueError(f"Y: expected {Wa.shape[1]} columns (W has {Wa.shape[1]} outputs), got {Ya.shape[1]}")
    M = Ya.shape[1]
    N = n_in + (1 if fit_bias else 0)
    itemsize = np.dtype(dt).itemsize
    need = _core.workspace_bytes(N, P, M, V is not None, itemsize) + P * N * itemsize
    have = available_memory()
    if have and need > have:
        raise MemoryError(f"X: a layer with P={P} samples, N={N} inputs and M={M} outputs needs about "
                          f"{need >> 20} MiB, but only {have >> 20} MiB are available; use fewer "
                          f"calibration samples or dtype='float32'")
    check_finite("X", Xa)
    check_finite("Y", Ya)
    if mode == "relu" and (Ya < 0).any():
        raise ValueError("Y: expected ReLU outputs (>= 0) in mode='relu', got negative values; "
                         "use mode='linear' for a layer without ReLU")
    Va = None if V is None else as_float_matrix("V", V, rows=P, cols=M)
    if mode == "linear" and Va is not None:
        raise ValueError("V: an upper bound on inactive outputs needs mode='relu'")


    # One conversion of X: C order, the solve dtype, the bias column appended.
    if fit_bias:
        Xs = np.empty((P, N), dtype=dt)
        Xs[:, :n_in] = Xa
        Xs[:, n_in] = 1
    else:
        Xs = np.ascontiguousarray(Xa, dtype=dt)
    Ys = np.ascontiguousarray(Ya, dtype=dt)
    Vs = None if Va is None else np.ascontiguousarray(Va, dtype=dt)

    omega = Ys > 0 if mode == "relu" else np.ones(Ys.shape, dtype=bool)
    eps_vec = _resolve_eps(eps, eps_rel, Ys, omega, constraint, lam, M)

    settings = _core.Settings()
    settings.mode = getattr(_core.Mode, mode)
    settings.constraint = getattr(_core.Constraint, constraint)
    settings.penalty = getattr(_core.Penalty, penalty)
    settings.lam = 0.0 if lam is None else check_nonnegative("lam", lam, strict=True)
    settings.bias_row = n_in if fit_bias else -1
    settings.rho = check_nonnegative("rho", rho, strict=True)
    settings.sigma = 0.0 if sigma is None else check_nonnegative("sigma", sigma, strict=True)
    settings.adaptive_rho = bool(adaptive_rho)
    settings.adapt_every = int(adapt_every)
    settings.adapt_bias = float(adapt_bias)
    settings.adapt_threshold = float(adapt_threshold)
    settings.alpha = float(alpha)
    settings.max_iter = int(max_iter)
    settings.time_limit = 0.0 if time_limit is None else check_nonnegative("time_limit", time_limit, strict=True)
    settings.tol = check_nonnegative("tol", tol)
    settings.dual_tol = check_nonnegative("dual_tol", dual_tol)
    settings.polish = bool(polish)
    settings.polish_margin = float(polish_margin)
    settings.threads = default_threads() if threads == 0 else int(threads)
    settings.validate()

    U0, state = _warm_start(warm_start, Wa, ba, fit_bias, N, M, dt)
    solve = _core.solve_float32 if dt == np.float32 else _core.solve_float64
    U, info, state_out = solve(Xs, Ys, Vs, list(map(float, eps_vec)), U0, state, settings, progress)

    A = Xs @ U
    weights, bias = (U[:n_in], U[n_in].copy()) if fit_bias else (U, None)
    nnz = int(np.count_nonzero(weights))
    result = LayerResult(
        weights=np.asarray(weights), bias=bias, U=U, status=info.status, iterations=info.iterations,
        objective=info.objective, nnz=nnz, density=nnz / weights.size,
        omega_violation=info.omega_violation, complement_violation=info.complement_violation,
        relative_error=relative_error(A, Ys, mode), primal_residual=info.primal_residual,
        dual_residual=info.dual_residual, eps=eps_vec, rho1=info.rho1, rho2=info.rho2,
        rho_updates=info.rho_updates, factor_updates=info.factor_updates, threads=info.threads,
        dtype=np.dtype(dt).name, setup_time=info.setup_time, solve_time=info.solve_time,
        polish_time=info.polish_time, total_time=time.perf_counter() - t0,
        state=_StateView(state_out))
    if result.status in ("max_iterations", "time_limit"):
        warnings.warn(f"prune_layer stopped at its {result.status.replace('_', ' ')} after "
                      f"{result.iterations} iterations (primal {result.primal_residual:.1e}, dual "
                      f"{result.dual_residual:.1e}, violations {result.omega_violation:.1e} / "
                      f"{result.complement_violation:.1e}); raise max_iter or time_limit",
                      ConvergenceWarning, stacklevel=2)
    return result


class _StateView:
    """ADMM state for warm starts (attributes U, L1, L2, rho1, rho2)."""

    def __init__(self, d):
        self.__dict__.update(d)


def _resolve_eps(eps, eps_rel, Y, omega, constraint, lam, M):
    if lam is not None:
        return np.zeros(1 if constraint == "joint" else M)
    Yo = np.where(omega, Y, 0).astype(np.float64)
    if eps is not None:
        e = np.asarray(eps, dtype=np.float64)
        if constraint == "joint":
            if e.size != 1:
                raise ValueError(f"eps: expected a scalar for constraint='joint', got shape {e.shape}")
            e = e.reshape(1)
        else:
            e = np.broadcast_to(e, (M,)).copy() if e.size in (1, M) else None
            if e is None:
                raise ValueError(f"eps: expected a scalar or shape ({M},) for constraint='neuron', "
                                 f"got shape {np.shape(eps)}")
        if not np.all(np.isfinite(e)) or np.any(e < 0):
            raise ValueError(f"eps: expected finite values >= 0, got {eps!r}")
        return e
    eps_rel = check_nonnegative("eps_rel", eps_rel)
    if constraint == "joint":
        return np.array([eps_rel * np.linalg.norm(Yo)])
    return eps_rel * np.linalg.norm(Yo, axis=0)


def _warm_start(warm_start, W, b, fit_bias, N, M, dt):
    if isinstance(warm_start, LayerResult):
        st = warm_start.state
        if st is None or st.U.shape != (N, M):
            raise ValueError(f"warm_start: expected a LayerResult of a layer with U of shape {(N, M)}")
        return None, st
    choice = check_choice("warm_start", warm_start, ("auto", "zero", "W"))
    if choice == "auto":
        choice = "zero" if W is None else "W"
    if choice == "zero":
        return None, None
    if W is None:
        raise ValueError("warm_start: 'W' needs the trained weights W")
    U0 = np.zeros((N, M), dtype=dt, order="F")
    U0[: W.shape[0]] = W
    if fit_bias and b is not None:
        U0[-1] = b
    return U0, None
