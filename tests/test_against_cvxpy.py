"""Every variant of docs/formulation.rst, "The program of one layer", against a general convex solver (Clarabel)."""
import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim.metrics import constraint_violations, objective

cp = pytest.importorskip("cvxpy")


def cvxpy_optimum(X, Y, eps, *, mode, constraint, penalty, lam=None, V=None, inactive="bounded"):
    P, n_in = X.shape
    M = Y.shape[1]
    Xs = np.hstack([X, np.ones((P, 1))])
    U = cp.Variable((n_in + 1, M))
    A = Xs @ U
    mask = (Y > 0).astype(float) if mode == "relu" else np.ones_like(Y)
    cons = []
    fit = cp.multiply(mask, A - Y)
    if mode == "relu" and inactive == "relu":
        # The inactive outputs' ReLU outputs join the error: S >= max(A, 0) on Omega^c.
        S = cp.Variable((P, M), nonneg=True)
        cons.append(S >= A)
        fit = fit + cp.multiply(1 - mask, S)
    elif mode == "relu":
        Vb = np.zeros_like(Y) if V is None else V
        cons.append(cp.multiply(1 - mask, A - Vb) <= 0)
    if penalty == "l1":
        obj = cp.sum(cp.abs(U))
    else:
        obj = cp.sum(cp.norm(U[:n_in], 2, axis=1)) + cp.sum(cp.abs(U[n_in]))
    if lam is not None:
        obj = obj + lam / 2 * cp.sum_squares(fit)
    elif constraint == "joint":
        cons.append(cp.norm(fit, "fro") <= eps[0])
    else:
        cons += [cp.norm(fit[:, m]) <= eps[m] for m in range(M)]
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == cp.OPTIMAL
    return prob.value


def case_layer(case, seed, P, n_in, M, perturb_seed):
    """``(settings, X, Y, V)`` of one CASES entry: a ReLU layer (linear outputs in linear mode),
    and for the cascade a perturbed input, as the pruned network would give: V = W^T Xhat."""
    case = dict(case)
    cascade = case.pop("cascade", False)
    X, Y, W, b = relu_layer(seed, P=P, n_in=n_in, M=M)
    if case["mode"] == "linear":
        Y = X @ W + b
    V = None
    if cascade:
        Xhat = X + 0.05 * np.random.default_rng(perturb_seed).standard_normal(X.shape)
        V, X = Xhat @ W + b, Xhat
    return case, X, Y, V


CASES = [
    dict(mode="relu", constraint="joint", penalty="l1"),
    dict(mode="relu", constraint="neuron", penalty="l1"),
    dict(mode="linear", constraint="joint", penalty="l1"),
    dict(mode="relu", constraint="joint", penalty="group"),
    dict(mode="relu", constraint="joint", penalty="l1", lam=50.0),
    dict(mode="relu", constraint="joint", penalty="l1", cascade=True),
    dict(mode="relu", constraint="joint", penalty="l1", inactive="relu"),
    dict(mode="relu", constraint="neuron", penalty="l1", inactive="relu"),
    dict(mode="relu", constraint="joint", penalty="group", inactive="relu"),
    dict(mode="relu", constraint="joint", penalty="l1", lam=50.0, inactive="relu"),
]
SETTINGS_OF = ("mode", "constraint", "penalty", "inactive")


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_clarabel(case, dtype):
    case, X, Y, V = case_layer(case, 1, 400, 24, 6, perturb_seed=2)
    res = nettrim.prune_layer(X, Y, eps_rel=0.1, V=V, dtype=dtype, **case)
    assert res.status == "converged"
    lam = case.get("lam")
    opt = cvxpy_optimum(X, Y, res.eps, V=V, lam=lam, **{k: case[k] for k in SETTINGS_OF if k in case})
    Xs = np.hstack([X, np.ones((len(X), 1))])
    value = objective(res.U, case["penalty"], bias_row=X.shape[1])
    counted = case.get("inactive") == "relu"
    if lam is not None:
        omega = Y > 0
        A = Xs @ res.U
        value += lam / 2 * np.sum(np.where(omega, A - Y, np.maximum(A, 0) if counted else 0) ** 2)
    assert abs(value - opt) <= 1e-3 * abs(opt), (value, opt)
    # The returned matrix itself meets the constraints (checked independently of the engine).
    omega = Y > 0 if case["mode"] == "relu" else np.ones_like(Y, bool)
    v_om, v_c = constraint_violations(Xs @ res.U, Y, omega, (np.zeros_like(Y) if V is None else V)
                                      if case["mode"] == "relu" else None, res.eps,
                                      case["constraint"], regularized=lam is not None,
                                      inactive=case.get("inactive", "bounded"))
    assert v_om <= 1e-3 and v_c <= 1e-3
    # ... and the engine reports those same violations.
    assert res.omega_violation == pytest.approx(v_om, abs=2e-4)
    assert res.complement_violation == pytest.approx(v_c, abs=2e-4)


CONSTRAINED = [c for c in CASES if "lam" not in c]


@pytest.mark.parametrize("case", CONSTRAINED, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dual_bound_is_a_certificate(case, dtype):
    """The reported dual bound lies below Clarabel's optimum, and with gap_tol the solve stops
    only once the optimum is pinned between the bound and the returned objective."""
    case, X, Y, V = case_layer(case, 3, 300, 20, 5, perturb_seed=4)
    gap_tol = 1e-3 if dtype == "float64" else 0.0   # float32 duals are too noisy to certify 1e-3
    res = nettrim.prune_layer(X, Y, eps_rel=0.1, V=V, dtype=dtype, gap_tol=gap_tol, **case)
    assert res.status == "converged"
    opt = cvxpy_optimum(X, Y, res.eps, V=V, **{k: case[k] for k in SETTINGS_OF if k in case})
    assert np.isfinite(res.dual_bound) and res.dual_bound > 0
    assert res.dual_bound <= opt * (1 + 1e-6), (res.dual_bound, opt)
    value = objective(res.U, case["penalty"], bias_row=X.shape[1])
    assert res.gap == pytest.approx((res.objective - res.dual_bound) / res.dual_bound, rel=1e-6, abs=1e-12)
    assert res.objective == pytest.approx(value, rel=1e-5)
    if gap_tol:
        assert res.gap <= gap_tol
        assert res.dual_bound <= opt <= value * (1 + 1e-6)


def test_gap_tol_stops_later_than_the_residual_rule_and_closes_the_gap():
    X, Y, W, b = relu_layer(5, P=400, n_in=30, M=8)
    loose = nettrim.prune_layer(X, Y, eps_rel=0.05, dtype="float64")
    tight = nettrim.prune_layer(X, Y, eps_rel=0.05, dtype="float64", gap_tol=1e-4)
    assert tight.status == "converged" and tight.gap <= 1e-4
    assert tight.iterations >= loose.iterations
    assert tight.objective <= loose.objective * (1 + 1e-4)
