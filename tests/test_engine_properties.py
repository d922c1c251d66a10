"""Properties of the engine: recovery, precision, threads, warm starts, edge cases."""
import os
import warnings

import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim.metrics import constraint_violations


def test_recovers_sparse_teacher():
    # docs/formulation.rst, "What theory promises": a sparse teacher, Gaussian inputs, enough samples.
    X, Y, W, b = relu_layer(7, P=600, n_in=40, M=5, sparse_teacher=0.15)
    res = nettrim.prune_layer(X, Y, eps_rel=1e-3, dtype="float64", tol=1e-4, dual_tol=1e-3)
    support = np.abs(res.weight) > 1e-3 * np.abs(W).max()
    assert np.array_equal(support, W != 0)
    np.testing.assert_allclose(res.weight, W, atol=0.02 * np.abs(W).max())
    np.testing.assert_allclose(res.bias, b, atol=0.02 * np.abs(W).max())


def test_float32_agrees_with_float64():
    X, Y, W, b = relu_layer(8, P=500, n_in=30, M=8)
    r64 = nettrim.prune_layer(X, Y, dtype="float64")
    r32 = nettrim.prune_layer(X, Y, dtype="float32")
    assert r32.U.dtype == np.float32 and r64.U.dtype == np.float64
    assert r32.objective == pytest.approx(r64.objective, rel=2e-3)
    assert r32.omega_violation <= 1e-3 and r32.complement_violation <= 1e-3


def test_thread_count_does_not_change_the_answer():
    X, Y, W, b = relu_layer(9, P=2000, n_in=60, M=40)
    r1 = nettrim.prune_layer(X, Y, dtype="float64", threads=1)
    r2 = nettrim.prune_layer(X, Y, dtype="float64", threads=2)
    assert r1.threads == 1 and r2.threads == 2
    assert r1.iterations == r2.iterations
    np.testing.assert_allclose(r1.U, r2.U, atol=1e-9 * np.abs(r1.U).max())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 processors for 2 threads")
@pytest.mark.parametrize("shape", ["set-up", "products"])
def test_thread_count_does_not_change_a_bit(shape, digits_mlp):
    """Any number of threads gives the same bits, in float32.  Two shapes where it did not:
    785 inputs on 600 samples, whose set-up (X X^T and its eigendecomposition) OpenBLAS rounded
    differently on 2 threads (1e-6 in U after one iteration), and the digits MLP's second layer
    (129 x 129 x 64 products), whose columns were cut per thread and took OpenBLAS's
    small-matrix kernel on 32 columns and not on 64 (4e-6 after one iteration)."""
    if shape == "set-up":
        X, Y, W, b = relu_layer(13, P=600, n_in=784, M=30)
    else:
        clf, Xtr, *_ = digits_mlp
        X = np.maximum(Xtr @ clf.coefs_[0] + clf.intercepts_[0], 0)
        W, b = clf.coefs_[1], clf.intercepts_[1]
        Y = np.maximum(X @ W + b, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)      # (50 iterations: the point is the bits)
        runs = [nettrim.prune_layer(X, Y, W, b, threads=t, max_iter=50) for t in (1, 2)]
    assert runs[0].threads == 1 and runs[1].threads == 2
    np.testing.assert_array_equal(runs[0].U, runs[1].U)


def test_warm_start_from_the_optimum_stops_at_once():
    X, Y, W, b = relu_layer(10, P=400, n_in=30, M=6)
    cold = nettrim.prune_layer(X, Y, dtype="float64")
    warm = nettrim.prune_layer(X, Y, dtype="float64", warm_start=cold)
    assert cold.iterations >= 50
    assert warm.iterations <= 10
    assert warm.objective == pytest.approx(cold.objective, rel=1e-3)


def test_warm_start_nearby_eps_is_faster(digits_mlp):
    clf, X, *_ = digits_mlp  # a real layer: first layer of the digits MLP
    Y = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0)
    first = nettrim.prune_layer(X, Y, eps_rel=0.05, dtype="float64")
    cold = nettrim.prune_layer(X, Y, eps_rel=0.06, dtype="float64")
    warm = nettrim.prune_layer(X, Y, eps_rel=0.06, dtype="float64", warm_start=first)
    assert warm.iterations < cold.iterations        # (in float64 the counts follow the model, not the CPU)
    assert warm.objective == pytest.approx(cold.objective, rel=2e-3)


def test_warm_start_from_trained_weights():
    X, Y, W, b = relu_layer(12, P=400, n_in=30, M=6)
    res = nettrim.prune_layer(X, Y, W, b, warm_start="W", dtype="float64")
    ref = nettrim.prune_layer(X, Y, dtype="float64")
    assert res.status == "converged"
    assert res.objective == pytest.approx(ref.objective, rel=2e-3)


def test_dead_neurons_get_zero_weights():
    X, Y, W, b = relu_layer(13, P=400, n_in=20, M=6, dead=2)
    assert not Y[:, :2].any()
    res = nettrim.prune_layer(X, Y, dtype="float64")
    assert res.status == "converged"
    assert not res.weight[:, :2].any()
    assert (X @ res.weight[:, :2] + res.bias[:2] <= 1e-9).all()  # they stay dead


def test_huge_eps_gives_zero_weights():
    X, Y, W, b = relu_layer(14, P=300, n_in=20, M=5)
    res = nettrim.prune_layer(X, Y, eps_rel=2.0, dtype="float64")
    assert res.nnz == 0 and not res.U.any()
    assert res.relative_error == pytest.approx(1.0)


def test_eps_zero_reproduces_outputs():
    X, Y, W, b = relu_layer(15, P=300, n_in=20, M=5)
    res = nettrim.prune_layer(X, Y, eps_rel=0.0, dtype="float64", max_iter=20000)
    assert res.status == "converged"
    assert res.relative_error <= 2e-3


def test_reported_violations_are_those_of_the_returned_matrix():
    X, Y, W, b = relu_layer(16, P=500, n_in=30, M=8)
    with pytest.warns(nettrim.ConvergenceWarning):
        res = nettrim.prune_layer(X, Y, dtype="float32", max_iter=30, tol=0)  # far from converged
    Xs = np.hstack([X, np.ones((len(X), 1))])
    v = constraint_violations(Xs @ res.U.astype(np.float64), Y, Y > 0, np.zeros_like(Y), res.eps)
    assert res.omega_violation == pytest.approx(v[0], rel=1e-3, abs=1e-5)
    assert res.complement_violation == pytest.approx(v[1], rel=1e-3, abs=1e-5)


def test_iteration_limit_warns_and_reports_status():
    X, Y, W, b = relu_layer(17, P=400, n_in=30, M=6)
    with pytest.warns(nettrim.ConvergenceWarning, match="max iterations"):
        res = nettrim.prune_layer(X, Y, max_iter=5)
    assert res.status == "max_iterations" and res.iterations == 5


def test_accepts_fortran_readonly_and_float32_inputs():
    X, Y, W, b = relu_layer(18, P=300, n_in=20, M=5)
    ref = nettrim.prune_layer(X, Y, dtype="float64")
    Xf = np.asfortranarray(X)
    Xf.setflags(write=False)
    Yr = Y.copy()
    Yr.setflags(write=False)
    res = nettrim.prune_layer(Xf, Yr, dtype="float64")
    np.testing.assert_array_equal(res.U, ref.U)
    res32 = nettrim.prune_layer(X.astype(np.float32), Y.astype(np.float32), dtype="float64")
    assert res32.objective == pytest.approx(ref.objective, rel=1e-4)


def test_sparse_output():
    X, Y, W, b = relu_layer(19, P=300, n_in=20, M=5)
    res = nettrim.prune_layer(X, Y, eps_rel=0.2)
    S = res.sparse_weight
    assert S.nnz == res.nnz
    np.testing.assert_array_equal(S.toarray(), res.weight)
