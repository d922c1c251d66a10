"""A requested sparsity is a ceiling on what is kept: in every scheme, allocation and method,
the pruned weights number at most ``(1 - sparsity)`` of the weights, exactly, whatever the
search, curve or rounding did.  These assertions hold on any machine: they compare counts with
the target, never with a count measured on one machine's model."""
import math
import warnings
from fractions import Fraction

import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim.adapters.sklearn import from_sklearn
from nettrim.methods.base import Target
from nettrim.methods.masks import keep_count, most_kept
from nettrim.methods.nettrim import NetTrim
from nettrim.problem import layer_problems


def prune(net, X, **options):
    with warnings.catch_warnings():
        # (notes such as a layer filled beyond its l1 solutions are warned, and so is a solve that
        # stops at its iteration limit at extreme targets; they are not the point here)
        warnings.simplefilter("ignore", nettrim.TargetWarning)
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        return nettrim.prune_network(net, X, **options)


def selected_weights(net, report):
    return sum(r.nnz_before for r in report.layers if r.pruned)


def ceiling(size, sparsity):
    """The most weights a decimal ``sparsity`` (a string) allows, in exact arithmetic."""
    return math.floor((1 - Fraction(sparsity)) * size)


@pytest.mark.parametrize("size, sparsity", [(10, "0.85"), (13584, "0.8"), (8192, "0.9"), (640, "0.9"), (7, "0.5"),
                                            (3, "0.999"), (1000, "0.5"), (1000, "0.7"), (10**8 + 7, "0.3")])
def test_the_count_kept_is_rounded_down(size, sparsity):
    assert keep_count(size, float(sparsity)) == ceiling(size, sparsity)
    assert most_kept(size, 1 - float(sparsity)) == ceiling(size, sparsity)
    assert most_kept(size, 1.0) == size and most_kept(size, 0.0) == 0


@pytest.mark.parametrize("keep", [0.013, 0.05, 0.1, 0.21, 0.37, 0.5, 0.73])
@pytest.mark.parametrize("refit", ["relu", "none"])
def test_a_layer_search_never_keeps_more_than_its_target(keep, refit):
    """A density search lands in [(1 - close) keep, keep], or, where the density jumps over that
    window, on the nearer side: a denser solution is trimmed to the target and re-fitted."""
    X, Y, W, b = relu_layer(5, P=200, n_in=30, M=7)
    problem = layer_problems(nettrim.layers.Dense(W.astype(np.float32), b.astype(np.float32), relu=True),
                             X.astype(np.float32))[0]
    method = NetTrim(refit=refit, close=0.002)      # a narrow window: the search often jumps over it
    out = method.prune(problem, Target(keep=keep))
    assert np.count_nonzero(out.weight) <= most_kept(W.size, keep)
    # the reported eps is one the weights meet (on Omega, and the inactive outputs' ReLU error
    # where the inactive outputs are counted)
    A = problem.X.astype(np.float64) @ out.weight + out.bias
    missed = np.where(problem.omega, A - problem.Y, 0 if out.kept_inactive else np.maximum(A, 0))
    assert np.linalg.norm(missed) <= out.eps * (1 + 1e-6)


def test_a_trimmed_group_search_removes_whole_rows():
    X, Y, W, b = relu_layer(6, P=200, n_in=30, M=7)
    problem = layer_problems(nettrim.layers.Dense(W.astype(np.float32), b.astype(np.float32), relu=True),
                             X.astype(np.float32))[0]
    out = NetTrim(close=0.002, options={"penalty": "group"}).prune(problem, Target(keep=0.3))
    assert np.count_nonzero(out.weight) <= most_kept(W.size, 0.3)


TARGETS = [0.5, 0.9, 0.98]


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
@pytest.mark.parametrize("sparsity", TARGETS)
def test_network_targets_are_ceilings_for_nettrim(digits_mlp, scheme, sparsity):
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    pruned, report = prune(net, Xtr, scheme=scheme, sparsity=sparsity, inactive="bounded")
    assert pruned.nnz() <= ceiling(net.size(), str(sparsity))
    assert sum(r.nnz for r in report.layers) == pruned.nnz()


def test_one_constraint_per_neuron_meets_a_network_target(digits_mlp, sparsity=0.95):
    """Each output's tolerance stays above its own least-squares floor: with the floor shared out
    in proportion to the outputs' norms, the cascade's logits layer (compressed) was asked for
    less than some outputs' floors and the run failed."""
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    pruned, report = prune(net, Xtr, scheme="cascade", sparsity=sparsity, constraint="neuron", inactive="bounded")
    assert pruned.nnz() <= ceiling(net.size(), str(sparsity))
    assert report.layers[-1].form == "compressed"


@pytest.mark.parametrize("scheme, sparsity", [("parallel", 0.8), ("cascade", 0.9)])
def test_network_targets_are_ceilings_on_a_cnn(digits_cnn, scheme, sparsity):
    """Both programs (inactive="auto"), convolutions with position sampling, a BN folded in."""
    from nettrim.adapters.torch import from_torch
    model, Xtr, *_ = digits_cnn
    net = from_torch(model, (1, 8, 8))
    pruned, _ = prune(net, Xtr, scheme=scheme, sparsity=sparsity, max_samples=1500)
    assert pruned.nnz() <= ceiling(net.size(), str(sparsity))


@pytest.mark.parametrize("allocation", ["shared", "uniform"])
def test_the_other_allocations_are_ceilings(digits_mlp, allocation):
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    pruned, _ = prune(net, Xtr, scheme="parallel", sparsity=0.9, allocation=allocation, inactive="bounded")
    assert pruned.nnz() <= ceiling(net.size(), "0.9")


@pytest.mark.parametrize("method", ["magnitude", "wanda", "lobs", "sparsegpt", "apoz"])
@pytest.mark.parametrize("scope", ["network", "layer"])
def test_every_method_meets_the_target_as_a_ceiling(digits_mlp, method, scope):
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    if (method, scope) == ("apoz", "layer"):     # no output neuron goes, so the logits layer could not
        with pytest.raises(nettrim.InvalidArgument, match="scope: APoZ removes hidden neurons only"):
            prune(net, Xtr, sparsity=0.5, scope=scope, method=method)
        return
    for sparsity in (0.55, 0.9):
        pruned, report = prune(net, Xtr, scheme="parallel", sparsity=sparsity, scope=scope, method=method)
        if scope == "network":
            assert pruned.nnz() <= ceiling(net.size(), str(sparsity)), (method, sparsity)
        else:
            for r in report.layers:
                assert r.nnz <= ceiling(r.nnz_before, str(sparsity)), (method, sparsity, r.name)


def test_apoz_refuses_a_target_it_cannot_reach(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    with pytest.raises(nettrim.InvalidArgument, match="sparsity: APoZ removes at most"):
        prune(from_sklearn(clf), Xtr, sparsity=0.999, method="apoz")


def test_per_layer_sparsities_are_ceilings(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    per_layer = [0.93, 0.71, 0.333]
    for scheme in ("parallel", "cascade"):
        _, report = prune(net, Xtr, scheme=scheme, sparsity=per_layer, scope="layer", inactive="bounded")
        for r, s in zip(report.layers, per_layer):
            assert r.nnz <= ceiling(r.nnz_before, str(s)), (scheme, r.name)
