"""Magnitude pruning (Han, Pool, Tran and Dally, "Learning both weights and connections for
efficient neural networks", NIPS 2015): keep the weights of largest absolute value."""
from __future__ import annotations

import numpy as np

from ..result import PrunedLayer
from . import masks
from ._args import check_layer


def magnitude(X, W, b, *, sparsity=None, nm=None):
    """Zero the smallest ``|w|`` of the layer (``sparsity`` of them) or of every N:M group.

    ``X`` is not used (it may be None): the criterion looks at the weights only.  The bias is kept as is.
    Returns a :class:`~nettrim.PrunedLayer`."""
    X, W, b, sparsity, nm = check_layer(X, W, b, sparsity=sparsity, nm=nm, x_optional=True)
    W = np.asarray(W, np.float32)
    scores = np.abs(W)
    mask = masks.n_of_m(scores, *nm) if nm else masks.largest(scores, masks.keep_count(W.size, sparsity))
    return PrunedLayer(weight=np.where(mask, W, 0).astype(np.float32), bias=b, method="magnitude")
