"""Network Trimming (Hu, Peng, Tai and Tang, "Network trimming: a data-driven neuron pruning
approach towards efficient deep architectures", 2016): remove the neurons whose ReLU output
is zero on most calibration samples (Average Percentage of Zeros, APoZ), and with them the
weights of the next layer that read them.  Structured: whole neurons or channels go."""
from __future__ import annotations

import numpy as np

from .._validate import check_real
from ..errors import InvalidArgument, InvalidArgumentType
from ..layers import PRUNABLE, Conv2d
from ..network import Network, check_inputs
from ..structured import feeds


def apoz_scores(net, X, *, batch_size=512):
    """For every ReLU layer but the last, the fraction of zero outputs of each neuron (channel):
    over samples, and for a convolution over output positions too.  {k: (C_k,)}."""
    last = len(net.layers) - 1
    zeros, counts = {}, {}
    for start in range(0, len(X), batch_size):
        h, k = X[start:start + batch_size], 0
        for step in net.steps:
            h = step(h)
            if isinstance(step, PRUNABLE):
                if step.relu and k < last:
                    per = (h == 0).reshape(len(h), h.shape[1], -1)
                    zeros[k] = zeros.get(k, 0) + per.sum(axis=(0, 2))
                    counts[k] = counts.get(k, 0) + per.shape[0] * per.shape[2]
                k += 1
                if k > last - 1:
                    break
    return {k: zeros[k] / counts[k] for k in zeros}


def apoz(net, X, *, sparsity, scope="network"):
    """Zero whole neurons, highest APoZ first, until ``sparsity`` of the network's weights are gone.

    ``scope="network"``: one ranking over all hidden layers (APoZ is a percentage, comparable
    across layers), neurons taken until the removed weights (incoming, bias aside, and the
    next layer's rows that read them) reach the target.  ``scope="layer"``: every hidden
    layer loses its highest-APoZ neurons until its own weights are ``sparsity`` removed.
    The output layer keeps all its neurons, so the largest reachable sparsity is below 1.
    Returns a masked copy (same shapes); :func:`nettrim.structured.shrink` makes it smaller."""
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network, got {type(net).__name__}")
    X = check_inputs(net, X, "X")
    sparsity = check_real("sparsity", sparsity, low=0, strict_low=True, what="a fraction in (0, 1) of weights to remove")
    if sparsity >= 1:
        raise InvalidArgument(f"sparsity: expected a fraction in (0, 1) of weights to remove, got {sparsity!r}")
    if scope not in ("network", "layer"):
        raise InvalidArgument(f"scope: expected 'network' or 'layer', got {scope!r}")
    scores = apoz_scores(net, X)
    out = net.copy()
    layers = out.layers
    F = {k: feeds(out, k) for k in scores}

    def cost(k, c):
        layer, nxt = layers[k], layers[k + 1]
        incoming = np.count_nonzero(layer.weight[c]) if isinstance(layer, Conv2d) else np.count_nonzero(layer.weight[:, c])
        rows = nxt.weight[F[k][c]] if not isinstance(nxt, Conv2d) else nxt.weight[:, F[k][c]]
        return incoming, int(np.count_nonzero(rows))

    def drop(k, c):
        layer, nxt = layers[k], layers[k + 1]
        if isinstance(layer, Conv2d):
            layer.weight[c] = 0
        else:
            layer.weight[:, c] = 0
        layer.bias[c] = 0
        if isinstance(nxt, Conv2d):
            nxt.weight[:, F[k][c]] = 0
        else:
            nxt.weight[F[k][c]] = 0

    if scope == "network":
        target = float(sparsity) * net.size()
        order = sorted(((-s, k, c) for k, v in scores.items() for c, s in enumerate(v)))
        removed, alive = 0, {k: len(v) for k, v in scores.items()}
        for _, k, c in order:
            if removed >= target:
                break
            if alive[k] == 1:      # a layer keeps at least one neuron
                continue
            removed += sum(cost(k, c))
            drop(k, c)
            alive[k] -= 1
        if removed < target:
            raise InvalidArgument(f"sparsity: APoZ removes at most {removed / net.size():.4g} of this network's "
                                  f"weights (every hidden layer keeps a neuron, the output layer all of its), "
                                  f"got {sparsity!r}")
    else:
        for k, v in scores.items():
            target = float(sparsity) * layers[k].size
            removed = layers[k].size - layers[k].nnz()      # rows the previous layer's removals took
            for c in np.argsort(-v, kind="stable")[:-1]:
                if removed >= target:
                    break
                removed += cost(k, c)[0]
                drop(k, c)
            if removed < target:
                raise InvalidArgument(f"sparsity: APoZ removes at most {removed / layers[k].size:.4g} of layer "
                                      f"{layers[k].name!r}'s weights (it keeps a neuron), got {sparsity!r}")
    return out
