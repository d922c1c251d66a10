"""The program of one layer in the forms other solvers take: a cvxpy problem, and a CBF file.

For people who bring their own solver, and for :mod:`nettrim.benchmark`, which runs the
reference solvers on it.  Both state the program of docs/formulation.rst, "The program of one
layer", over ``U`` of shape (N, M) with ``Xs`` the inputs with the bias column appended:

    min ||U||_1  s.t.  ||P_Omega(Xs U - Y)|| <= eps  (joint; per column with constraint="neuron"),
                       (Xs U)_{Omega^c} <= V          (inactive="bounded"; V = 0 by default),

with ``inactive="relu"`` the inactive outputs' ReLU outputs counted in the ball instead, and
without the split for a linear layer (``relu=False``).  cvxpy is an optional dependency
(``pip install "nettrim[bench]"``): it is imported where a function needs it.
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidArgument

CBF_MAX_NONZEROS = 50_000_000
"""The largest program :func:`write_cbf` writes, in nonzero coefficients (each a line of the file,
about 30 bytes): 1.5 GB of text, beyond what the solvers that read CBF load comfortably."""


def _cvxpy():
    try:
        import cvxpy
    except ImportError:
        raise ImportError("cvxpy is needed for the layer program as a cvxpy problem: pip install "
                          "\"nettrim[bench]\" (cvxpy, Clarabel, SCS)") from None
    return cvxpy


def to_cvxpy(Xs, Y, eps, *, relu=True, constraint="joint", penalty="l1", inactive="bounded", V=None, lam=None,
             bias_row=None):
    """The layer program as a ``cvxpy.Problem``, and its variable ``U`` (N, M): ``(problem, U)``.

    ``eps``: one value (joint) or one per output (neuron); ignored with ``lam`` (the regularized
    form, ``||U||_1 + lam/2 ||P_Omega(Xs U - Y)||^2``).  ``penalty="group"``: the rows' 2-norms,
    the ``bias_row`` in l1."""
    cp = _cvxpy()
    Xs, Y = np.asarray(Xs, np.float64), np.asarray(Y, np.float64)
    N, M = Xs.shape[1], Y.shape[1]
    U = cp.Variable((N, M), name="U")
    A = Xs @ U
    omega = (Y > 0) if relu else np.ones(Y.shape, bool)
    fit = cp.multiply(omega.astype(float), A - Y)
    constraints = []
    if relu and inactive == "relu":
        S = cp.Variable(Y.shape, nonneg=True, name="S")     # S >= max(A, 0) on Omega^c
        constraints.append(cp.multiply((~omega).astype(float), S - A) >= 0)
        fit = fit + cp.multiply((~omega).astype(float), S)
    elif relu:
        bound = np.zeros(Y.shape) if V is None else np.asarray(V, np.float64)
        constraints.append(cp.multiply((~omega).astype(float), A - bound) <= 0)
    if penalty == "l1":
        objective = cp.sum(cp.abs(U))
    else:
        rows = [n for n in range(N) if n != bias_row]
        objective = cp.sum(cp.norm(U[rows], 2, axis=1)) + (cp.sum(cp.abs(U[bias_row])) if bias_row is not None else 0)
    if lam is not None:
        objective = objective + lam / 2 * cp.sum_squares(fit)
    else:
        e = np.atleast_1d(np.asarray(eps, np.float64))
        if constraint == "joint":
            constraints.append(cp.norm(fit, "fro") <= float(e[0]))
        else:
            constraints += [cp.norm(fit[:, m]) <= float(e[m]) for m in range(M)]
    return cp.Problem(cp.Minimize(objective), constraints), U


def cbf_nonzeros(Xs, Y, *, relu=True):
    """Nonzero coefficients of the CBF file of this layer (an estimate from the shapes and the
    active set: every input of a row counts)."""
    N, M = np.shape(Xs)[1], np.shape(Y)[1]
    rows = np.size(Y)      # each entry of X U appears once: in the ball (Omega) or its bound (Omega^c)
    return int(rows * N + 4 * N * M + (2 * int(np.sum(np.asarray(Y) <= 0)) if relu else 0))


def write_cbf(path, Xs, Y, eps, *, relu=True, constraint="joint", inactive="bounded", V=None):
    """Write the layer program (l1 penalty, the constrained form) as a Conic Benchmark Format file
    (CBF version 3: read by MOSEK, SCS's and Clarabel's CBF readers, and the CBLIB tools).

    Variables, in order: ``u`` (N*M, free; column m of U is ``u[m*N:(m+1)*N]``), ``t`` (N*M,
    nonnegative; ``t >= |u|``), and with ``inactive="relu"`` one nonnegative ``s`` per inactive
    output (``s >= (Xs U)`` there, counted in the ball).  The objective is ``sum(t)``; the cones are
    linear (``t - u``, ``t + u``, the bound ``V - Xs U`` on Omega^c) and one quadratic cone per ball
    (``(eps, P_Omega(Xs U - Y), s)``).  Programs of more than ``CBF_MAX_NONZEROS`` coefficients
    are refused: the file would be larger than the solvers load comfortably."""
    Xs, Y = np.asarray(Xs, np.float64), np.asarray(Y, np.float64)
    P, N = Xs.shape
    M = Y.shape[1]
    nonzeros = cbf_nonzeros(Xs, Y, relu=relu)
    if nonzeros > CBF_MAX_NONZEROS:
        raise InvalidArgument(f"path: this layer's program has about {nonzeros:,} nonzero coefficients, more than "
                              f"the {CBF_MAX_NONZEROS:,} a CBF file is written for; use fewer calibration samples")
    e = np.atleast_1d(np.asarray(eps, np.float64))
    omega = (Y > 0) if relu else np.ones(Y.shape, bool)
    counted = relu and inactive == "relu"
    bound = np.zeros(Y.shape) if V is None else np.asarray(V, np.float64)

    def u(n, m):             # the variables' numbering, as documented
        return m * N + n

    t0 = N * M
    slack = {}
    if counted:
        for p, m in zip(*np.nonzero(~omega)):
            slack[(p, m)] = 2 * N * M + len(slack)
    n_vars = 2 * N * M + len(slack)

    objective = [(t0 + i, 1.0) for i in range(N * M)]
    A, b = [], []           # (row, var, value), (row, value)
    row = 0
    for i in range(N * M):  # t - u >= 0, t + u >= 0
        A += [(row, t0 + i, 1.0), (row, i, -1.0), (row + 1, t0 + i, 1.0), (row + 1, i, 1.0)]
        row += 2
    inactive_rows = 0
    for m in range(M):
        for p in np.flatnonzero(~omega[:, m]):
            if counted:      # s - (Xs U)_pm >= 0
                A.append((row, slack[(p, m)], 1.0))
                A += [(row, u(n, m), -x) for n, x in enumerate(Xs[p]) if x != 0]
            else:            # V_pm - (Xs U)_pm >= 0
                A += [(row, u(n, m), -x) for n, x in enumerate(Xs[p]) if x != 0]
                if bound[p, m] != 0:
                    b.append((row, bound[p, m]))
            row += 1
            inactive_rows += 1
    linear_rows = row
    cones = [("L+", linear_rows)] if linear_rows else []
    balls = [list(range(M))] if constraint == "joint" else [[m] for m in range(M)]
    for k, columns in enumerate(balls):
        first = row
        b.append((row, float(e[0] if constraint == "joint" else e[columns[0]])))
        row += 1
        for m in columns:
            for p in np.flatnonzero(omega[:, m]):       # (Xs u_m)_p - Y_pm
                A += [(row, u(n, m), x) for n, x in enumerate(Xs[p]) if x != 0]
                if Y[p, m] != 0:
                    b.append((row, -Y[p, m]))
                row += 1
            if counted:
                for p in np.flatnonzero(~omega[:, m]):
                    A.append((row, slack[(p, m)], 1.0))
                    row += 1
        cones.append(("Q", row - first))
    var_cones = [("F", N * M), ("L+", N * M + len(slack))]
    with open(path, "w") as f:
        f.write("# nettrim: the Net-Trim program of one layer (see nettrim.standard_forms.write_cbf)\n")
        f.write(f"# N={N} inputs (bias included), M={M} outputs, P={P} samples, constraint={constraint}, "
                f"{'relu, inactive=' + inactive if relu else 'linear'}\n")
        f.write("VER\n3\n\nOBJSENSE\nMIN\n\n")
        f.write(f"VAR\n{n_vars} {len(var_cones)}\n" + "".join(f"{k} {n}\n" for k, n in var_cones) + "\n")
        f.write(f"CON\n{row} {len(cones)}\n" + "".join(f"{k} {n}\n" for k, n in cones) + "\n")
        f.write(f"OBJACOORD\n{len(objective)}\n" + "".join(f"{j} {float(v)!r}\n" for j, v in objective) + "\n")
        f.write(f"ACOORD\n{len(A)}\n" + "".join(f"{i} {j} {float(v)!r}\n" for i, j, v in A) + "\n")
        f.write(f"BCOORD\n{len(b)}\n" + "".join(f"{i} {float(v)!r}\n" for i, v in b))
    return dict(variables=n_vars, rows=row, nonzeros=len(A), inactive_rows=inactive_rows)
