"""A framework-agnostic feed-forward network: an ordered list of steps (see :mod:`nettrim.layers`).

On construction, batch norms are folded into the layer before them and ReLU steps become
that layer's ``relu`` flag (a ReLU after a max pool moves before it: they commute), so a
network is a chain of prunable layers with parameter-free steps between them.  Forward
passes run in float32 batches so that memory stays bounded.
"""
from __future__ import annotations

import copy
import os
from typing import List, Optional, Sequence

import numpy as np

from . import _core, npz_layout
from ._validate import as_float_matrix, check_bool, check_output_path, check_shape
from .errors import InvalidArgument, InvalidArgumentType
from .io import atomic_savez, first_line
from .layers import PRUNABLE, AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU

__all__ = ["Network", "Dense", "Conv2d", "Flatten", "MaxPool2d", "AvgPool2d", "BatchNorm", "ReLU",
           "from_arrays", "check_inputs"]


class LayerSizes:
    """The counts of a model's prunable ``layers`` (what :class:`Network` and
    :class:`~nettrim.graph.GraphModel` share)."""

    def nnz(self):
        return sum(layer.nnz() for layer in self.layers)

    def size(self):
        return sum(layer.size for layer in self.layers)

    def size_report(self):
        """Bytes of the weights and biases stored dense (float32) and as CSR (float32 values, int32 indices)."""
        rows = []
        for layer in self.layers:
            matrix = layer.weight if isinstance(layer, Dense) else layer.weight.reshape(layer.weight.shape[0], -1)
            dense = 4 * (matrix.size + layer.bias.size)
            csr = 4 * (2 * int(np.count_nonzero(matrix)) + matrix.shape[0] + 1 + layer.bias.size)
            rows.append({"layer": layer.name, "dense_bytes": dense, "sparse_bytes": csr})
        return {"layers": rows, "dense_bytes": sum(r["dense_bytes"] for r in rows),
                "sparse_bytes": sum(r["sparse_bytes"] for r in rows)}


class Network(LayerSizes):
    """A chain of steps.  ``layers`` are the prunable ones (Dense, Conv2d), in order.

    Parameters
    ----------
    steps : list
        Dense, Conv2d, Flatten, MaxPool2d, AvgPool2d, BatchNorm, ReLU.
    input_shape : tuple, optional
        One sample's shape, e.g. ``(1, 28, 28)``; needed when the first layer is a convolution.
    """

    def __init__(self, steps: Sequence, input_shape: Optional[Sequence[int]] = None):
        if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__"):
            raise InvalidArgumentType(f"steps: expected a list of layers (Dense, Conv2d, Flatten, ...), got {type(steps).__name__}")
        self.steps = _normalize(list(steps))
        if not any(isinstance(s, PRUNABLE) for s in self.steps):
            raise InvalidArgument("layers: expected at least one Dense or Conv2d layer, got none")
        if not any(layer.relu for layer in self.layers):
            raise InvalidArgument("layers: expected at least one ReLU layer (Net-Trim prunes ReLU networks), got none")
        for k, layer in enumerate(self.layers):
            if not layer.name:
                layer.name = f"{'dense' if isinstance(layer, Dense) else 'conv'}{k}"
        if input_shape is None:
            first = self.steps[0]
            if not isinstance(first, Dense):
                raise InvalidArgument("input_shape: required when the network does not start with a Dense layer, "
                                 "e.g. (1, 28, 28) for one-channel 28x28 images")
            input_shape = (first.weight.shape[0],)
        self.input_shape = check_shape("input_shape", input_shape)
        self.shapes = [self.input_shape]                 # shapes[i]: input of steps[i]; last: output
        for i, step in enumerate(self.steps):
            try:
                self.shapes.append(tuple(step.output_shape(self.shapes[-1])))
            except ValueError as e:
                where = "the network's input" if i == 0 else f"the output of steps[{i - 1}]"
                raise InvalidArgument(f"{e} ({where}; input_shape {self.input_shape})") from None

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

    def sample_positions(self, n_samples, max_samples=None, seed=0, max_dense=None):
        """For every prunable layer, the rows of its Net-Trim problem: (images, rows, cols).

        A dense layer uses every sample, or a seeded random subset of ``max_dense`` of them
        (a memory budget's choice).  A convolution has one row per sample and output
        pixel; when there are more than ``max_samples`` of those, a seeded random subset
        (sorted, so batches can take theirs in order) is used."""
        plan = []
        k = 0
        for step, in_shape in zip(self.steps, self.shapes):
            if not isinstance(step, PRUNABLE):
                continue
            if isinstance(step, Dense):
                images = np.arange(n_samples)
                if max_dense is not None and n_samples > max_dense:
                    images = np.sort(np.random.default_rng([seed, k]).choice(n_samples, int(max_dense), replace=False))
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

    def memory_estimate(self, n_samples, *, max_samples=None, max_dense=None, scheme="cascade", workers=1,
                        itemsize=4, engine=True, refit=True, threads=None):
        """Bytes that pruning on ``n_samples`` inputs needs at its peak, from the shapes alone.

        Per prunable layer: ``P`` rows of its problem (samples, or sampled positions of a
        convolution), ``N`` inputs (fan-in and the bias), ``M`` outputs (per group), and ``bytes``:
        its unfolded float32 inputs (kept for the whole run) and its problem's targets (and
        bounds), plus the largest of the moments of its pruning: the solver's set-up (its inputs
        in the solve's dtype, the engine's copies of the targets, their float64 summaries), the
        solve (the engine's working memory at ``itemsize``, the backend's own figure
        ``_core.workspace_bytes``; a Hessian for the other methods), the re-fit on the support
        (``refit``: the inputs in float64, and each thread's rows of one output) and the check of
        the returned weights (float64 temporaries, nettrim.metrics).  ``engine``: True (the "cpu"
        backend), a backend name, or False for the other methods.  ``threads``: the run's threads
        (None or 0: the machine's processors).  ``total`` adds the inputs of every layer, the
        calibration data as float32, the BLAS libraries' thread buffers, and the largest layer's
        peak times the parallel ``workers``.  Returns ``{"layers": [...], "total":
        bytes}``; tests/test_memory_estimate.py compares it with the peak RSS of a real run."""
        backend = engine if isinstance(engine, str) else "cpu"
        dtype = "float64" if int(itemsize) == 8 else "float32"
        threads = int(threads) if threads else (os.cpu_count() or 1)
        rows, signals, peaks, gemms = [], [], [], []
        for k, (step, in_shape) in enumerate((s, i) for s, i in zip(self.steps, self.shapes) if isinstance(s, PRUNABLE)):
            if isinstance(step, Dense):
                P = n_samples if max_dense is None else min(n_samples, int(max_dense))
                P, cols, fan_in, M, kind = P, step.weight.shape[0], step.weight.shape[0], step.weight.shape[1], "dense"
                groups = 1
            else:
                _, h, w = step.output_shape(in_shape)
                total = n_samples * h * w
                P = total if max_samples is None else min(total, int(max_samples))
                cols, fan_in = in_shape[0] * step.kernel[0] * step.kernel[1], step.weight[0].size
                M, kind, groups = step.weight.shape[0] // step.groups, "conv", step.groups
            N = fan_in + 1
            PM = float(P) * float(M)                        # one group's outputs
            bounded = scheme == "cascade" and k > 0 and bool(step.relu)   # V = W^T Xhat on the pruned signals
            kept = 4.0 * P * cols + 24.0 * P                # float32 inputs, sample positions
            # While the layer is pruned: its targets (and bounds) in float32, a group's inputs
            # copied out of the unfolded ones.
            held = 4.0 * PM * groups * (2 if bounded else 1) + (4.0 * P * fan_in if groups > 1 else 0.0)
            if engine:
                work = float(_core.workspace_bytes(P, N, M, bounded, dtype, backend))
                # LayerSolver: X with its bias column in the solve's dtype; the engine's copies of
                # Y (and V); the float64 column norms of the targets (an omega mask and four
                # float64 P x M arrays at once, solver._summarize_target).
                setup = itemsize * P * N + itemsize * PM * (2 if bounded else 1) + 33.0 * PM
                solve = itemsize * P * N + work + itemsize * PM     # the result's copy of the dual L1
            else:
                setup, solve = 0.0, 8.0 * (3 * N * N + P * N + P * M)
            # The re-fit on the support (methods.refit, the engine's refit_support), while the
            # layer's solver is still held: X, Y (and V) in float64, and per thread one output's
            # rows on its support, active and inactive, and the inactive ones again (1.5 P x k in
            # float64; supports of k = N / 2 assumed: measured 36% and 51% at eps_rel 0.05).
            redo = ((solve if engine else 0.0) + 8.0 * P * fan_in + 8.0 * PM * (2 if bounded else 1)
                    + 6.0 * P * N * min(threads, M)) if refit else 0.0
            # Cascade, on the pruned signals: the tolerance's floor re-fits every weight
            # (methods.refit.kept_dense, numpy) while the layer's solver is at work (measured):
            # X, X with its bias column, Y and V in float64, and one output's rows of X gathered
            # twice (56 bytes per entry where N = M; measured 60).
            floor = (solve + 8.0 * P * fan_in + 24.0 * P * N + 16.0 * PM) if bounded and engine else 0.0
            # The check of the returned weights (schemes.layer_report): the responses in float32
            # (and, without V, zero bounds), the omega mask, and in metrics.constraint_violations
            # six float64 P x M arrays at once (measured 48 bytes an entry: responses, targets,
            # their difference, the excess, the RMS's square), four for a linear layer.
            check = (53.0 + (0.0 if bounded else 4.0)) * PM if step.relu else 37.0 * PM
            peak = held + max(setup, solve, redo, floor, check)
            signals.append(kept)
            peaks.append(peak)
            gemms.append(4.0 * (P * N + N * M))
            rows.append({"name": step.name, "kind": kind, "P": int(P), "N": int(N), "M": int(M),
                         "bytes": int(kept + peak)})
        parallel = max(1, int(workers)) if scheme == "parallel" else 1
        # The pruned network's inputs to one layer (cascade; the first layer's are the original ones).
        cascade = max(signals[1:], default=0.0) if scheme == "cascade" else 0.0
        # OpenBLAS's thread buffers, numpy's and the engine's, as far as a layer's products fill
        # them (measured 31 MiB each on 2 threads for 20000 x 401 x 300).
        blas = 2.0 * threads * min(16.0 * (1 << 20), max(gemms))
        total = 4.0 * n_samples * self.n_inputs + sum(signals) + cascade + blas + max(peaks) * parallel
        return {"layers": rows, "total": int(total)}

    def layer_inputs(self, X, plan, which, *, batch_size=256):
        """Unfolded inputs of the prunable layers ``which`` at the positions ``plan``: {k: (S_k, fan_in)}.

        ``X`` must already be checked (see :func:`check_inputs`).  The pass stops after the last
        layer asked for."""
        which = sorted(set(which))
        need = sum(4 * len(plan[k][0]) * _unfolded_columns(self.layers[k]) for k in which)
        have = _core.available_memory()
        if have and 2 * need > have:
            k = max(which, key=lambda k: len(plan[k][0]) * _unfolded_columns(self.layers[k]))
            raise MemoryError(f"{self.layers[k].name}: its unfolded inputs ({len(plan[k][0])} rows x "
                              f"{_unfolded_columns(self.layers[k])} columns) and the other layers' need about "
                              f"{2 * need >> 20} MiB, but only {have >> 20} MiB are available; lower max_samples "
                              f"or use fewer calibration samples")
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

    # --- files ----------------------------------------------------------------------------
    def save_npz(self, path, *, sparse=False, layout="nettrim"):
        """The network in one ``.npz``, written atomically; returns the file's sha256.

        See :mod:`nettrim.npz_layout` for the layouts ("nettrim", default, or "plain" W0, b0,
        ...).  To write a network back in the layout of the file it was read from, use
        :func:`nettrim.adapters.write` with the provenance :func:`nettrim.adapters.read` gave."""
        path = check_output_path("path", path)
        sparse = check_bool("sparse", sparse)
        return atomic_savez(path, npz_layout.arrays(self.steps, self.input_shape, layout=layout, sparse=sparse))

    @classmethod
    def load_npz(cls, path):
        """A network from an ``.npz``: nettrim's layout or plain arrays ``W0, b0, W1, b1, ...``
        (see :func:`nettrim.adapters.read`, which also gives the file's provenance)."""
        steps, input_shape, _ = npz_layout.read(path)
        try:
            return cls(steps, input_shape)
        except (ValueError, TypeError) as e:
            raise InvalidArgument(f"{path}: {first_line(e)}") from None


def _unfolded_columns(layer):
    return layer.weight.shape[0] if isinstance(layer, Dense) else layer.weight.shape[1] * layer.groups * \
        layer.kernel[0] * layer.kernel[1]


def _normalize(steps):
    """Fold batch norms and ReLUs into the prunable layer before them."""
    out = []
    for i, step in enumerate(steps):
        if isinstance(step, BatchNorm):
            prev = out[-1] if out else None
            if not isinstance(prev, PRUNABLE) or prev.relu:
                raise InvalidArgument(f"steps[{i}]: a BatchNorm must directly follow a Dense or Conv2d layer "
                                 f"(it is folded into it), got it after {type(prev).__name__}")
            outputs = prev.bias.shape[0]
            if any(np.shape(v) not in ((outputs,), ()) for v in (step.weight, step.bias, step.mean, step.var)
                   if v is not None):
                raise InvalidArgument(f"steps[{i}]: a BatchNorm over {np.shape(step.mean)} features follows a layer "
                                 f"with {outputs} outputs")
            prev.scale_outputs(*step.affine())
        elif isinstance(step, ReLU):
            j = len(out) - 1
            while j >= 0 and type(out[j]) is MaxPool2d:   # max pooling commutes with ReLU
                j -= 1
            if j < 0 or not isinstance(out[j], PRUNABLE):
                raise InvalidArgument(f"steps[{i}]: a ReLU must follow a Dense or Conv2d layer (possibly through "
                                 f"max pooling), got it after {type(out[-1]).__name__ if out else 'nothing'}")
            out[j].relu = True
        elif isinstance(step, PRUNABLE + (Flatten, MaxPool2d)):
            out.append(copy.copy(step) if isinstance(step, PRUNABLE) else step)
        else:
            raise InvalidArgument(f"steps[{i}]: unsupported step {type(step).__name__}")
    return out


def from_arrays(weights, biases=None, *, last_linear=True) -> Network:
    """A ReLU MLP from a list of weight matrices (n_in, n_out) and a list of biases (n_out,).

    ``biases`` may be None (no layer has a bias) or hold None for a layer without one.  With
    ``last_linear`` the last layer has no ReLU (logits)."""
    last_linear = check_bool("last_linear", last_linear)
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise InvalidArgumentType(f"weights: expected a list of weight matrices (n_in, n_out), got {type(weights).__name__}")
    if biases is None:
        biases = [None] * len(weights)
    if isinstance(biases, np.ndarray) or not isinstance(biases, (list, tuple)):
        raise InvalidArgumentType(f"biases: expected a list of bias vectors (or None), got {type(biases).__name__}")
    if len(weights) != len(biases) or not weights:
        raise InvalidArgument(f"weights, biases: expected two non-empty lists of equal length, got "
                         f"{len(weights)} and {len(biases)}")
    layers = []
    for i, (W, b) in enumerate(zip(weights, biases)):
        if W is None:
            raise InvalidArgumentType(f"weights[{i}]: expected a weight matrix (n_in, n_out), got None"
                            + (" (a bias without its weights)" if b is not None else ""))
        W = as_float_matrix(f"weights[{i}]", _numeric(W))
        if i and W.shape[0] != layers[-1].weight.shape[1]:
            raise InvalidArgument(f"weights[{i}]: expected {layers[-1].weight.shape[1]} rows (the outputs of weights[{i - 1}]), "
                             f"got shape {W.shape}")
        if b is not None:
            b = np.asarray(_numeric(b))
            if b.shape != (W.shape[1],):
                raise InvalidArgument(f"biases[{i}]: expected shape ({W.shape[1]},) to match weights[{i}] {W.shape}, "
                                 f"got {b.shape}")
            b = as_float_matrix(f"biases[{i}]", b[None])[0]
        layers.append(Dense(W, b, relu=not (last_linear and i == len(weights) - 1)))
    return Network(layers)


def _numeric(a):
    """Integer arrays as float (weights given as integers are numbers, not an error)."""
    arr = np.asarray(a)
    return arr.astype(np.float64) if np.issubdtype(arr.dtype, np.integer) else arr


def check_inputs(net: Network, X, name="X") -> np.ndarray:
    """``X`` as float32 of shape (samples,) + input_shape; flat rows are reshaped."""
    if X is None:
        raise InvalidArgumentType(f"{name}: expected an array (samples, ...) of the model's inputs, got None")
    arr = np.asarray(X)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidArgumentType(f"{name}: expected real numbers, got dtype {arr.dtype}")
    n = net.n_inputs
    if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != n or (arr.ndim > 2 and arr.shape[1:] != net.input_shape):
        raise InvalidArgument(f"{name}: expected shape (samples, {n})"
                         + (f" or (samples, {', '.join(map(str, net.input_shape))})" if len(net.input_shape) > 1 else "")
                         + f" to match the model's input, got {np.shape(X)}")
    if len(arr) == 0:
        raise InvalidArgument(f"{name}: expected at least one sample, got an empty array")
    arr = arr.astype(np.float32, copy=False).reshape((len(arr),) + net.input_shape)
    step = max(1, (1 << 24) // max(1, n))       # a bounded temporary, even for a huge (broadcast) input
    for start in range(0, len(arr), step):
        if not np.isfinite(arr[start:start + step]).all():
            raise InvalidArgument(f"{name}: expected finite values, got NaN or Inf")
    return arr
