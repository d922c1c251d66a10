"""Independent checks of a returned layer: constraint violations, objective, error.

These recompute everything from the returned matrix and the data, never from solver
internals, so tests and reports can trust them (the SCS habit)."""
from __future__ import annotations

import numpy as np


def _rms_on(Y, omega):
    count = int(omega.sum())
    if count == 0:
        return 1.0
    return float(np.sqrt(np.sum(np.where(omega, Y, 0.0).astype(np.float64) ** 2) / count))


def constraint_violations(A, Y, omega, V, eps, constraint="joint", *, regularized=False, inactive="bounded"):
    """Violations of the Net-Trim constraints by pre-activations ``A = Xs @ U``.

    Returns ``(omega_violation, complement_violation)``:

    - on Omega, how far ``||(A - Y)_Omega||`` exceeds ``eps``, relative to ``eps`` (per
      neuron in the neuron variant, the worst neuron); where ``eps`` is 0, relative to
      the norm of the outputs instead;
    - on Omega^c, the largest ``A - V`` above zero, relative to the RMS of Y on Omega.
      ``V=None`` means no such constraint (linear layers).

    ``inactive="relu"``: Omega^c has no bound (its violation is 0) and its ReLU outputs,
    ``max(A, 0)``, count in the error with Omega's.
    """
    A = np.asarray(A, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    counted = inactive == "relu" and V is not None
    D = np.where(omega, A - Y, np.maximum(A, 0.0) if counted else 0.0)
    if regularized:
        v_omega = 0.0
    elif constraint == "joint":
        eps = float(np.asarray(eps).reshape(()))
        denom = eps if eps > 0 else max(float(np.linalg.norm(np.where(omega, Y, 0.0))), 1e-30)
        v_omega = max(0.0, float(np.linalg.norm(D)) - eps) / denom
    else:
        eps = np.broadcast_to(np.asarray(eps, dtype=np.float64), (Y.shape[1],))
        ynorm = np.linalg.norm(np.where(omega, Y, 0.0), axis=0)
        denom = np.where(eps > 0, eps, np.where(ynorm > 0, ynorm, 1.0))
        v_omega = float(np.max(np.maximum(0.0, np.linalg.norm(D, axis=0) - eps) / denom, initial=0.0))
    if V is None or counted:
        v_comp = 0.0
    else:
        excess = np.where(omega, -np.inf, A - np.asarray(V, dtype=np.float64))
        v_comp = max(0.0, float(excess.max(initial=-np.inf))) / _rms_on(Y, omega)
    return v_omega, v_comp


def objective(U, penalty="l1", bias_row=None):
    """||U||_1, or the group norm over rows (the bias row, if any, counted in l1)."""
    U = np.asarray(U, dtype=np.float64)
    if penalty == "l1":
        return float(np.abs(U).sum())
    rows = [r for r in range(U.shape[0]) if r != bias_row % U.shape[0]] if bias_row is not None \
        else list(range(U.shape[0]))
    value = float(np.linalg.norm(U[rows], axis=1).sum())
    if bias_row is not None:
        value += float(np.abs(U[bias_row]).sum())
    return value


def relative_error(A, Y, mode="relu"):
    """``||act(A) - Y||_F / ||Y||_F`` with act = ReLU or identity."""
    out = np.maximum(A, 0) if mode == "relu" else A
    denom = float(np.linalg.norm(Y))
    return float(np.linalg.norm(out - Y)) / (denom if denom > 0 else 1.0)
