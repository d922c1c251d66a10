"""Re-fit a layer's weights on a fixed support: the Net-Trim least squares without the l1 term.

Used for N:M Net-Trim (choose the N:M mask, then fit the kept weights) and to undo the
shrinkage of the l1 solution ("debiasing").  Each output neuron ``j`` is a least-squares
problem over its support: fit ``Y`` on the active rows ``Omega_j = {p : Y_pj > 0}`` (all
rows for a linear layer) subject to ``(X U)_pj <= V_pj`` on the inactive rows.

From a feasible start (a Net-Trim solution) that program is solved exactly by a primal
active-set method (the engine's ``refit_support``, cpp/src/refit.cpp; its numpy twin is
:func:`nettrim.reference.constrained_lsq`): every iterate meets the bounds and errs no more
than the one before, so the result stays inside the start's eps ball, and a neuron stopped at
its iteration limit is still no worse than its start.  On the Fashion MLP's first layer
(parallel, 90% removed, 1600 samples) it lowered the error on Omega from 0.406 to 0.267 of
``||Y||`` (0.423 -> 0.293 on test images) where the heuristic below gave 0.573.

Without a start, the inequality is handled by a short heuristic loop: inactive rows that the
fit pushes above their bound are pinned to it and the fit repeated (normal equations in
float64, updated with the pinned rows, a tiny ridge for rank-deficient supports).  Whatever
violation is left after ``rounds`` is removed as the engine's polish does, by lowering the
bias.  On random layers its error on Omega measured 1.10-1.29x that of the exact constrained
least squares (Clarabel).
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import blas_threads
from .._validate import as_float_matrix
from ..errors import InvalidArgument
from ..problem import INACTIVE


def refit_on_support(X, Y, mask, *, relu=True, V=None, fit_bias=True, bias=None, ridge=1e-9, rounds=6,
                     start=None, max_iter=None, inactive="bounded"):
    """Least-squares weights on the support ``mask`` (n_in, M); returns ``(weights, bias)``.

    X : (P, n_in) layer inputs.  Y : (P, M) the outputs to keep (ReLU outputs when ``relu``).
    V : (P, M) upper bound on inactive pre-activations (cascade); default 0.
    bias : the bias to keep when ``fit_bias`` is False (default zero).
    start : ``(weights, bias)`` meeting the bounds (a Net-Trim solution on this support; one
    solved on a subset of the rows has its bias lowered until it meets them on every row): the
    exact constrained least squares from there (the engine's active-set method, at most
    ``max_iter`` steps a neuron, default ``3 (support + 1) + 20``, OpenMP over the neurons);
    without it, the pinning heuristic (``rounds``).
    inactive : how the inactive rows (``Y <= 0``) of a ReLU layer count. ``"bounded"``: each
    is a constraint, ``X w + b <= V`` (Net-Trim's program on the support). ``"relu"``: each
    adds its ReLU output's square, ``max(0, X w + b)^2``, to the error, so the re-fit minimises
    a convex bound of the layer's own output error ``||ReLU(X w + b) - Y||`` (V is not used;
    the engine's Newton method, from ``start`` or from zero weights; it takes many steps where
    an output has more unknowns than active rows, e.g. 2:4 supports).  The bounds cost accuracy as
    calibration rows are added (Fashion-MNIST's first layer at 9% kept, re-fitted on 8000 rows:
    held-out relative error 0.327 bounded, 0.260 relu).

    The per-neuron problems are small: numpy's BLAS runs them on one thread (measured 68x
    faster than its default threads on a loaded 2-core machine, see nettrim._threads)."""
    with blas_threads(1):
        return _refit(X, Y, mask, relu=relu, V=V, fit_bias=fit_bias, bias=bias, ridge=ridge, rounds=rounds,
                      start=start, max_iter=max_iter, inactive=inactive)


REFITS = ("relu", "bounded", "none")


def refit_mode(value):
    """Net-Trim's ``refit`` option normalised: True is ``"relu"`` (the default), False ``"none"``."""
    if value is True:
        return "relu"
    if value is False:
        return "none"
    if isinstance(value, str) and value in REFITS:
        return value
    raise InvalidArgument(f"refit: expected True, False or one of {', '.join(map(repr, REFITS))}, got {value!r}")


def _refit(X, Y, mask, *, relu, V, fit_bias, bias, ridge, rounds, start, max_iter, inactive):
    X = np.asarray(as_float_matrix("X", X), np.float64)
    Y = np.asarray(as_float_matrix("Y", Y, rows=X.shape[0]), np.float64)
    P, n = X.shape
    M = Y.shape[1]
    mask = np.asarray(mask)
    if mask.shape != (n, M):
        raise InvalidArgument(f"mask: expected shape ({n}, {M}) (inputs of X, outputs of Y), got {mask.shape}")
    mask = mask.astype(bool)
    if inactive not in INACTIVE:
        raise InvalidArgument(f"inactive: expected one of {', '.join(map(repr, INACTIVE))}, got {inactive!r}")
    if relu and inactive == "relu" and start is None:
        start = (np.zeros((n, M)), None if bias is None else np.asarray(bias, np.float64))
    if V is not None:
        V = as_float_matrix("V", V, rows=P, cols=M)
    if bias is not None and np.shape(bias) != (M,):
        raise InvalidArgument(f"bias: expected shape ({M},), got {np.shape(bias)}")
    if start is not None and relu:
        if np.shape(start[0]) != (n, M) or (start[1] is not None and np.shape(start[1]) != (M,)):
            raise InvalidArgument(f"start: expected (weights ({n}, {M}), bias ({M},) or None), got "
                                  f"({np.shape(start[0])}, {None if start[1] is None else np.shape(start[1])})")
        start_bias = start[1] if fit_bias else bias
        start_bias = np.zeros(M) if start_bias is None else np.asarray(start_bias, np.float64)
        if fit_bias and inactive == "bounded":
            # A start solved on other rows (a subset of these) may exceed the bounds here: its
            # bias is lowered until it meets them all, so that the re-fit keeps every one.
            start_bias = _bias_within_bounds(X, Y, np.asarray(start[0], np.float64), start_bias,
                                             0.0 if V is None else np.asarray(V, np.float64))
        weights, b, _, _ = _core.refit_support(
            np.ascontiguousarray(X), np.ascontiguousarray(Y), np.ascontiguousarray(mask, np.float64),
            np.ascontiguousarray(start[0], np.float64), np.ascontiguousarray(start_bias),
            np.zeros((0, M)) if V is None else np.ascontiguousarray(V, np.float64), bool(fit_bias),
            max_iter=int(max_iter or 0), ridge=float(ridge), inactive=inactive)
        return weights.astype(np.float32), (b.astype(np.float32) if fit_bias or bias is not None else None)
    Xs = np.hstack([X, np.ones((P, 1))]) if fit_bias else X
    fixed = np.zeros(M) if bias is None or fit_bias else np.asarray(bias, np.float64)
    bound = np.zeros((P, M)) if V is None else np.asarray(V, np.float64)
    U = np.zeros((Xs.shape[1], M))
    for j in range(M):
        cols = np.flatnonzero(mask[:, j])
        if fit_bias:
            cols = np.append(cols, n)
        if cols.size == 0:
            continue
        active = Y[:, j] > 0 if relu else np.ones(P, bool)
        A = Xs[active][:, cols]
        G = A.T @ A
        rhs = A.T @ (Y[active, j] - fixed[j])
        G[np.diag_indices_from(G)] += ridge * (np.trace(G) / len(cols) + 1.0)
        u = np.linalg.solve(G, rhs)
        if relu:
            inactive = np.flatnonzero(~active)
            Xi = Xs[inactive][:, cols]
            pinned = np.zeros(len(inactive), bool)
            for _ in range(rounds):
                over = (Xi @ u + fixed[j] > bound[inactive, j] + 1e-9) & ~pinned
                if not over.any():
                    break
                pinned |= over
                B = Xi[over]
                G += B.T @ B
                rhs += B.T @ (bound[inactive[over], j] - fixed[j])
                u = np.linalg.solve(G, rhs)
        U[cols, j] = u
    weights = U[:n].astype(np.float32)
    if not fit_bias:
        return weights, bias
    b = U[n]
    if relu:   # what the active set left: removed as the polish does
        b = _bias_within_bounds(X, Y, U[:n], b, bound)
    return weights, b.astype(np.float32)


def _bias_within_bounds(X, Y, weights, bias, bound):
    """``bias`` lowered, output by output, until every inactive row (``Y <= 0``) of
    ``X weights + bias`` meets its ``bound``."""
    excess = np.where(Y > 0, -np.inf, X @ weights + bias - bound).max(axis=0, initial=-np.inf)
    return bias - np.maximum(excess, 0.0)


def kept_dense(problem):
    """A layer that keeps every weight: the trained ones on the trained network's signals; on
    the pruned network's (cascade), every weight re-fitted by least squares to the trained
    outputs, since its inputs changed, when that errs less on Omega than the trained weights
    (both meet the bound V on the inactive outputs).  Every method's layers that keep all
    their weights come here (schemes.LayerJob), so that all get the same re-fit.

    Measured on the Fashion MLP (cascade, 1600 samples, first two layers pruned to 8.7% and
    16.1%, the logits layer kept): test accuracy 0.792 with the trained logits layer, 0.832
    with it re-fitted; at 3.5% / 6%, 0.639 against 0.768."""
    if not problem.on_pruned_signals:
        return problem.W, problem.b
    # With the inactive outputs counted (inactive="relu") their ReLU error is re-fitted, from
    # the trained weights, and compared too (problem.error).
    inactive_rows = dict(start=(problem.W, problem.b), inactive="relu") if problem.counted else dict(V=problem.V)
    weights, bias = refit_on_support(problem.X, problem.Y, np.ones(problem.W.shape, bool), relu=problem.relu,
                                     fit_bias=problem.has_bias, bias=problem.b, **inactive_rows)

    def error(w, b):
        return problem.error(problem.X @ w + (0 if b is None else b))

    if error(weights, bias) < error(problem.W, problem.b):
        return weights, bias
    return problem.W, problem.b
