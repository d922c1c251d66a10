"""Prune one layer in one call: :func:`prune_layer`, the face of :class:`~nettrim.LayerSolver`."""
from __future__ import annotations

import time
from typing import Callable, Optional

from ._validate import check_choice
from .result import LayerResult
from .solver import DEFAULTS, LayerSolver


def prune_layer(X, Y=None, W=None, b=None, *, eps_rel: float = 0.05, eps=None,
                mode: str = DEFAULTS.mode.name, constraint: str = DEFAULTS.constraint.name,
                inactive: str = DEFAULTS.inactive.name, penalty: str = DEFAULTS.penalty.name, lam: Optional[float] = None, V=None,
                fit_bias: bool = True, warm_start="auto", dtype="float32", backend: str = "cpu",
                threads: int = DEFAULTS.threads, max_iter: int = DEFAULTS.max_iter,
                time_limit: Optional[float] = None, tol: float = DEFAULTS.tol, gap_tol: float = DEFAULTS.gap_tol,
                dual_tol: float = DEFAULTS.dual_tol, rho: float = DEFAULTS.rho, sigma: Optional[float] = None,
                adaptive_rho: bool = DEFAULTS.adaptive_rho, adapt_every: int = DEFAULTS.adapt_every,
                adapt_bias: float = DEFAULTS.adapt_bias, adapt_threshold: float = DEFAULTS.adapt_threshold,
                alpha: float = DEFAULTS.alpha, polish: bool = DEFAULTS.polish,
                polish_margin: float = DEFAULTS.polish_margin, certify_bias: float = DEFAULTS.certify_bias,
                form: str = "auto",
                progress: Optional[Callable[[int, float, float, float], None]] = None) -> LayerResult:
    """Find the sparsest weights whose layer response stays within ``eps`` of ``Y``.

    Solves the Net-Trim program of one layer with the C++ ADMM engine: one
    :class:`~nettrim.LayerSolver` set up and solved once (use the solver itself to solve
    one layer for many eps).  The GIL is released during setup and the solve; Ctrl-C
    raises ``KeyboardInterrupt`` (latencies measured by bench/bench_interrupt.py) and the
    engine's buffers are freed.  Defaults are the engine's (``nettrim._core.Settings``).

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
    inactive : {"bounded", "relu"}
        ReLU layers, the outputs that are 0 (``Y == 0``): "bounded" keeps each below 0 (or
        ``V``), the papers' program; "relu" counts each one's ReLU output, ``max(0, X u + b)``,
        in the error with those of the active outputs, so that ``eps`` bounds the layer's own
        output error ``||ReLU(X U) - Y||`` (a larger feasible set: sparser for the same eps,
        and at high sparsity no output has to be dropped whole to keep its inactive rows
        below 0; see the docs, "Inactive outputs").
    penalty : {"l1", "group"}
        ``||U||_1``, or the sum of row norms (removes whole input neurons).
    lam : float, optional
        Solve the regularized form ``||U||_1 + lam/2 ||(U^T X - Y)_Omega||^2`` instead.
    V : array (P, M), optional
        Upper bound on pre-activations where ``Y == 0`` (the cascade scheme); default 0.
        Only with ``inactive="bounded"``.
    fit_bias : bool
        Whether the pruned layer has a bias (the last row of ``U``, l1-penalized too).
    warm_start : {"auto", "zero", "W"} or LayerResult
        Start from zero, from the trained weights, or from a previous result's ADMM
        state (measured 1.2-1.8x fewer iterations for a nearby ``eps``).  "auto" is
        "W" when ``W`` is given, else "zero" (both measured the same on real layers).
    dtype : {"float32", "float64"}
        Precision of the solve: float32 is the fast path.  The returned matrix's
        violations and error are evaluated in double precision either way.
    backend : str
        Engine backend (see :func:`nettrim.backends`): "cpu", or "cuda" in a build with the
        CUDA backend on a machine with a GPU; "cuda:tf32" is the CUDA backend with its
        float32 products on TF32 tensor cores (faster, about 1e-3 relative rounding).
        A backend the build or the machine lacks raises ``InvalidArgument``.
    threads : int
        Threads for the engine (0: automatic, or the environment variable ``NETTRIM_THREADS``
        when it is set).
    max_iter, time_limit : limits; hitting one gives a ``ConvergenceWarning``.
    tol, gap_tol, dual_tol : float
        The returned matrix meets the constraints to ``tol`` (relative) and its objective is
        certified within ``gap_tol`` of the optimum by a dual bound (``result.dual_bound``,
        ``result.gap``).  ``gap_tol=0`` stops on residuals instead (primal ``tol``, dual
        ``dual_tol``, the objective settled), without a certificate.
    rho, sigma, adaptive_rho, adapt_every, adapt_bias, adapt_threshold, alpha : ADMM tuning
        Initial penalty, initial penalty ratio, residual balancing (rho_j changes by
        ``clip(adapt_bias * sqrt(r_j / s_j), 0.1, 10)`` when that factor is outside
        ``[1/adapt_threshold, adapt_threshold]``), over-relaxation.
    polish, polish_margin : bool, float
        Bias-shift polish that makes inactive outputs exactly inactive (``inactive="bounded"``);
        with ``inactive="relu"``, where there is no bound, the margin alone (the ADMM aims at
        ``eps (1 - polish_margin)``, so the exactly sparse returned matrix stays inside eps).
    certify_bias : float
        With ``gap_tol``: residual balancing's bias toward the primal while the solve works
        toward its certificate (instead of ``adapt_bias``: the dual iterates, which the bound is
        built from, converge faster without the primal bias).
    form : {"auto", "rows", "compressed"}
        How the solver holds the samples (see :class:`~nettrim.LayerSolver`): "auto" solves
        the linear program from ``X^T X`` and ``X^T Y`` when there are at least
        ``nettrim.solver.COMPRESS_RATIO`` samples per input, where that measures faster; the
        result's ``form`` says which.
    progress : callable(iteration, primal_residual, dual_residual, elapsed), optional
        Called at every convergence check (every ``adapt_every`` iterations).

    Returns
    -------
    LayerResult
        With ``status`` "converged", "max_iterations" or "time_limit" (the last two with a
        :class:`~nettrim.ConvergenceWarning`).  Non-finite iterates raise
        :class:`~nettrim.NumericalError` instead of returning a matrix.
    """
    t0 = time.perf_counter()
    settings = dict(mode=mode, constraint=constraint, inactive=inactive, penalty=penalty, lam=lam, threads=threads,
                    max_iter=max_iter, time_limit=time_limit, tol=tol, dual_tol=dual_tol, gap_tol=gap_tol, rho=rho,
                    sigma=sigma,
                    adaptive_rho=adaptive_rho, adapt_every=adapt_every, adapt_bias=adapt_bias,
                    adapt_threshold=adapt_threshold, alpha=alpha, polish=polish, polish_margin=polish_margin,
                    certify_bias=certify_bias)
    if not isinstance(warm_start, LayerResult):
        check_choice("warm_start", warm_start, ("auto", "zero", "W"))
    solver = LayerSolver(X, Y, W, b, V=V, fit_bias=fit_bias, dtype=dtype, backend=backend, progress=progress,
                         form=form, **settings)
    if warm_start == "auto":
        warm_start = "zero" if W is None else "W"
    solver.warm_start(warm_start)
    result = solver.solve(eps_rel=eps_rel if eps is None else None, eps=eps)
    result.seconds = time.perf_counter() - t0
    return result
