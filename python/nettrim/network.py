"""A framework-agnostic feed-forward network: an ordered list of steps (see :mod:`nettrim.layers`).

On construction, batch norms are folded into the layer before them and ReLU steps become
that layer's ``relu`` flag (a ReLU after a max pool moves before it: they commute), so a
network is a chain of prunable layers with parameter-free steps between them.  Forward
passes run in float32 batches so that memory stays bounded.
"""
from __future__ import annotations

import copy
import json
from typing import List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from .layers import PRUNABLE, AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU

__all__ = ["Network", "Dense", "Conv2d", "Flatten", "MaxPool2d", "AvgPool2d", "BatchNorm", "ReLU",
           "from_arrays", "check_inputs"]


class Network:
    """A chain of steps.  ``layers`` are the prunable ones (Dense, Conv2d), in order.

    Parameters
    ----------
    steps : list
        Dense, Conv2d, Flatten, MaxPool2d, AvgPool2d, BatchNorm, ReLU.
    input_shape : tuple, optional
        One sample's shape, e.g. ``(1, 28, 28)``; needed when the first layer is a convolution.
    """

    def __init__(self, steps: Sequence, input_shape: Optional[Sequence[int]] = None):
        self.steps = _normalize(list(steps))
        if not any(isinstance(s, PRUNABLE) for s in self.steps):
            raise ValueError("layers: expected at least one Dense or Conv2d layer, got none")
        if not any(layer.relu for layer in self.layers):
            raise ValueError("layers: expected at least one ReLU layer (Net-Trim prunes ReLU networks), got none")
        for k, layer in enumerate(self.layers):
            if not layer.name:
                layer.name = f"{'dense' if isinstance(layer, Dense) else 'conv'}{k}"
        if input_shape is None:
            first = self.steps[0]
            if not isinstance(first, Dense):
                raise ValueError("input_shape: required when the network does not start with a Dense layer, "
                                 "e.g. (1, 28, 28) for one-channel 28x28 images")
            input_shape = (first.W.shape[0],)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.shapes = [self.input_shape]                 # shapes[i]: input of steps[i]; last: output
        for step in self.steps:
            self.shapes.append(tuple(step.output_shape(self.shapes[-1])))

    @property
    def layers(self) -> List:
        return [s for s in self.steps if isinstance(s, PRUNABLE)]

    @property
    def n_inputs(self):
        return int(np.prod(self.input_shape))

    def copy(self):
        return copy.deepcopy(self)

    def __repr__(self):
        body = ", ".join(f"{s.name} {'x'.join(map(str, s.shape))}{' relu' if s.relu else ''}"
                         if isinstance(s, PRUNABLE) else type(s).__name__ for s in self.steps)
        return f"Network(input {self.input_shape}: {body})"

    # --- forward passes --------------------------------------------------------------------
    def forward(self, X, *, batch_size=1024):
        """The network's outputs on inputs X (samples first), in float32 batches."""
        X = check_inputs(self, X)
        outs = []
        for start in range(0, len(X), batch_size):
            h = X[start:start + batch_size]
            for step in self.steps:
                h = step(h)
            outs.append(h)
        return np.concatenate(outs)

    def predict(self, X):
        return np.argmax(self.forward(X), axis=1)

    def sample_positions(self, n_samples, max_samples=None, seed=0):
        """For every prunable layer, the rows of its Net-Trim problem: (images, rows, cols).

        A dense layer uses every sample.  A convolution has one row per sample and output
        pixel; when there are more than ``max_samples`` of those, a seeded random subset
        (sorted, so batches can take theirs in order) is used."""
        plan = []
        k = 0
        for step, in_shape in zip(self.steps, self.shapes):
            if not isinstance(step, PRUNABLE):
                continue
            if isinstance(step, Dense):
                images = np.arange(n_samples)
                plan.append((images, np.zeros_like(images), np.zeros_like(images)))
            else:
                _, h, w = step.output_shape(in_shape)
                total = n_samples * h * w
                if max_samples is not None and total > max_samples:
                    flat = np.sort(np.random.default_rng([seed, k]).choice(total, int(max_samples), replace=False))
                else:
                    flat = np.arange(total)
                images, pixel = np.divmod(flat, h * w)
                plan.append((images,) + tuple(np.divmod(pixel, w)))
            k += 1
        return plan

    def layer_inputs(self, X, plan, which, *, batch_size=256):
        """Unfolded inputs of the prunable layers ``which`` at the positions ``plan``: {k: (S_k, fan_in)}.

        ``X`` must already be checked (see :func:`check_inputs`).  The pass stops after the last
        layer asked for."""
        which = sorted(set(which))
        parts = {k: [] for k in which}
        for start in range(0, len(X), batch_size):
            stop = min(len(X), start + batch_size)
            h, k = X[start:stop], 0
            for step in self.steps:
                if isinstance(step, PRUNABLE):
                    if k in parts:
                        images, rows, cols = plan[k]
                        lo, hi = np.searchsorted(images, [start, stop])
                        parts[k].append(step.unfold(h, images[lo:hi] - start, rows[lo:hi], cols[lo:hi]))
                    if k == which[-1]:
                        break
                    k += 1
                h = step(h)
        return {k: np.ascontiguousarray(np.concatenate(v), dtype=np.float32) for k, v in parts.items()}

    # --- size -----------------------------------------------------------------------------
    def nnz(self):
        return sum(layer.nnz() for layer in self.layers)

    def size(self):
        return sum(layer.size for layer in self.layers)

    def size_report(self):
        """Bytes of the weights and biases stored dense (float32) and as CSR (float32 values, int32 indices)."""
        rows = []
        for layer in self.layers:
            matrix = layer.W if isinstance(layer, Dense) else layer.weight.reshape(layer.weight.shape[0], -1)
            dense = 4 * (matrix.size + layer.b.size)
            csr = 4 * (2 * int(np.count_nonzero(matrix)) + matrix.shape[0] + 1 + layer.b.size)
            rows.append({"layer": layer.name, "dense_bytes": dense, "sparse_bytes": csr})
        return {"layers": rows, "dense_bytes": sum(r["dense_bytes"] for r in rows),
                "sparse_bytes": sum(r["sparse_bytes"] for r in rows)}

    # --- files ----------------------------------------------------------------------------
    def save_npz(self, path, *, sparse=False):
        """The network in one ``.npz`` (weights dense, or CSR with ``sparse=True``), written atomically."""
        from .io import atomic_savez
        arrays, spec = {}, []
        for i, step in enumerate(self.steps):
            entry = {"type": type(step).__name__}
            if isinstance(step, PRUNABLE):
                entry.update(name=step.name, relu=bool(step.relu), has_bias=bool(step.has_bias))
                weight = step.W if isinstance(step, Dense) else step.weight
                if isinstance(step, Conv2d):
                    entry.update(stride=step.stride, padding=step.padding, dilation=step.dilation,
                                 groups=step.groups, shape=list(weight.shape))
                if sparse:
                    S = sp.csr_matrix(weight.reshape(weight.shape[0], -1))
                    arrays.update({f"{i}.data": S.data, f"{i}.indices": S.indices.astype(np.int32),
                                   f"{i}.indptr": S.indptr.astype(np.int64), f"{i}.rows": np.array(S.shape)})
                else:
                    arrays[f"{i}.weight"] = weight
                arrays[f"{i}.bias"] = step.b
            elif isinstance(step, MaxPool2d):
                entry.update(kernel=step.kernel, stride=step.stride, padding=step.padding)
                if isinstance(step, AvgPool2d):
                    entry["count_include_pad"] = step.count_include_pad
            spec.append(entry)
        arrays["__nettrim__"] = np.array(json.dumps({"input_shape": self.input_shape, "steps": spec}))
        atomic_savez(path, arrays)

    @classmethod
    def load_npz(cls, path):
        """A network saved by :meth:`save_npz`, or plain arrays W0, b0, W1, b1, ... (W as inputs x outputs)."""
        with np.load(path, allow_pickle=False) as z:
            if "__nettrim__" in z.files:
                return _from_spec(json.loads(str(z["__nettrim__"])), z)
            weights, biases, relus = [], [], []
            while f"W{len(weights)}" in z.files and f"b{len(weights)}" in z.files:
                i = len(weights)
                weights.append(z[f"W{i}"])
                biases.append(z[f"b{i}"])
                relus.append(bool(z[f"relu{i}"]) if f"relu{i}" in z.files else None)
            if not weights:
                raise ValueError(f"{path}: expected a network saved by nettrim or arrays W0, b0, W1, b1, ..., "
                                 f"found {z.files}")
        if all(r is None for r in relus):   # plain weight lists: ReLU everywhere but the last layer
            relus = [True] * (len(weights) - 1) + [False]
        relus = [True if r is None else r for r in relus]
        return cls([Dense(W, b, r) for W, b, r in zip(weights, biases, relus)])


def _from_spec(spec, z):
    steps = []
    for i, e in enumerate(spec["steps"]):
        kind = e["type"]
        if kind in ("Dense", "Conv2d"):
            if f"{i}.weight" in z.files:
                weight = z[f"{i}.weight"]
            else:
                weight = sp.csr_matrix((z[f"{i}.data"], z[f"{i}.indices"], z[f"{i}.indptr"]),
                                       shape=tuple(z[f"{i}.rows"])).toarray()
            if kind == "Dense":
                steps.append(Dense(weight, z[f"{i}.bias"], e["relu"], e["name"], e["has_bias"]))
            else:
                steps.append(Conv2d(weight.reshape(e["shape"]), z[f"{i}.bias"], e["stride"], e["padding"],
                                    e["dilation"], e["groups"], e["relu"], e["name"], e["has_bias"]))
        elif kind == "Flatten":
            steps.append(Flatten())
        elif kind == "MaxPool2d":
            steps.append(MaxPool2d(e["kernel"], e["stride"], e["padding"]))
        elif kind == "AvgPool2d":
            steps.append(AvgPool2d(e["kernel"], e["stride"], e["padding"], e["count_include_pad"]))
        else:
            raise ValueError(f"unknown step type {kind!r} in the file")
    return Network(steps, spec["input_shape"])


def _normalize(steps):
    """Fold batch norms and ReLUs into the prunable layer before them."""
    out = []
    for i, step in enumerate(steps):
        if isinstance(step, BatchNorm):
            prev = out[-1] if out else None
            if not isinstance(prev, PRUNABLE) or prev.relu:
                raise ValueError(f"steps[{i}]: a BatchNorm must directly follow a Dense or Conv2d layer "
                                 f"(it is folded into it), got it after {type(prev).__name__}")
            prev.scale_outputs(*step.affine())
        elif isinstance(step, ReLU):
            j = len(out) - 1
            while j >= 0 and type(out[j]) is MaxPool2d:   # max pooling commutes with ReLU
                j -= 1
            if j < 0 or not isinstance(out[j], PRUNABLE):
                raise ValueError(f"steps[{i}]: a ReLU must follow a Dense or Conv2d layer (possibly through "
                                 f"max pooling), got it after {type(out[-1]).__name__ if out else 'nothing'}")
            out[j].relu = True
        elif isinstance(step, PRUNABLE + (Flatten, MaxPool2d)):
            out.append(copy.copy(step) if isinstance(step, PRUNABLE) else step)
        else:
            raise ValueError(f"steps[{i}]: unsupported step {type(step).__name__}")
    return out


def from_arrays(weights, biases, *, last_linear=True) -> Network:
    """A ReLU MLP from lists of weight matrices (n_in, n_out) and biases."""
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"weights, biases: expected two non-empty lists of equal length, got "
                         f"{len(weights)} and {len(biases)}")
    return Network([Dense(W, b, relu=not (last_linear and i == len(weights) - 1))
                    for i, (W, b) in enumerate(zip(weights, biases))])


def check_inputs(net: Network, X, name="X") -> np.ndarray:
    """``X`` as float32 of shape (samples,) + input_shape; flat rows are reshaped."""
    arr = np.asarray(X)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected numeric inputs, got dtype {arr.dtype}")
    n = net.n_inputs
    if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != n or (arr.ndim > 2 and arr.shape[1:] != net.input_shape):
        raise ValueError(f"{name}: expected shape (samples, {n})"
                         + (f" or (samples, {', '.join(map(str, net.input_shape))})" if len(net.input_shape) > 1 else "")
                         + f" to match the model's input, got {np.shape(X)}")
    if len(arr) == 0:
        raise ValueError(f"{name}: expected at least one sample, got an empty array")
    arr = arr.astype(np.float32, copy=False).reshape((len(arr),) + net.input_shape)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got NaN or Inf")
    return arr
