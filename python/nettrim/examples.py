"""The small trained models that the demo, the tests, the docs and the benchmarks share.

scikit-learn's bundled digits (8x8 images, 10 classes; no download), split 75/25 by a seeded
permutation, and a 64-128-64-10 ReLU MLP trained on it in about a second.
"""
from __future__ import annotations

import warnings

import numpy as np

TRAIN = 1347          # of the 1797 digits; the rest is the test split


def digits_split(images: bool = False):
    """``(X_train, y_train, X_test, y_test)``: float32 pixels in [0, 1], flat rows of 64
    (or ``images=True``: arrays of shape (n, 1, 8, 8)); the same split every time."""
    from sklearn.datasets import load_digits
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    if images:
        X = X.reshape(-1, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:TRAIN], order[TRAIN:]
    return X[train], d.target[train], X[test], d.target[test]


def digits_mlp(hidden=(128, 64), max_iter: int = 300):
    """A scikit-learn ``MLPClassifier`` (ReLU) trained on the digits training split (seeded),
    with the split: ``(classifier, X_train, y_train, X_test, y_test)``."""
    from sklearn.neural_network import MLPClassifier
    Xtr, ytr, Xte, yte = digits_split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # convergence warnings of a deliberately short training
        clf = MLPClassifier(hidden, max_iter=max_iter, random_state=0).fit(Xtr, ytr)
    return clf, Xtr, ytr, Xte, yte
