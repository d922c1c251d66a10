"""Optimal-Brain-Surgeon pruning of one layer: L-OBS and SparseGPT.

Both minimize the layer's reconstruction error ``||X (W - What)||_F^2`` whose Hessian is
``H = X^T X / P`` (the same for every output neuron), and move the remaining weights to
compensate for each pruned one (Hassibi and Stork, 1993):

    prune q:   dw = -(w_q / [H^-1]_qq) H^-1 e_q,   error increase  w_q^2 / (2 [H^-1]_qq).

Numerical care, as in the SparseGPT reference code: inputs that are zero on every
calibration sample ("dead") get ``H_qq = 1`` and their weights are pruned first (they cost
nothing); ``damp * mean(diag H)`` is added to the diagonal so that H is invertible.
"""
from __future__ import annotations

import math

import numpy as np

from ..result import PrunedLayer
from . import masks
from ._args import check_damp, check_layer, check_positive_int


def hessian(X, damp, bias=False):
    """``(H + lambda I, dead)``: the damped Hessian of the reconstruction (float64) and the dead inputs."""
    X = np.asarray(X, np.float64)
    if bias:
        X = np.hstack([X, np.ones((len(X), 1))])
    H = X.T @ X / max(1, len(X))
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H[np.diag_indices_from(H)] += float(damp) * float(np.mean(np.diag(H)))
    return H, dead


def lobs(X, W, b, *, sparsity, damp=0.01, rounds=100):
    """L-OBS (Dong, Chen and Pan, "Learning to prune deep neural networks via layer-wise
    Optimal Brain Surgeon", NIPS 2017): prune the weight of least sensitivity
    ``w_q^2 / (2 [H^-1]_qq)`` across the layer and apply the OBS update, with ``H^-1``
    computed once (the paper's Algorithm 1), until ``sparsity`` of the weights are gone.

    The paper prunes one weight per step; here each of ``rounds`` steps prunes the
    ``1/rounds`` share of the target with the smallest sensitivities and applies their
    updates together (one product with ``H^-1``; ``rounds >= count`` is the paper's loop).
    Pruned weights stay zero (a later update would otherwise revive them).  The bias, when
    the layer has one, is an unpruned coordinate of the Hessian, so the updates move it too.
    Returns a :class:`~nettrim.PrunedLayer`."""
    X, W, b, sparsity, _ = check_layer(X, W, b, sparsity=sparsity)
    damp, rounds = check_damp(damp), check_positive_int("rounds", rounds)
    X = np.asarray(X, np.float32)
    W = np.asarray(W, np.float64)
    n, m = W.shape
    has_bias = b is not None
    H, dead = hessian(X, damp, bias=has_bias)
    Hinv = np.linalg.inv(H)
    Hinv = (Hinv + Hinv.T) / 2
    diag = np.diag(Hinv)[:n]
    Wa = np.vstack([W, np.asarray(b, np.float64)[None]]) if has_bias else W.copy()
    pruned = np.zeros((n, m), bool)
    pruned[dead[:n]] = True
    Wa[:n][pruned] = 0
    target = W.size - masks.keep_count(W.size, sparsity)
    rounds = max(1, int(rounds))
    while pruned.sum() < target:
        todo = target - int(pruned.sum())
        step = max(1, math.ceil(todo / rounds))
        rounds = max(1, rounds - 1)
        sensitivity = Wa[:n] ** 2 / (2 * diag[:, None])
        sensitivity[pruned] = np.inf
        chosen = np.argsort(sensitivity, axis=None, kind="stable")[:step]
        D = np.zeros((n, m))
        rows, cols = np.unravel_index(chosen, (n, m))
        D[rows, cols] = Wa[rows, cols] / diag[rows]
        Wa -= Hinv[:, :n] @ D
        pruned[rows, cols] = True
        Wa[:n][pruned] = 0
    bias = Wa[n].astype(np.float32) if has_bias else b
    return PrunedLayer(weight=Wa[:n].astype(np.float32), bias=bias, method="lobs")


def sparsegpt(X, W, b, *, sparsity=None, nm=None, damp=0.01, blocksize=128):
    """SparseGPT (Frantar and Alistarh, "SparseGPT: massive language models can be accurately
    pruned in one-shot", ICML 2023, Algorithm 1): inputs are visited in order; each is pruned
    (or kept) for all outputs at once and its error is spread over the inputs not yet visited
    through the Cholesky factor of ``H^-1``.  The mask is chosen adaptively per block of
    ``blocksize`` inputs (the ``sparsity`` share of the block with the smallest
    ``w^2 / [chol(H^-1)]_qq^2``), or N of every M inputs when ``nm=(N, M)``.  The bias is
    kept, as in the paper.  Returns a :class:`~nettrim.PrunedLayer`."""
    X, W, b, sparsity, nm = check_layer(X, W, b, sparsity=sparsity, nm=nm)
    damp, blocksize = check_damp(damp), check_positive_int("blocksize", blocksize)
    X = np.asarray(X, np.float32)
    Wt = np.array(np.asarray(W, np.float64).T)            # the paper's orientation: (outputs, inputs)
    m_out, n = Wt.shape
    H, dead = hessian(X, damp)
    Wt[:, dead] = 0
    U = np.linalg.cholesky(np.linalg.inv(H)).T            # upper: H^-1 = U^T U
    if nm:
        blocksize = max(nm[1], blocksize // nm[1] * nm[1])  # N:M groups never straddle two blocks
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        W1, U1 = Wt[:, i1:i2].copy(), U[i1:i2, i1:i2]
        d1 = np.diag(U1)
        Q1, Err1 = np.zeros_like(W1), np.zeros_like(W1)
        if nm:
            prune = np.zeros(W1.shape, bool)
        else:
            scores = W1 ** 2 / d1[None, :] ** 2
            prune = ~masks.largest(scores, masks.keep_count(scores.size, sparsity))
        for i in range(i2 - i1):
            if nm and i % nm[1] == 0:
                group = slice(i, min(i + nm[1], i2 - i1))
                scores = W1[:, group] ** 2 / d1[group][None, :] ** 2
                prune[:, group] = ~masks.largest_per_column(scores.T, nm[0]).T
            w = W1[:, i]
            q = np.where(prune[:, i], 0.0, w)
            err = (w - q) / d1[i]
            W1[:, i:] -= np.outer(err, U1[i, i:])
            Q1[:, i], Err1[:, i] = q, err
        Wt[:, i1:i2] = Q1
        Wt[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return PrunedLayer(weight=Wt.T.astype(np.float32), bias=b, method="sparsegpt")
