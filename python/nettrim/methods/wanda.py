"""Wanda (Sun, Liu, Bair and Kolter, "A simple and effective pruning approach for large
language models", ICLR 2024): weights times input norms, compared within each output."""
from __future__ import annotations

import numpy as np

from ..result import PrunedLayer
from . import masks
from ._args import check_layer


def wanda_scores(X, W):
    """``|W_ij| * ||X_:,i||_2``: a weight matters as much as the input it multiplies."""
    norms = np.sqrt(np.einsum("pi,pi->i", X, X, dtype=np.float64))
    return np.abs(W).astype(np.float64) * norms[:, None]


def wanda(X, W, b, *, sparsity=None, nm=None):
    """Prune each output neuron's lowest-scoring inputs (``sparsity`` of them, or N of every M).

    No weight update, the bias is kept; the paper's comparison group is one output (a row of
    its ``W``, a column of ours).  Returns a :class:`~nettrim.PrunedLayer`."""
    X, W, b, sparsity, nm = check_layer(X, W, b, sparsity=sparsity, nm=nm)
    W = np.asarray(W, np.float32)
    scores = wanda_scores(np.asarray(X, np.float32), W)
    if nm:
        mask = masks.n_of_m(scores, *nm)
    else:
        mask = masks.largest_per_column(scores, masks.keep_count(W.shape[0], sparsity))
    return PrunedLayer(weight=np.where(mask, W, 0).astype(np.float32), bias=b, method="wanda")
