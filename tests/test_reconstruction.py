"""The label-free reconstruction (nettrim.reconstruct): kept weights re-fitted to the trained
network's outputs, the best epoch on held-out samples kept, the zeros kept."""
import json
import sys

import nettrim
import numpy as np
import pytest
from conftest import residual_module
from nettrim.errors import InvalidArgument, InvalidArgumentType
from nettrim.methods.masks import most_kept
from nettrim.report import PruneReport

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pruned_mlp(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = nettrim.adapters.sklearn.from_sklearn(clf)
    pruned, _ = nettrim.prune_network(net, Xtr, sparsity=0.9, method="magnitude")
    return net, pruned, Xtr, Xte, yte


def _discrepancy(net, reference, X):
    want = reference.forward(X).astype(np.float64)
    return float(np.sum((net.forward(X) - want) ** 2) / np.sum(want ** 2))


def test_the_reconstruction_lowers_the_held_out_discrepancy_and_keeps_the_zeros(pruned_mlp):
    net, pruned, Xtr, Xte, yte = pruned_mlp
    rebuilt, report = nettrim.reconstruct(pruned, net, Xtr)
    assert report.discrepancy_after < report.discrepancy_before
    assert report.best_epoch >= 1 and report.held_out == round(0.2 * len(Xtr))
    for before, after in zip(pruned.layers, rebuilt.layers):
        assert not np.any(after.matrix[before.matrix == 0])
    assert rebuilt.nnz() <= pruned.nnz() <= most_kept(net.size(), 0.1)
    # measured apart, on data it never saw: the outputs came closer to the trained network's
    assert _discrepancy(rebuilt, net, Xte) < _discrepancy(pruned, net, Xte)


def _divergence(net, reference, X):
    """The mean KL divergence of ``net``'s class probabilities from ``reference``'s, in float64."""
    def log_softmax(z):
        z = z.astype(np.float64) - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))
    want, got = log_softmax(reference.forward(X)), log_softmax(net.forward(X))
    return float(np.mean(np.sum(np.exp(want) * (want - got), 1)))


def test_the_kl_reconstruction_lowers_the_class_probabilities_divergence(pruned_mlp):
    net, pruned, Xtr, Xte, yte = pruned_mlp
    rebuilt, report = nettrim.reconstruct(pruned, net, Xtr, loss="kl")
    assert report.loss == "kl" and report.discrepancy_after < report.discrepancy_before
    assert "held-out KL divergence" in report.summary()
    for before, after in zip(pruned.layers, rebuilt.layers):
        assert not np.any(after.matrix[before.matrix == 0])
    # recomputed apart, in float64, on unseen data
    assert _divergence(rebuilt, net, Xte) < _divergence(pruned, net, Xte)


@pytest.mark.parametrize("loss", ["mse", "kl"])
def test_the_numpy_gradients_are_pytorchs(loss):
    """Without PyTorch a dense chain is trained in numpy: its gradients, by hand, against autograd."""
    from nettrim.reconstruction import _NumpyTrainer, _TorchTrainer
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal(shape).astype(np.float32) for shape in ((6, 8), (8, 5), (5, 3))]
    Ws[1][rng.random(Ws[1].shape) < 0.5] = 0
    net = nettrim.from_arrays(Ws, [rng.standard_normal(W.shape[1]).astype(np.float32) for W in Ws])
    X, target = rng.standard_normal((50, 6)).astype(np.float32), rng.standard_normal((50, 3)).astype(np.float32)
    mine = _NumpyTrainer(net, X, target, np.arange(10), loss, 0)
    value, grads = mine.gradients(np.arange(10, 50))
    theirs = _TorchTrainer(net, X, target, np.arange(10), loss, 0)
    batch = torch.arange(10, 50)
    reference = theirs._loss(theirs.module(theirs.inputs[batch]), theirs.target[batch])
    reference.backward()
    assert value == pytest.approx(float(reference.detach()), rel=1e-5)
    for g, p, mask in zip(grads, theirs.parameters, mine.masks):
        want = p.grad.numpy().T if p.ndim == 2 else p.grad.numpy()     # (masked by the trainer's hooks)
        np.testing.assert_allclose(g if mask is None else g * mask, want, rtol=1e-4, atol=1e-5)
    assert mine.discrepancy() == pytest.approx(theirs.discrepancy(), rel=1e-5)
    # and two of Adam's steps, as torch.optim.Adam takes them, the zeros held
    for trainer in (mine, theirs):
        trainer.restart(1e-2)
        trainer.step(np.arange(10, 50))
        trainer.step(np.arange(10, 30))
    for p, q in zip(mine.params, theirs.parameters):
        np.testing.assert_allclose(p, q.detach().numpy().T if q.ndim == 2 else q.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
    assert all(np.all(p[Ws[k] == 0] == 0) for k, p in enumerate(mine.params[::2]))


def test_the_numpy_reconstruction_lowers_the_discrepancy_and_keeps_the_zeros(pruned_mlp, monkeypatch):
    net, pruned, Xtr, Xte, yte = pruned_mlp
    monkeypatch.setitem(sys.modules, "torch", None)      # (as if torch were not installed)
    rebuilt, report = nettrim.reconstruct(pruned, net, Xtr)
    assert report.discrepancy_after < report.discrepancy_before
    for before, after in zip(pruned.layers, rebuilt.layers):
        assert not np.any(after.matrix[before.matrix == 0])
    assert _discrepancy(rebuilt, net, Xte) < _discrepancy(pruned, net, Xte)


def test_an_epoch_that_errs_more_is_not_kept(pruned_mlp):
    net, pruned, Xtr, *_ = pruned_mlp
    rebuilt, report = nettrim.reconstruct(pruned, net, Xtr, lr=50.0, max_epochs=2, patience=1)
    assert report.best_epoch == 0 and report.history[0] > report.discrepancy_before
    assert report.discrepancy_after == report.discrepancy_before
    for a, b in zip(rebuilt.layers, pruned.layers):
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-6, atol=1e-7)


def test_prune_network_reports_the_reconstruction(digits_mlp, tmp_path):
    clf, Xtr, *_ = digits_mlp
    net = nettrim.adapters.sklearn.from_sklearn(clf)
    pruned, report = nettrim.prune_network(net, Xtr, sparsity=0.9, method="magnitude", reconstruct=True)
    assert report.reconstruction.discrepancy_after <= report.reconstruction.discrepancy_before
    assert "reconstruction: held-out output discrepancy" in report.summary()
    again = PruneReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.reconstruction == report.reconstruction


def test_a_graph_model_is_reconstructed_as_its_own_module():
    model = residual_module()
    X = np.random.default_rng(0).standard_normal((2000, 6)).astype(np.float32)
    graph, _ = nettrim.adapters.read(model, input_shape=(6,))
    # (without the final re-fit, whose logits layer is already at the least-squares optimum)
    pruned, _ = nettrim.prune_network(graph, X, sparsity=0.8, method="magnitude", scheme="parallel",
                                      final_refit=False)
    rebuilt, report = nettrim.reconstruct(pruned, graph, X, lr=1e-2, max_epochs=5)
    assert isinstance(rebuilt, nettrim.GraphModel) and report.discrepancy_after < report.discrepancy_before
    assert rebuilt.nnz() <= pruned.nnz()


def test_bad_input_is_named(pruned_mlp):
    net, pruned, Xtr, *_ = pruned_mlp
    other = nettrim.from_arrays([np.ones((64, 5), np.float32), np.ones((5, 10), np.float32)])
    with pytest.raises(InvalidArgumentType, match="pruned, reference"):
        nettrim.reconstruct(pruned, "net", Xtr)
    with pytest.raises(InvalidArgument, match="reference"):
        nettrim.reconstruct(pruned, other, Xtr)
    with pytest.raises(InvalidArgument, match="holdout"):
        nettrim.reconstruct(pruned, net, Xtr, holdout=0)
    with pytest.raises(InvalidArgument, match="max_epochs"):
        nettrim.reconstruct(pruned, net, Xtr, max_epochs=0)
    with pytest.raises(InvalidArgument, match="loss"):
        nettrim.reconstruct(pruned, net, Xtr, loss="l1")
    one_output = nettrim.from_arrays([np.ones((64, 5), np.float32), np.ones((5, 1), np.float32)])
    with pytest.raises(InvalidArgument, match="pruned: 'kl' reads the outputs as a classifier's logits"):
        nettrim.reconstruct(one_output, one_output, Xtr, loss="kl")
    with pytest.raises(InvalidArgument, match="reconstruct"):
        nettrim.prune_network(net, Xtr, sparsity=0.9, method="magnitude", reconstruct="l1")
    with pytest.raises(InvalidArgumentType, match="reconstruct"):
        nettrim.prune_network(net, Xtr, sparsity=0.9, method="magnitude", reconstruct=2)
