"""A framework-agnostic feed-forward network: dense layers with ReLU (or nothing) after them.

Weights are stored as ``W`` of shape (n_in, n_out) (scikit-learn's orientation) and a
bias of shape (n_out,).  The forward pass runs in float32 batches so memory stays bounded.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import List

import numpy as np
import scipy.sparse as sp


@dataclass
class Dense:
    W: np.ndarray                 # (n_in, n_out)
    b: np.ndarray                 # (n_out,)
    relu: bool = True             # a ReLU follows (False: linear, e.g. logits)
    name: str = ""

    @property
    def shape(self):
        return self.W.shape

    def preactivation(self, X):
        return X @ self.W + self.b

    def __call__(self, X):
        Z = self.preactivation(X)
        return np.maximum(Z, 0) if self.relu else Z


@dataclass
class Network:
    layers: List[Dense] = field(default_factory=list)

    def __post_init__(self):
        for i, layer in enumerate(self.layers):
            if not layer.name:
                layer.name = f"dense{i}"
        for a, b in zip(self.layers, self.layers[1:]):
            if a.W.shape[1] != b.W.shape[0]:
                raise ValueError(f"layers: {a.name} has {a.W.shape[1]} outputs but {b.name} expects "
                                 f"{b.W.shape[0]} inputs")
        if self.layers and not any(layer.relu for layer in self.layers):
            raise ValueError("layers: expected at least one ReLU layer (Net-Trim prunes ReLU networks), got none")

    @property
    def n_inputs(self):
        return self.layers[0].W.shape[0]

    def copy(self):
        return copy.deepcopy(self)

    def forward(self, X, *, batch_size=4096):
        """The network's outputs (P, n_out) on inputs X (P, n_in), in float32 batches."""
        X = check_inputs(self, X)
        outs = []
        for start in range(0, len(X), batch_size):
            h = X[start:start + batch_size]
            for layer in self.layers:
                h = layer(h)
            outs.append(h)
        return np.concatenate(outs)

    def signals(self, X):
        """Every layer's input, then the last output: a list of L + 1 arrays (float32)."""
        h = check_inputs(self, X)
        out = [h]
        for layer in self.layers:
            h = layer(h).astype(np.float32, copy=False)
            out.append(h)
        return out

    def nnz(self):
        return sum(int(np.count_nonzero(layer.W)) for layer in self.layers)

    def size(self):
        return sum(layer.W.size for layer in self.layers)

    def predict(self, X):
        return np.argmax(self.forward(X), axis=1)

    def save_npz(self, path, *, sparse=False):
        """Weights as W0, b0, W1, b1, ... (dense) or CSR triplets (sparse=True), written atomically."""
        from .io import atomic_savez
        arrays = {}
        for i, layer in enumerate(self.layers):
            if sparse:
                S = sp.csr_matrix(layer.W)
                arrays.update({f"W{i}_data": S.data, f"W{i}_indices": S.indices, f"W{i}_indptr": S.indptr,
                               f"W{i}_shape": np.array(S.shape)})
            else:
                arrays[f"W{i}"] = layer.W
            arrays[f"b{i}"] = layer.b
            arrays[f"relu{i}"] = np.array(layer.relu)
        atomic_savez(path, arrays)

    @classmethod
    def load_npz(cls, path):
        z = np.load(path)
        layers, i = [], 0
        while f"b{i}" in z.files:
            if f"W{i}" in z.files:
                W = z[f"W{i}"]
            else:
                W = sp.csr_matrix((z[f"W{i}_data"], z[f"W{i}_indices"], z[f"W{i}_indptr"]),
                                  shape=tuple(z[f"W{i}_shape"])).toarray()
            relu = bool(z[f"relu{i}"]) if f"relu{i}" in z.files else True
            layers.append(Dense(W, z[f"b{i}"], relu))
            i += 1
        if not layers:
            raise ValueError(f"{path}: expected arrays W0, b0, W1, b1, ..., found {z.files}")
        if f"relu{i - 1}" not in z.files:
            layers[-1].relu = False  # plain weight lists: the last layer gives logits
        return cls(layers)


def from_arrays(weights, biases, *, last_linear=True) -> Network:
    """A network from lists of weight matrices (n_in, n_out) and biases."""
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"weights, biases: expected two non-empty lists of equal length, got "
                         f"{len(weights)} and {len(biases)}")
    layers = [Dense(np.asarray(W, np.float32), np.asarray(b, np.float32).reshape(-1),
                    relu=not (last_linear and i == len(weights) - 1))
              for i, (W, b) in enumerate(zip(weights, biases))]
    return Network(layers)


def check_inputs(net: Network, X, name="X") -> np.ndarray:
    arr = np.asarray(X)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected numeric calibration inputs, got dtype {arr.dtype}")
    if arr.ndim != 2:
        arr = arr.reshape(len(arr), -1) if arr.ndim > 2 else arr
    if arr.ndim != 2 or arr.shape[1] != net.n_inputs:
        raise ValueError(f"{name}: expected shape (samples, {net.n_inputs}) to match the model's input, "
                         f"got {np.shape(X)}")
    if len(arr) == 0:
        raise ValueError(f"{name}: expected at least one calibration sample, got an empty array")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got NaN or Inf")
    return arr


