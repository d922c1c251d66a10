"""Structured pruning: whole neurons (channels) out of a network, both adjacent layers shrunk.

A neuron of layer ``k`` can go when nothing downstream uses it (its rows in layer ``k+1`` are
all zero) or when it computes a constant: a ReLU neuron with no incoming weights outputs
``relu(b)``, which is zero for ``b <= 0`` and otherwise folds into the next layer's bias
(done when the next layer is dense and directly follows).  Removing it takes its column
(or output channel) out of layer ``k`` and the inputs it feeds out of layer ``k+1``; the
smaller network computes exactly the same function.  Grouped convolutions are left as they are.
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentType
from .layers import PRUNABLE, Conv2d, Dense
from .network import Network


def _positions(net):
    """Step indices of the prunable layers."""
    return [i for i, s in enumerate(net.steps) if isinstance(s, PRUNABLE)]


def feeds(net, k):
    """(C_k, F) bool: which inputs of layer ``k+1`` each output neuron/channel of layer ``k`` reaches.

    F is the next layer's input features (dense) or input channels (convolution); found by
    pushing one channel at a time through the parameter-free steps in between."""
    pos = _positions(net)
    i, j = pos[k], pos[k + 1]
    shape = net.shapes[i + 1]
    channels = shape[0]
    out = []
    for c in range(channels):
        probe = np.zeros((1,) + tuple(shape), np.float32)
        probe[0, c] = 1.0
        h = probe
        for step in net.steps[i + 1:j]:
            h = step(h)
        h = h[0]
        out.append(np.abs(h).reshape(h.shape[0], -1).sum(1) > 0 if isinstance(net.steps[j], Conv2d)
                   else np.abs(h).reshape(-1) > 0)
    return np.array(out)


def _outgoing(layer, inputs):
    """The next layer's weights on the inputs ``inputs`` (bool over its features/channels)."""
    if isinstance(layer, Dense):
        return layer.weight[inputs]
    return layer.weight[:, inputs]


def removable(net, k):
    """Bool over layer k's outputs: neurons that can go without changing the network."""
    layer, nxt = net.layers[k], net.layers[k + 1]
    F = feeds(net, k)
    unused = np.array([not np.any(_outgoing(nxt, f)) for f in F])
    incoming = layer.matrix if isinstance(layer, Dense) else layer.weight.reshape(layer.weight.shape[0], -1).T
    silent = layer.relu & ~np.any(incoming, axis=0) & (layer.bias <= 0)
    return unused | silent


def remove_neurons(net, k, keep):
    """A copy of ``net`` in which layer ``k`` keeps only the outputs ``keep`` (bool), and
    layer ``k+1`` only the inputs they feed.  Valid when the removed outputs are unused or
    always zero (see :func:`removable`)."""
    keep = np.asarray(keep, bool)
    F = feeds(net, k)
    out = net.copy()
    layer, nxt = out.layers[k], out.layers[k + 1]
    if isinstance(layer, Conv2d):
        layer.weight, layer.bias = layer.weight[keep], layer.bias[keep]
    else:
        layer.weight, layer.bias = layer.weight[:, keep], layer.bias[keep]
    inputs = F[keep].any(axis=0)
    if isinstance(nxt, Conv2d):
        nxt.weight = nxt.weight[:, inputs]
    else:
        nxt.weight = nxt.weight[inputs]
    return type(net)(out.steps, out.input_shape)


def shrink(net):
    """Remove every neuron that does not change the network's outputs.

    Returns ``(smaller_network, removed)`` with ``removed[k]`` the number of outputs of layer
    ``k`` taken out."""
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network, got {type(net).__name__}")
    removed = [0] * len(net.layers)
    changed = True
    while changed:
        changed = False
        for k in range(len(net.layers) - 1):
            layer, nxt = net.layers[k], net.layers[k + 1]
            if getattr(layer, "groups", 1) != 1 or getattr(nxt, "groups", 1) != 1:
                continue
            net = _fold_constants(net, k)
            gone = removable(net, k)
            if gone.any() and not gone.all():
                net = remove_neurons(net, k, ~gone)
                removed[k] += int(gone.sum())
                changed = True
    return net, removed


def _fold_constants(net, k):
    """Dense -> Dense: a ReLU neuron without incoming weights adds relu(b) * its row to the next bias."""
    pos = _positions(net)
    layer, nxt = net.layers[k], net.layers[k + 1]
    if not (isinstance(layer, Dense) and isinstance(nxt, Dense) and pos[k + 1] == pos[k] + 1 and layer.relu):
        return net
    const = ~np.any(layer.weight, axis=0) & (layer.bias > 0) & np.any(nxt.weight, axis=1)
    if not const.any():
        return net
    net = net.copy()
    layer, nxt = net.layers[k], net.layers[k + 1]
    nxt.bias = (nxt.bias + layer.bias[const] @ nxt.weight[const]).astype(np.float32)
    nxt.has_bias = True
    nxt.weight[const] = 0
    return net
