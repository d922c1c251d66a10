"""Real data and trained models for the benchmarks (cached under bench/cache/)."""
from __future__ import annotations

import gzip
import os
import pathlib
import sys
import warnings

import numpy as np

CACHE = pathlib.Path(__file__).resolve().parent / "cache"
FASHION_DIR = pathlib.Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_HELP = ("Fashion-MNIST not found in {}. Install it with\n"
                "    sudo apt-get update && sudo apt-get install dataset-fashion-mnist\n"
                "or point FASHION_MNIST_DIR at a folder holding the four *-idx*-ubyte.gz files.")


def _idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist():
    """(X_train, y_train, X_test, y_test), images flattened to 784 floats in [0, 1]."""
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    if not all((FASHION_DIR / f).exists() for f in files):
        sys.exit(FASHION_HELP.format(FASHION_DIR))
    Xtr, ytr, Xte, yte = (_idx(FASHION_DIR / f) for f in files)
    return (Xtr.reshape(len(Xtr), -1).astype(np.float32) / 255, ytr.astype(np.int64),
            Xte.reshape(len(Xte), -1).astype(np.float32) / 255, yte.astype(np.int64))


def digits():
    """scikit-learn's bundled digits, split 75/25 (seeded): (Xtr, ytr, Xte, yte)."""
    from nettrim.examples import digits_split
    return digits_split()


def trained_mlp(name, hidden, X, y, max_iter=30):
    """A scikit-learn ReLU MLP, trained once and cached as .npz (weights and biases)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{name}.npz"
    if path.exists():
        z = np.load(path)
        n = len(z.files) // 2
        return [z[f"W{i}"] for i in range(n)], [z[f"b{i}"] for i in range(n)]
    from sklearn.neural_network import MLPClassifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden, max_iter=max_iter, random_state=0).fit(X, y)
    Ws = [w.astype(np.float32) for w in clf.coefs_]
    bs = [b.astype(np.float32) for b in clf.intercepts_]
    np.savez(path, **{f"W{i}": w for i, w in enumerate(Ws)}, **{f"b{i}": b for i, b in enumerate(bs)})
    return Ws, bs


def layer_problems(Ws, bs, X):
    """(input, output, W, b) of every hidden ReLU layer on calibration inputs X."""
    out, h = [], X
    for W, b in zip(Ws[:-1], bs[:-1]):
        y = np.maximum(h @ W + b, 0)
        out.append((h, y, W, b))
        h = y
    return out


def train(model, X, y, *, epochs, batch, lr=None, masks=None, opt=None, after_step=None):
    """Adam at ``lr`` (or the optimizer ``opt``) on cross-entropy, seeded batches; with ``masks``
    ({param: 0/1 tensor}) pruned weights stay zero; ``after_step`` is called after every step
    (a learning-rate schedule's ``step``)."""
    import torch
    model.train()
    opt = opt or torch.optim.Adam(model.parameters(), lr)
    Xt, yt = (X, y) if torch.is_tensor(X) else (torch.tensor(X), torch.tensor(y))
    for epoch in range(epochs):
        perm = torch.randperm(len(Xt), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(Xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()
            if after_step:
                after_step()
            if masks:
                with torch.no_grad():
                    for p, m in masks.items():
                        p.mul_(m)
    model.eval()


def accuracy_axes(ax, trained_accuracy, ylabel, title):
    """Finish a plot of test accuracy against the percentage of weights kept: the trained
    model's accuracy as a grey line, a log-scale x axis labelled 1, 2, 5, 10, 20, 50, 100
    (matplotlib's default labels of a narrow log range overlap), labels and legend."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    ax.axhline(trained_accuracy, color="grey", lw=0.8, label="trained")
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 5, 10, 20, 50, 100])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weights kept (%)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
