import os

# The suite must not depend on an idle machine: with another busy process on a 2-core
# machine, two engine threads were measured 5-10x slower than one on the digits layers
# (the threads wait for each other at every barrier).  Tests that are about thread
# counts pass them explicitly; everything else, subprocesses included, runs on one.
os.environ.setdefault("NETTRIM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)   # numpy's BLAS too, for the same reason


def relu_layer(seed, P=300, n_in=20, M=6, dead=0, sparse_teacher=None):
    """A random ReLU layer: inputs X (P, n_in), weights W, bias b, outputs Y."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, n_in))
    W = rng.standard_normal((n_in, M)) / np.sqrt(n_in)
    if sparse_teacher is not None:
        W *= rng.random((n_in, M)) < sparse_teacher
    b = 0.1 * rng.standard_normal(M)
    if dead:
        b[:dead] = -100.0  # these neurons never fire
    Y = np.maximum(X @ W + b, 0)
    return X, Y, W, b


@pytest.fixture(scope="session")
def digits_mlp():
    """A 64-128-64-10 ReLU MLP trained on scikit-learn's digits (seeded, about a second)."""
    from nettrim.examples import digits_mlp
    return digits_mlp()


def digits_images():
    """Digits as (n, 1, 8, 8) float32 images in [0, 1], split as in ``digits_mlp``."""
    from nettrim.examples import digits_split
    return digits_split(images=True)


@pytest.fixture(scope="session")
def digits_split():
    """``digits_images()`` as a fixture: (Xtr, ytr, Xte, yte), images (n, 1, 8, 8)."""
    return digits_images()


def digits_cnn_module():
    """The digits CNN's architecture, untrained: conv-bn-relu-pool, conv-relu-pool, two dense."""
    import torch
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))


def residual_module(seed=0):
    """A small graph model, in eval mode: ``head(relu(b(relu(a(x))) + x))`` on 6 features, 3
    outputs; its layers get the relu, residual and linear programs."""
    import torch
    nn = torch.nn
    torch.manual_seed(seed)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Linear(6, 16), nn.Linear(16, 6), nn.Linear(6, 3)

        def forward(self, x):
            return self.head(torch.relu(self.b(torch.relu(self.a(x))) + x))

    return Residual().eval()


@pytest.fixture(scope="session")
def digits_cnn():
    """A small CNN trained on digits with PyTorch (test accuracy 0.991), the same on every
    machine: its weights are read from tests/fixtures/digits_cnn.npz (written by
    tests/fixtures/train_digits_cnn.py), since a model trained here would differ with the
    CPU's kernels, and so would every figure measured on it."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    Xtr, ytr, Xte, yte = digits_images()
    model = digits_cnn_module()
    weights = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "digits_cnn.npz"))
    model.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files})
    model.eval()
    return model, Xtr, ytr, Xte, yte


def hidden_layer_signals(clf, Xtr, samples):
    """The digits MLP's second layer, its unfolded inputs on ``samples`` training samples, and
    those inputs shifted as a pruned network's might be (5% of their largest value)."""
    from nettrim.adapters.sklearn import from_sklearn
    net = from_sklearn(clf)
    X = Xtr[:samples].astype(np.float32)
    layer = net.layers[1]
    inputs = net.layer_inputs(X, net.sample_positions(len(X), None, 0), [1])[1]
    return layer, inputs, inputs + np.float32(0.05) * np.abs(inputs).max()
