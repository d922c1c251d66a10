"""The CUDA backend against the CPU engine and Clarabel; skipped without a GPU.

Every variant (joint/neuron constraint, relu/linear, l1/group penalty, a cascade bound V)
is solved by both backends on small layers; both must converge, the CUDA result must
meet the constraints (checked here in float64, independently of the engine) and its
objective must agree with the CPU engine's to a tolerance per dtype.

NETTRIM_TEST_CUDA_BACKEND=cpu puts the CPU backend in the CUDA backend's place: a check
of these tests' own expectations on a machine without a GPU.
"""
import os
import warnings

import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim import _core
from nettrim.metrics import constraint_violations, objective

GPU = os.environ.get("NETTRIM_TEST_CUDA_BACKEND") or "cuda"
needs_gpu = pytest.mark.skipif(GPU not in nettrim.backends(),
                               reason="no CUDA backend in this build, or no CUDA device visible")

# Objectives of the CUDA and CPU results, relative: each solve stops at tol = 1e-3 of its
# own, and the iterates' roundings differ (FMA, GEMM blocking, reduction order).
OBJECTIVE_TOL = {"float64": 2e-3, "float32": 1e-2}

CASES = [
    dict(mode="relu", constraint="joint", penalty="l1"),
    dict(mode="relu", constraint="neuron", penalty="l1"),
    dict(mode="linear", constraint="joint", penalty="l1"),
    dict(mode="linear", constraint="neuron", penalty="group"),
    dict(mode="relu", constraint="joint", penalty="group"),
    dict(mode="relu", constraint="neuron", penalty="group"),
    dict(mode="relu", constraint="joint", penalty="l1", cascade=True),
]


def layer(case, seed=1, P=400, n_in=24, M=6):
    X, Y, W, b = relu_layer(seed, P=P, n_in=n_in, M=M)
    if case["mode"] == "linear":
        Y = X @ W + b
    V = None
    if case.get("cascade"):  # a perturbed input, as the pruned network would give: V = W^T Xhat
        Xhat = X + 0.05 * np.random.default_rng(2).standard_normal(X.shape)
        V = Xhat @ W + b
        X = Xhat
    return X, Y, V


def violations(X, Y, V, res, case):
    Xs = np.hstack([X, np.ones((len(X), 1))])
    relu = case["mode"] == "relu"
    omega = Y > 0 if relu else np.ones_like(Y, bool)
    bound = (np.zeros_like(Y) if V is None else V) if relu else None
    return constraint_violations(Xs @ res.U.astype(np.float64), Y, omega, bound, res.eps, case["constraint"])


@needs_gpu
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_matches_cpu(case, dtype):
    X, Y, V = layer(case)
    kw = {k: v for k, v in case.items() if k != "cascade"}
    cpu = nettrim.prune_layer(X, Y, eps_rel=0.1, V=V, dtype=dtype, backend="cpu", **kw)
    gpu = nettrim.prune_layer(X, Y, eps_rel=0.1, V=V, dtype=dtype, backend=GPU, **kw)
    assert gpu.backend == GPU
    assert cpu.status == "converged" and gpu.status == "converged", (cpu.status, gpu.status)
    assert gpu.objective == pytest.approx(cpu.objective, rel=OBJECTIVE_TOL[dtype])
    v_om, v_c = violations(X, Y, V, gpu, case)
    assert v_om <= 1e-3 and v_c <= 1e-3
    # The engine's report on the CUDA result is that matrix's, as on the CPU.
    assert gpu.omega_violation == pytest.approx(v_om, abs=2e-4)
    assert gpu.complement_violation == pytest.approx(v_c, abs=2e-4)
    # Exactly sparse: the pattern differs from the CPU's only where entries are tiny.
    top = np.abs(cpu.U).max()
    differ = (cpu.U != 0) != (gpu.U != 0)
    assert np.all(np.maximum(np.abs(cpu.U), np.abs(gpu.U))[differ] <= 0.05 * top)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_matches_clarabel(dtype):
    cp = pytest.importorskip("cvxpy")
    X, Y, _, _ = relu_layer(3, P=300, n_in=16, M=5)
    res = nettrim.prune_layer(X, Y, eps_rel=0.1, dtype=dtype, backend=GPU)
    assert res.status == "converged"
    P, n_in = X.shape
    Xs = np.hstack([X, np.ones((P, 1))])
    U = cp.Variable((n_in + 1, Y.shape[1]))
    A = Xs @ U
    mask = (Y > 0).astype(float)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.abs(U))),
                      [cp.norm(cp.multiply(mask, A - Y), "fro") <= res.eps[0], cp.multiply(1 - mask, A) <= 0])
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == cp.OPTIMAL
    value = objective(res.U, "l1", bias_row=n_in)
    assert abs(value - prob.value) <= (1e-3 if dtype == "float64" else 3e-3) * abs(prob.value), (value, prob.value)
    # The certificate from the device's iterates lies below the optimum.
    if np.isfinite(res.dual_bound):
        assert res.dual_bound <= prob.value * (1 + 1e-6)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_solution_path_and_warm_start(dtype):
    X, Y, W, b = relu_layer(4, P=500, n_in=30, M=8)
    grid = [0.03, 0.06, 0.12, 0.24]
    paths = {}
    for backend in ("cpu", GPU):
        solver = nettrim.LayerSolver(X, Y, dtype=dtype, backend=backend)
        paths[backend] = solver.solve_path(eps_rel=grid)
        assert all(s == "converged" for s in paths[backend].status)
        # The last problem again from the device's saved state: settled at once.
        solver.warm_start(solver.state())
        again = solver.solve(eps_rel=grid[-1])
        assert again.status == "converged" and again.iterations <= 20
    for c, g in zip(paths["cpu"], paths[GPU]):
        assert g.objective == pytest.approx(c.objective, rel=OBJECTIVE_TOL[dtype])


@needs_gpu
def test_cuda_from_the_trained_weights_and_a_new_target():
    X, Y, W, b = relu_layer(5, P=400, n_in=20, M=6)
    solver = nettrim.LayerSolver(X, W=W, b=b, dtype="float32", backend=GPU)
    first = solver.solve(eps_rel=0.05)
    assert first.status == "converged"
    X2, Y2, W2, b2 = relu_layer(6, P=400, n_in=20, M=4)
    solver.update_target(np.maximum(X @ W2 + b2, 0))    # a new width: the device buffers follow
    second = solver.solve(eps_rel=0.05)
    ref = nettrim.prune_layer(X, np.maximum(X @ W2 + b2, 0), eps_rel=0.05, dtype="float32")
    assert second.status == "converged"
    assert second.objective == pytest.approx(ref.objective, rel=OBJECTIVE_TOL["float32"])


@pytest.mark.skipif("cuda" not in nettrim.backends(), reason="no CUDA backend in this build, or no CUDA device")
def test_tf32_is_opt_in_and_checked_in_float64():
    X, Y, _, _ = relu_layer(7, P=600, n_in=40, M=8)
    plain = nettrim.prune_layer(X, Y, eps_rel=0.1, backend="cuda")
    assert plain.backend == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        fast = nettrim.prune_layer(X, Y, eps_rel=0.1, backend="cuda:tf32")
    assert fast.backend == "cuda:tf32"
    # Whatever TF32 did to the iterations, the verdict is the returned matrix's, in float64.
    v_om, v_c = violations(X, Y, None, fast, dict(mode="relu", constraint="joint"))
    assert fast.omega_violation == pytest.approx(v_om, abs=2e-4)
    assert fast.complement_violation == pytest.approx(v_c, abs=2e-4)
    if fast.status == "converged":
        assert fast.objective == pytest.approx(plain.objective, rel=2e-2)


@pytest.mark.skipif("cuda" not in nettrim.backends(), reason="no CUDA backend in this build, or no CUDA device")
def test_whole_network_targets_on_cuda_use_the_bounded_program():
    # The CUDA backend has no inactive="relu": "relu" is refused before anything runs, and
    # "auto" (the default) runs the bounded program only, and says so.
    from nettrim.network import from_arrays
    rng = np.random.default_rng(0)
    net = from_arrays([rng.standard_normal((12, 10)), rng.standard_normal((10, 4))], [np.zeros(10), np.zeros(4)])
    X = rng.standard_normal((300, 12))
    with pytest.raises(nettrim.InvalidArgument, match=r"^inactive: 'relu' needs the cpu backend"):
        nettrim.prune_network(net, X, sparsity=0.5, inactive="relu", backend="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.TargetWarning)
        pruned, report = nettrim.prune_network(net, X, sparsity=0.5, backend="cuda")
    assert any("ran the bounded program only" in n for n in report.notes)
    assert pruned.nnz() <= net.size() // 2          # a requested sparsity is a ceiling


# --- without a GPU --------------------------------------------------------------------------
def test_backends_lists_cuda_only_when_built_and_present():
    names = nettrim.backends()
    assert names[0] == "cpu"
    present = bool(getattr(_core, "cuda", False)) and _core.cuda_device_count() > 0
    assert ("cuda" in names) == present


@pytest.mark.skipif("cuda" in nettrim.backends(), reason="a CUDA device is present")
@pytest.mark.parametrize("name", ["cuda", "cuda:tf32"])
def test_cuda_absent_is_an_invalid_argument(name):
    X, Y, _, _ = relu_layer(0, P=60, n_in=5, M=2)
    with pytest.raises(nettrim.InvalidArgument, match=r"^backend: .*cuda"):
        nettrim.prune_layer(X, Y, backend=name)
    with pytest.raises(ValueError, match="backend: "):
        nettrim.LayerSolver(X, Y, backend=name, dtype="float64")
