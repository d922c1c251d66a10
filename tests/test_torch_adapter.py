"""PyTorch models: read, prune with both schemes, write back; accuracy thresholds measured on the seeded CNN."""
import warnings

import nettrim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
from nettrim.adapters.torch import from_torch, to_torch  # noqa: E402
from nettrim.graph import GraphModel  # noqa: E402
from nettrim.methods.masks import most_kept  # noqa: E402


def accuracy(net, X, y):
    return float(np.mean(net.predict(X) == y))


def torch_outputs(model, X):
    with torch.no_grad():
        return model(torch.tensor(X)).numpy()


def test_forward_matches_torch(digits_cnn):
    model, Xtr, ytr, Xte, yte = digits_cnn
    net = from_torch(model, (1, 8, 8))
    assert [type(s).__name__ for s in net.steps] == ["Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Flatten",
                                                    "Dense", "Dense"]      # batch norm folded, ReLUs merged
    assert [layer.name for layer in net.layers] == ["0", "4", "8", "11"]
    np.testing.assert_allclose(net.forward(Xte), torch_outputs(model, Xte), rtol=1e-4, atol=1e-4)


# Measured on this model (test accuracy 0.991, 13584 weights), max_samples=3000:
#   eps_rel=0.05  parallel keeps 44.1% (0.991), cascade keeps 52.2% (0.991)
#   sparsity=0.8  parallel keeps 19.9% (0.913)
@pytest.mark.parametrize("scheme, max_kept", [("parallel", 0.50), ("cascade", 0.58)])
def test_cnn_schemes_at_fixed_eps(digits_cnn, scheme, max_kept):
    model, Xtr, ytr, Xte, yte = digits_cnn
    net = from_torch(model, (1, 8, 8))
    pruned, report = nettrim.prune_network(net, Xtr, scheme=scheme, eps_rel=0.05, max_samples=3000)
    assert pruned.nnz() / net.nnz() <= max_kept
    assert accuracy(pruned, Xte, yte) >= accuracy(net, Xte, yte) - 0.03
    assert [r.samples for r in report.layers] == [3000, 3000, len(Xtr), len(Xtr)]
    for r in report.layers:
        assert r.omega_violation <= 1e-3 and (r.complement_violation <= 1e-3 or not r.kept_inactive)
        assert r.relative_error <= r.eps_rel * (1 + 1e-3)
    # Written back into a copy of the module, the pruned weights give the pruned network's outputs.
    pruned_model = to_torch(pruned, model)
    np.testing.assert_allclose(torch_outputs(pruned_model, Xte), pruned.forward(Xte), rtol=1e-4, atol=1e-4)
    assert int(sum((p == 0).sum() for n, p in pruned_model.named_parameters() if n.endswith("weight")
                   and p.dim() > 1)) == pruned.size() - pruned.nnz()
    np.testing.assert_allclose(torch_outputs(model, Xte), net.forward(Xte), rtol=1e-4, atol=1e-4)  # untouched


def test_cascade_keeps_outputs_closer(digits_cnn):
    """At the same eps_rel, cascade keeps more weights than parallel here (52% against 44%)
    but its network outputs stay closer to the trained network's: each layer's budget covers
    the error it inherits, where parallel's errors add up through the layers."""
    model, Xtr, ytr, Xte, yte = digits_cnn
    net = from_torch(model, (1, 8, 8))
    ref = net.forward(Xte)
    errors = {}
    for scheme in ("parallel", "cascade"):
        pruned, _ = nettrim.prune_network(net, Xtr, scheme=scheme, eps_rel=0.05, max_samples=3000)
        errors[scheme] = np.linalg.norm(pruned.forward(Xte) - ref) / np.linalg.norm(ref)
    assert errors["cascade"] < errors["parallel"]


def test_cnn_target_sparsity(digits_cnn):
    model, Xtr, ytr, Xte, yte = digits_cnn
    net = from_torch(model, (1, 8, 8))
    pruned, report = nettrim.prune_network(net, Xtr, scheme="parallel", sparsity=0.8, max_samples=3000)
    assert 0.17 * net.size() <= pruned.nnz() <= most_kept(net.size(), 0.2)    # the target is a ceiling
    assert accuracy(pruned, Xte, yte) >= 0.85       # measured 0.913


class FunctionalNet(nn.Module):
    """Operations in forward() rather than modules: fx tracing reads them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        x = nn.functional.dropout(x, 0.5, self.training)
        return self.fc(x.view(x.size(0), -1))


def test_functional_forward_is_traced():
    torch.manual_seed(2)
    model = FunctionalNet().eval()
    X = np.random.default_rng(0).random((50, 1, 8, 8)).astype(np.float32)
    net = from_torch(model, (1, 8, 8))
    assert [type(s).__name__ for s in net.steps] == ["Conv2d", "MaxPool2d", "Flatten", "Dense"]
    np.testing.assert_allclose(net.forward(X), torch_outputs(model, X), rtol=1e-4, atol=1e-5)


def test_batchnorm_after_a_bias_free_conv():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 3 * 3, 5)).eval()
    with torch.no_grad():   # non-trivial batch-norm statistics
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    X = np.random.default_rng(0).random((200, 1, 8, 8)).astype(np.float32)
    net = from_torch(model, (1, 8, 8))
    np.testing.assert_allclose(net.forward(X), torch_outputs(model, X), rtol=1e-4, atol=1e-5)
    pruned, _ = nettrim.prune_network(net, X, scheme="cascade", eps_rel=0.1)
    back = to_torch(pruned, model)
    assert back[0].bias is None                       # the architecture is kept
    np.testing.assert_allclose(torch_outputs(back, X), pruned.forward(X), rtol=1e-4, atol=1e-5)


def test_a_model_that_is_not_a_chain_is_read_as_a_graph():
    """Other activations and residual adds: PyTorch runs them (tests/test_graph_models.py)."""
    graph = from_torch(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)))
    assert isinstance(graph, GraphModel) and graph.programs() == {"0": "linear", "2": "linear"}

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bias = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.bias(torch.relu(self.a(x)) + x)

    assert from_torch(Residual()).programs() == {"a": "relu", "bias": "linear"}


def test_models_nettrim_cannot_read_are_named():
    with pytest.raises(ValueError, match="no ReLU|ReLU layer"):
        from_torch(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="input_shape"):
        from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))


def test_scripted_module_is_read_in_order(digits_cnn):
    model, Xtr, ytr, Xte, yte = digits_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # TorchScript is deprecated, still in use
        scripted = torch.jit.script(model)
    net = from_torch(scripted, (1, 8, 8))
    np.testing.assert_allclose(net.forward(Xte), torch_outputs(model, Xte), rtol=1e-4, atol=1e-4)
