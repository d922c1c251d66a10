"""Plain numpy ADMM for one Net-Trim layer: the readable, executable specification.

This module implements exactly the iteration of the C++ engine (docs/formulation.rst,
"The ADMM") with none of its speed tricks, so that the two can be compared iterate by
iterate.  Everything works on the *formulation-level* arrays:

    Xs : (P, N)  samples by input features, the bias column of ones already appended
    Y  : (P, M)  target outputs (ReLU outputs, or linear outputs in linear mode)
    V  : (P, M)  upper bound on inactive pre-activations (cascade); None means 0
    eps: scalar (joint) or (M,) (per-neuron) absolute tolerances

Names follow docs/formulation.rst: ``Z1 = X U`` (P x M, samples by neurons; ``A = Xs @ U``),
``Z2 = U``, scaled duals ``L1`` and ``L2``, two penalties ``rho1`` and ``rho2``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import solve_triangular

from .metrics import constraint_violations


@dataclass
class ReferenceResult:
    U: np.ndarray              # (N, M) returned sparse matrix (after polish)
    Z2: np.ndarray             # (N, M) last soft-thresholded iterate
    iterations: int
    status: str
    rho1: float
    rho2: float
    history: list = field(default_factory=list)  # Z2 per iteration when record=True


def soft_threshold(x, t):
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def group_shrink(x, t, l1_rows=()):
    """Row-wise group soft thresholding; rows listed in ``l1_rows`` get plain l1."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out = x * np.maximum(0.0, 1.0 - t / np.maximum(norms, np.finfo(x.dtype).tiny))
    for r in l1_rows:
        out[r] = soft_threshold(x[r], t)
    return out


def project_outputs(T, Y, omega, V, eps, constraint, lam, rho1, inactive="bounded"):
    """Z1 update: the prox of the output-space term at ``T = A - L1``.

    On Omega: projection on the eps ball around Y (joint: one ball; neuron: one ball
    per column), or, in the regularized form, the prox of (lam/2)||z - y||^2.
    On Omega^c: clip from above at V; with ``inactive="relu"`` instead, the positive
    entries are coordinates of the same ball (centred at 0) and the others stay.
    """
    counted = inactive == "relu"
    Z = T.copy() if counted else np.minimum(T, V)
    up = ~omega & (T > 0) if counted else np.zeros_like(omega)
    D = np.where(omega | up, T - np.where(omega, Y, 0.0), 0.0)
    if lam is not None:
        Z[omega] = ((lam * Y + rho1 * T) / (lam + rho1))[omega]
        Z[up] = (rho1 * T / (lam + rho1))[up]
        return Z
    if constraint == "joint":
        norm = np.linalg.norm(D)
        scale = 1.0 if norm <= eps else eps / norm
    else:
        norm = np.linalg.norm(D, axis=0)
        scale = np.where(norm <= eps, 1.0, eps / np.maximum(norm, np.finfo(T.dtype).tiny))
    Z[omega] = (Y + D * scale)[omega]
    Z[up] = (D * scale)[up]
    return Z


def bias_shift(U, A, omega, V, bias_row):
    """Polish: lower each neuron's bias by its largest positive pre-activation on Omega^c.

    Makes Omega^c exactly feasible; the shrunken ball (polish margin) absorbs the
    small increase on Omega.  Returns new (U, A)."""
    excess = np.where(omega, -np.inf, A - V).max(axis=0)
    shift = np.where(np.isfinite(excess), np.maximum(excess, 0.0), 0.0)
    U = U.copy()
    U[bias_row] -= shift
    return U, A - shift


def solve(Xs, Y, eps, *, V=None, mode="relu", constraint="joint", inactive="bounded", penalty="l1", lam=None,
          bias_row=None, rho=None, sigma=None, adaptive_rho=True, adapt_every=10,
          adapt_bias=10.0, adapt_threshold=5.0, alpha=1.8, max_iter=10000, tol=1e-3, dual_tol=1e-2, polish=True,
          polish_margin=1e-3, U0=None, record=False, time_limit=None, callback=None):
    """Run the Net-Trim ADMM.  See :func:`nettrim.prune_layer` for the meaning of the
    settings.  Stops when the normalised primal residuals are below ``tol``, the dual
    residuals below ``dual_tol``, ||Z2||_1 moved by at most ``tol / 10`` (relative) since
    the last check, and the polished candidate meets the constraints to ``tol``;
    ``tol=0`` runs exactly ``max_iter`` iterations."""
    Xs = np.asarray(Xs)
    P, N = Xs.shape
    M = Y.shape[1]
    dt = Xs.dtype
    relu = mode == "relu"
    omega = Y > 0 if relu else np.ones_like(Y, dtype=bool)
    if V is None:
        V = np.zeros_like(Y)
    if not relu:
        V = np.full_like(Y, np.inf)
    eps = np.asarray(eps, dtype=dt)
    # The margin makes room for the polish's bias shift, which only relu layers with a bias
    # and a bound on their inactive outputs get; with inactive="relu" (no shift) it keeps the
    # exactly sparse returned matrix, whose inactive ReLU outputs share the ball, inside it.
    margin = polish and lam is None and relu and (bias_row is not None or inactive == "relu")
    polish = polish and inactive == "bounded"
    ball = eps * (1 - polish_margin) if margin else eps

    gram_diag_max = float(np.max(np.einsum("pn,pn->n", Xs, Xs)))
    sigma = 0.09 * gram_diag_max if sigma is None else sigma   # the authors' c0^2
    sigma = max(sigma, 1e-12)
    rho2 = 1.0 if rho is None else rho
    rho1 = rho2 / sigma
    rho1_start, rho2_start = rho1, rho2

    # The U update solves (X X^T + sigma I) U = R; one eigendecomposition serves every sigma.
    lam_g, Q = np.linalg.eigh(Xs.T @ Xs)

    def solve_u(R, sig):
        return Q @ ((Q.T @ R) / (lam_g + sig)[:, None])

    U = np.zeros((N, M), dt) if U0 is None else np.array(U0, dtype=dt)
    A = Xs @ U
    L1 = np.zeros((P, M), dt)
    L2 = np.zeros((N, M), dt)
    l1_rows = () if bias_row is None else (bias_row,)
    history = []
    status = "max_iterations"
    t0 = time.perf_counter()
    it = 0
    Z2 = U.copy()
    last_obj = float(np.abs(U).sum())  # a warm start may be settled already
    for it in range(1, max_iter + 1):
        Z1 = project_outputs(A - L1, Y, omega, V, ball, constraint, lam, rho1, inactive if relu else "bounded")
        if penalty == "l1":
            Z2 = soft_threshold(U - L2, 1.0 / rho2)
        else:
            Z2 = group_shrink(U - L2, 1.0 / rho2, l1_rows)
        Z1h = alpha * Z1 + (1 - alpha) * A        # over-relaxation, Z block first
        Z2h = alpha * Z2 + (1 - alpha) * U
        sig = rho2 / rho1
        U_old, A_old = U, A
        U = solve_u(Xs.T @ (Z1h + L1) + sig * (Z2h + L2), sig)
        A = Xs @ U
        L1 = L1 + Z1h - A
        L2 = L2 + Z2h - U
        if record:
            history.append(Z2.copy())

        if it % adapt_every:
            continue
        r1 = np.linalg.norm(Z1 - A) / max(np.linalg.norm(Z1), np.linalg.norm(A), 1e-30)
        r2 = np.linalg.norm(Z2 - U) / max(np.linalg.norm(Z2), np.linalg.norm(U), 1e-30)
        s1 = np.linalg.norm(A - A_old) / max(np.linalg.norm(L1), 1e-30)
        s2 = np.linalg.norm(U - U_old) / max(np.linalg.norm(L2), 1e-30)
        if callback is not None:
            callback(dict(iteration=it, r1=r1, r2=r2, s1=s1, s2=s2, rho1=rho1, rho2=rho2, Z2=Z2, L1=L1))
        obj = float(np.abs(Z2).sum())
        settled = abs(obj - last_obj) <= 0.1 * tol * max(obj, 1e-300)
        last_obj = obj
        if tol > 0 and settled and max(r1, r2) <= tol and max(s1, s2) <= dual_tol:
            Uc, Ac = _candidate(Z2, Xs, omega, V, relu, polish, bias_row)
            if _feasible(Ac, Y, omega, V, eps, constraint, lam, relu, tol, inactive):
                status = "converged"
                break
        if adaptive_rho:
            for j, (r, s) in enumerate(((r1, s1), (r2, s2))):
                if r == 0 and s == 0:
                    continue
                f = float(np.clip(adapt_bias * np.sqrt(r / max(s, 1e-300)), 0.1, 10.0))
                if 1.0 / adapt_threshold < f < adapt_threshold:
                    continue
                # each penalty stays within 1e6 of where it started (as the engine)
                if j == 0:
                    f = float(np.clip(rho1 * f, rho1_start * 1e-6, rho1_start * 1e6)) / rho1
                    rho1 *= f
                    L1 = L1 / f
                else:
                    f = float(np.clip(rho2 * f, rho2_start * 1e-6, rho2_start * 1e6)) / rho2
                    rho2 *= f
                    L2 = L2 / f
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            status = "time_limit"
            break
    Uc, _ = _candidate(Z2, Xs, omega, V, relu, polish, bias_row)
    return ReferenceResult(Uc, Z2, it, status, rho1, rho2, history)


def _candidate(Z2, Xs, omega, V, relu, polish, bias_row):
    A = Xs @ Z2
    if polish and relu and bias_row is not None:
        return bias_shift(Z2, A, omega, V, bias_row)
    return Z2, A


def _feasible(A, Y, omega, V, eps, constraint, lam, relu, tol, inactive):
    v_omega, v_comp = constraint_violations(A, Y, omega, V if relu else None, eps, constraint,
                                            regularized=lam is not None, inactive=inactive)
    return v_omega <= tol and v_comp <= tol


def constrained_lsq(A, y, B, v, u0, *, ridge=1e-9, max_iter=100):
    """``argmin ||A u - y||`` subject to ``B u <= v``, from ``u0`` meeting the bounds (a row that
    ``u0`` exceeds has its bound raised to ``B u0``, so that no row ends worse than it began).

    The re-fit of Net-Trim's solution on its support (nettrim.methods.refit_on_support with a
    start); the engine's ``refit_support`` (cpp/src/refit.cpp) takes the same steps.  The
    primal active-set method (Nocedal & Wright, Numerical Optimization, Algorithm 16.3):
    step toward the least-squares minimiser on the working set's equalities, stop at the first
    bound in the way and add it; at that minimiser, drop the bound with the most negative
    multiplier, or stop when none is.  Every iterate meets the bounds and the error never
    rises.  The working set's Schur complement is kept as ``Z = L^-1 B_W^T`` (``G = L L^T``),
    one triangular solve per added bound.  Returns ``(u, iterations, converged)``."""
    n = A.shape[1]
    G = A.T @ A
    G[np.diag_indices(n)] += ridge * (np.trace(G) / n + 1.0)
    L = np.linalg.cholesky(G)
    free = solve_triangular(L, solve_triangular(L, A.T @ y, lower=True), lower=True, trans="T")
    u0 = np.array(u0, np.float64)
    u = u0.copy()
    Bu = B @ u
    norms = np.linalg.norm(B, axis=1)
    # Bounds at the start's value, and rows tight at once, make steps of length zero that can
    # cycle: each bound gets a distinct slack of order 1e-10 of its row's scale (the classic
    # perturbation against degeneracy; the violation it allows is of that order).
    v = np.maximum(v, Bu) + 1e-10 * norms * (1.0 + np.linalg.norm(u)) * (1.0 + np.arange(len(v)) / max(len(v), 1))
    tiny = 1e-12 * (norms + 1e-300)
    work, Z = [], np.empty((n, 0))
    for iteration in range(1, max_iter + 1):
        if work:
            S = Z.T @ Z
            try:
                mu = np.linalg.solve(S, B[work] @ free - v[work])
            except np.linalg.LinAlgError:
                mu = np.linalg.lstsq(S, B[work] @ free - v[work], rcond=None)[0]
            target = free - solve_triangular(L, Z @ mu, lower=True, trans="T")
        else:
            target, mu = free, np.zeros(0)
        d = target - u
        if np.linalg.norm(d) <= 1e-10 * (1.0 + np.linalg.norm(u)):
            if not work or mu.min() >= -1e-10 * (1.0 + np.abs(mu).max()):
                return _safeguarded(A, y, B, v, u0, u, iteration, True)
            drop = int(np.argmin(mu))
            work.pop(drop)
            Z = np.delete(Z, drop, axis=1)
            continue
        Bd = B @ d
        blocking = Bd > tiny
        blocking[work] = False
        step, i = 1.0, -1
        if blocking.any():
            rows = np.flatnonzero(blocking)
            ratio = np.maximum(v[rows] - Bu[rows], 0.0) / Bd[rows]
            k = int(np.argmin(ratio))
            if ratio[k] < 1.0:
                step, i = float(ratio[k]), int(rows[k])
        u += step * d
        Bu += step * Bd
        if i >= 0:
            work.append(i)
            Z = np.column_stack([Z, solve_triangular(L, B[i], lower=True)])
    return _safeguarded(A, y, B, v, u0, u, max_iter, False)


def _safeguarded(A, y, B, v, u0, u, iterations, converged):
    """``u``, or the start where rounding took ``u`` outside the bounds or uphill (a degenerate
    corner: more bounds tight than unknowns, nearly dependent), flagged as not converged."""
    size = 1.0 + np.linalg.norm(u0)
    outside = np.any(B @ u - v > 1e-9 * (np.linalg.norm(B, axis=1) + 1e-300) * size)
    if outside or np.linalg.norm(A @ u - y) > np.linalg.norm(A @ u0 - y) * (1 + 1e-12) + 1e-300:
        return u0, iterations, False
    return u, iterations, converged


def relu_lsq(A, y, B, v, u0, *, ridge=1e-9, max_iter=100):
    """``argmin ||A u - y||^2 + ||max(0, B u - v)||^2`` from ``u0``: the re-fit with the inactive
    rows' ReLU outputs in the error (``refit_on_support(..., inactive="relu")``; ``v`` is the
    pre-activation's offset, 0 when the bias is fitted).  The engine's ``refit_support`` with
    ``inactive="relu"`` takes the same steps.

    The function is convex and piecewise quadratic: on the rows of ``B`` with a positive value
    it is the least squares with those rows' targets at ``v``, so the (semismooth) Newton step
    is that least squares' solution; it is taken whole when it lowers the function and halved
    until it does otherwise, and the method stops at a full step whose rows are the ones it was
    computed on (the minimiser).  The ridge ``r ||u||^2`` (``r = ridge`` times the mean diagonal
    of ``A^T A``, plus ridge) is part of the function minimised.  Returns ``(u, iterations,
    converged)``; ``u`` errs no more than ``u0``."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    y, v = np.asarray(y, np.float64), np.asarray(v, np.float64)
    n = A.shape[1]
    GA = A.T @ A
    r = ridge * (np.trace(GA) / n + 1.0)
    GA[np.diag_indices(n)] += r
    c = A.T @ y
    u0 = np.array(u0, np.float64)
    u = u0.copy()
    Au, Bu = A @ u, B @ u - v

    def value(a, b, w):
        return float(np.sum((a - y) ** 2) + np.sum(np.maximum(b, 0.0) ** 2) + r * (w @ w))

    f = value(Au, Bu, u)
    f0 = float(np.sum((Au - y) ** 2) + np.sum(np.maximum(Bu, 0.0) ** 2))
    iterations, converged = 0, False
    for iterations in range(1, max_iter + 1):
        counted = Bu > 0
        Bc = B[counted]
        d = np.linalg.solve(GA + Bc.T @ Bc, c + Bc.T @ v[counted]) - u
        if np.linalg.norm(d) <= 1e-12 * (1.0 + np.linalg.norm(u)):
            converged = True
            break
        Ad, Bd = A @ d, B @ d
        step = 1.0
        f_new = value(Au + Ad, Bu + Bd, u + d)
        while not f_new < f and step > 1e-10:
            step *= 0.5
            f_new = value(Au + step * Ad, Bu + step * Bd, u + step * d)
        if not f_new < f:       # Newton's direction descends unless at the minimiser: rounding
            converged = True
            break
        u, Au, Bu, f = u + step * d, Au + step * Ad, Bu + step * Bd, f_new
        if step == 1.0 and np.array_equal(Bu > 0, counted):
            converged = True
            break
    if not np.sum((Au - y) ** 2) + np.sum(np.maximum(Bu, 0.0) ** 2) <= f0 * (1 + 1e-12) + 1e-300:
        return u0, iterations, False
    return u, iterations, converged
