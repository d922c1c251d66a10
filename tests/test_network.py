"""Whole networks: parallel and cascade pruning of a ReLU MLP trained on digits."""
import os

import numpy as np
import pytest

import nettrim
from nettrim.adapters.sklearn import from_sklearn, to_sklearn
from nettrim.network import Network


def accuracy(net, X, y):
    return float(np.mean(net.predict(X) == y))


def test_forward_matches_scikit_learn(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    np.testing.assert_array_equal(net.predict(Xte), clf.predict(Xte))
    logits = net.forward(Xte)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               clf.predict_proba(Xte), atol=1e-5)


# Thresholds measured on this seeded model (test accuracy 0.989 before pruning):
# eps_rel=0.05 kept 38.6% (parallel, 0.980) and 40.6% (cascade, 0.991) of the weights.
@pytest.mark.parametrize("scheme, min_removed, max_drop", [("parallel", 0.55, 0.02), ("cascade", 0.55, 0.01)])
def test_schemes_at_fixed_eps(digits_mlp, scheme, min_removed, max_drop):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    pruned, report = nettrim.prune_network(net, Xtr, scheme=scheme, eps_rel=0.05)
    assert 1 - pruned.nnz() / net.nnz() >= min_removed
    assert accuracy(pruned, Xte, yte) >= accuracy(net, Xte, yte) - max_drop
    assert [r.nnz_after for r in report.layers] == [np.count_nonzero(l.W) for l in pruned.layers]
    for r in report.layers:
        assert r.status == "converged"
        assert r.omega_violation <= 1e-3 and r.complement_violation <= 1e-3
    # The original network is untouched.
    assert net.nnz() == sum(w.size for w in clf.coefs_)


def test_target_sparsity_for_the_network(digits_mlp):
    # Measured: cascade at 70% removed keeps 0.973 test accuracy (from 0.989).
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    pruned, report = nettrim.prune_network(net, Xtr, scheme="cascade", sparsity=0.7)
    kept = pruned.nnz() / net.nnz()
    assert 0.22 <= kept <= 0.30
    assert accuracy(pruned, Xte, yte) >= accuracy(net, Xte, yte) - 0.03


def test_target_sparsity_per_layer(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    pruned, report = nettrim.prune_network(net, Xtr, scheme="parallel", sparsity=0.6, sparsity_scope="layer")
    for r in report.layers:
        assert r.nnz_after <= 0.4 * r.nnz_before
        assert r.nnz_after >= 0.3 * r.nnz_before  # the bisection lands near the target


def test_written_back_model_and_npz_round_trip(digits_mlp, tmp_path):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    pruned, _ = nettrim.prune_network(net, Xtr, eps_rel=0.1)
    small = to_sklearn(pruned, clf)
    np.testing.assert_array_equal(small.predict(Xte), pruned.predict(Xte))
    assert np.count_nonzero(clf.coefs_[0]) == clf.coefs_[0].size  # the original is untouched
    for sparse in (False, True):
        path = tmp_path / f"m{sparse}.npz"
        pruned.save_npz(path, sparse=sparse)
        back = Network.load_npz(path)
        np.testing.assert_array_equal(back.forward(Xte), pruned.forward(Xte))
    dense_bytes, sparse_bytes = (os.path.getsize(tmp_path / f"m{s}.npz") for s in (False, True))
    assert sparse_bytes < dense_bytes
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


def test_bad_network_input(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    with pytest.raises(ValueError, match=r"calibration_inputs: expected shape \(samples, 64\)"):
        nettrim.prune_network(net, Xtr[:, :10])
    with pytest.raises(ValueError, match="calibration_inputs: expected at least one"):
        nettrim.prune_network(net, Xtr[:0])
    with pytest.raises(ValueError, match=r"sparsity: expected a fraction in \(0, 1\)"):
        nettrim.prune_network(net, Xtr, sparsity=1.0)
    with pytest.raises(ValueError, match="scheme: expected"):
        nettrim.prune_network(net, Xtr, scheme="serial")
    with pytest.raises(ValueError, match="at least one ReLU layer"):
        nettrim.from_arrays([np.ones((3, 2))], [np.zeros(2)])
    import copy
    tanh = copy.deepcopy(clf)
    tanh.activation = "tanh"
    with pytest.raises(ValueError, match="activation='relu'"):
        from_sklearn(tanh)
