"""The engine runs the same iteration as the numpy reference (the executable spec)."""
import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim import reference

FIXED = dict(adaptive_rho=False, alpha=1.0, polish=False, tol=0.0)


@pytest.mark.parametrize("variant", [
    dict(mode="relu", constraint="joint", penalty="l1"),
    dict(mode="relu", constraint="neuron", penalty="l1"),
    dict(mode="linear", constraint="joint", penalty="l1"),
    dict(mode="relu", constraint="joint", penalty="group"),
    dict(mode="relu", constraint="joint", penalty="l1", lam=20.0),
    dict(mode="relu", constraint="joint", penalty="l1", inactive="relu"),
    dict(mode="relu", constraint="neuron", penalty="l1", inactive="relu"),
    dict(mode="relu", constraint="joint", penalty="group", inactive="relu"),
    dict(mode="relu", constraint="joint", penalty="l1", lam=20.0, inactive="relu"),
])
def test_same_iterates_fixed_rho(variant):
    # (the rows form: the compressed one runs the ADMM on other rows, see test_compressed.py)
    X, Y, W, b = relu_layer(3, P=200, n_in=15, M=5)
    if variant["mode"] == "linear":
        Y = X @ W + b
    Xs = np.hstack([X, np.ones((len(X), 1))])
    eps = 0.05 * (np.linalg.norm(Y, axis=0) if variant["constraint"] == "neuron" else np.linalg.norm(Y))
    ref = reference.solve(Xs, Y, eps,
                          mode=variant["mode"], constraint=variant["constraint"],
                          penalty=variant["penalty"], lam=variant.get("lam"),
                          inactive=variant.get("inactive", "bounded"), bias_row=15,
                          max_iter=50, record=True, rho=3.0, **FIXED)
    for k in (1, 2, 10, 50):
        with pytest.warns(nettrim.ConvergenceWarning):
            res = nettrim.prune_layer(X, Y, eps=eps,
                                      dtype="float64", max_iter=k, rho=3.0, form="rows", **variant, **FIXED)
        Z2 = ref.history[k - 1]
        scale = max(np.abs(Z2).max(), 1e-12)
        assert np.abs(res.U - Z2).max() <= 1e-8 * scale, k


@pytest.mark.parametrize("inactive", ["bounded", "relu"])
def test_same_result_with_adaptation_and_polish(inactive):
    X, Y, W, b = relu_layer(4, P=300, n_in=20, M=6)
    Xs = np.hstack([X, np.ones((len(X), 1))])
    res = nettrim.prune_layer(X, Y, eps_rel=0.05, dtype="float64", inactive=inactive)
    ref = reference.solve(Xs, Y, res.eps[0], bias_row=20, inactive=inactive)
    assert res.iterations == ref.iterations
    np.testing.assert_allclose(res.U, ref.U, atol=1e-7 * np.abs(ref.U).max())
