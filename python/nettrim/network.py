"""A framework-agnostic feed-forward network: an ordered list of steps (see :mod:`nettrim.layers`).

On construction, batch norms are folded into the layer before them and ReLU steps become
that layer's ``relu`` flag (a ReLU after a max pool moves before it: they commute), so a
network is a chain of prunable layers with parameter-free steps between them.  Forward
passes run in float32 batches so that memory stays bounded.
"""
from __future__ import annotations

import copy
import json
import os
from typing import List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from .errors import InvalidArgument, InvalidArgumentType
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
        from ._validate import check_shape
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

    def memory_estimate(self, n_samples, *, max_samples=None, scheme="cascade", workers=1, itemsize=4,
                        engine=True):
        """Bytes that pruning on ``n_samples`` inputs needs, from the shapes alone.

        Per prunable layer: ``P`` rows of its problem (samples, or sampled positions of a
        convolution), ``N`` inputs (fan-in and the bias), ``M`` outputs (per group), the bytes
        of its unfolded float32 inputs (kept for the whole run) and of one solve (the engine's
        working memory at ``itemsize``, or a Hessian for the other methods).  ``total`` adds the
        inputs of every layer, the calibration data as float32, and the largest solve times
        the parallel ``workers``.  Returns ``{"layers": [...], "total": bytes}``."""
        from . import _core
        workspace = getattr(_core, "workspace_bytes", None)
        rows, signals, solves = [], [], []
        for step, in_shape in zip(self.steps, self.shapes):
            if not isinstance(step, PRUNABLE):
                continue
            if isinstance(step, Dense):
                P, cols, fan_in, M, kind = n_samples, step.weight.shape[0], step.weight.shape[0], step.weight.shape[1], "dense"
            else:
                _, h, w = step.output_shape(in_shape)
                total = n_samples * h * w
                P = total if max_samples is None else min(total, int(max_samples))
                cols, fan_in = in_shape[0] * step.kernel[0] * step.kernel[1], step.weight[0].size
                M, kind = step.weight.shape[0] // step.groups, "conv"
            N = fan_in + 1
            kept = 4.0 * P * cols + 24.0 * P                      # float32 inputs, sample positions
            if engine and workspace is not None:
                work = float(workspace(N, P, M, True, itemsize))
            else:
                work = 8.0 * (3 * N * N + P * N + P * M)
            solve = 4.0 * P * fan_in + 13.0 * P * M + itemsize * P * (N + M) + work
            signals.append(kept)
            solves.append(solve)
            rows.append({"name": step.name, "kind": kind, "P": int(P), "N": int(N), "M": int(M),
                         "bytes": int(kept + solve)})
        parallel = max(1, int(workers)) if scheme == "parallel" else 1
        cascade = max(signals) if scheme == "cascade" else 0      # the pruned network's inputs to one layer
        total = 4.0 * n_samples * self.n_inputs + sum(signals) + cascade + max(solves) * parallel
        return {"layers": rows, "total": int(total)}

    def layer_inputs(self, X, plan, which, *, batch_size=256):
        """Unfolded inputs of the prunable layers ``which`` at the positions ``plan``: {k: (S_k, fan_in)}.

        ``X`` must already be checked (see :func:`check_inputs`).  The pass stops after the last
        layer asked for."""
        which = sorted(set(which))
        need = sum(4 * len(plan[k][0]) * _unfolded_columns(self.layers[k]) for k in which)
        from ._validate import available_memory
        have = available_memory()
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

    # --- size -----------------------------------------------------------------------------
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

    # --- files ----------------------------------------------------------------------------
    def save_npz(self, path, *, sparse=False, layout=None):
        """The network in one ``.npz``, written atomically; returns the file's sha256.

        Two layouts:

        - ``"plain"``: arrays ``W0, b0, W1, b1, ...`` with every ``W`` stored **inputs x outputs**
          (scikit-learn's ``coefs_`` orientation, ``y = relu(x @ W + b)``), the layout
          :meth:`load_npz` reads from any source.  A network read from such a file is written
          back in it by default, with the same keys (``relu0``, ... too when the file had them)
          and the same dtypes.  Only for networks of Dense layers, and not with ``sparse``.
        - ``"nettrim"``: every step and its settings (``__nettrim__``, JSON), a Dense layer's
          weights as ``"{i}.W"`` (inputs x outputs) and a convolution's as ``"{i}.weight"``
          (C_out, C_in/groups, kh, kw, as PyTorch), ``"{i}.bias"``; with ``sparse=True`` the
          weights as CSR arrays (``"{i}.data"``, ``.indices``, ``.indptr``, ``.rows``) of the
          same matrix (a convolution's reshaped to (C_out, -1)) wherever that is smaller than
          dense (below about half the weights kept), so the file shrinks with the pruning.
          The default for everything else."""
        from ._validate import check_bool, check_output_path
        from .io import atomic_savez
        path = check_output_path("path", path)
        sparse = check_bool("sparse", sparse)
        source = getattr(self, "npz_layout", None)
        if layout is None:
            layout = "plain" if source and not sparse and all(isinstance(s, Dense) for s in self.steps) else "nettrim"
        if layout not in ("plain", "nettrim"):
            raise InvalidArgument(f"layout: expected 'plain' or 'nettrim', got {layout!r}")
        if layout == "plain":
            if sparse or not all(isinstance(s, Dense) for s in self.steps):
                raise InvalidArgument("layout: 'plain' (W0, b0, ...) holds dense weights of Dense layers only")
            return atomic_savez(path, _plain_arrays(self, source or {}))
        arrays, spec = {}, []
        for i, step in enumerate(self.steps):
            entry = {"type": type(step).__name__}
            if isinstance(step, PRUNABLE):
                entry.update(name=step.name, relu=bool(step.relu), has_bias=bool(step.has_bias))
                weight = step.weight if isinstance(step, Dense) else step.weight
                if isinstance(step, Conv2d):
                    entry.update(stride=step.stride, padding=step.padding, dilation=step.dilation,
                                 groups=step.groups, shape=list(weight.shape))
                flat = weight.reshape(weight.shape[0], -1)
                if sparse and 8 * np.count_nonzero(flat) + 8 * (flat.shape[0] + 1) < weight.nbytes:
                    S = sp.csr_matrix(flat)
                    arrays.update({f"{i}.data": S.data, f"{i}.indices": S.indices.astype(np.int32),
                                   f"{i}.indptr": S.indptr.astype(np.int64), f"{i}.rows": np.array(S.shape)})
                else:
                    arrays[f"{i}.W" if isinstance(step, Dense) else f"{i}.weight"] = weight
                arrays[f"{i}.bias"] = step.bias
            elif isinstance(step, MaxPool2d):
                entry.update(kernel=step.kernel, stride=step.stride, padding=step.padding)
                if isinstance(step, AvgPool2d):
                    entry["count_include_pad"] = step.count_include_pad
            spec.append(entry)
        arrays["__nettrim__"] = np.array(json.dumps({"version": 2, "input_shape": self.input_shape, "steps": spec}))
        return atomic_savez(path, arrays)

    @classmethod
    def load_npz(cls, path):
        """A network saved by :meth:`save_npz`, or plain arrays ``W0, b0, W1, b1, ...`` (each W
        inputs x outputs; ``relu0, ...`` optional booleans, else ReLU on all but the last layer).

        A plain file's keys and dtypes are remembered (``net.npz_layout``) so that
        :meth:`save_npz` writes the pruned network back in the same layout.  Every error names
        the file (and the array at fault)."""
        import zipfile

        from ._validate import check_path
        path = check_path("path", path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        with open(path, "rb") as fh:       # np.load leaves its own handle open when the zip is damaged
            try:
                z = np.load(fh, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
                raise InvalidArgument(f"{path}: not a readable .npz file ({_first_line(e)})") from None
            if not hasattr(z, "files"):
                raise InvalidArgument(f"{path}: holds a single array; expected an .npz of weights (W0, b0, W1, b1, ...)")
            try:
                with z:
                    if "__nettrim__" in z.files:
                        try:
                            spec = json.loads(str(z["__nettrim__"]))
                        except ValueError as e:
                            raise InvalidArgument(f"__nettrim__: not the JSON description nettrim writes ({e})") from None
                        return _from_spec(spec, z)
                    return _from_plain(cls, z)
            except (ValueError, TypeError, KeyError) as e:
                raise InvalidArgument(f"{path}: {_first_line(e)}") from None
            except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:   # a damaged member (zlib, CRC)
                raise InvalidArgument(f"{path}: cannot read the file, damaged or truncated? ({_first_line(e)})") from None


def _first_line(e):
    text = str(e).strip().strip('"')
    return text.splitlines()[0] if text else type(e).__name__


def _from_plain(cls, z):
    """Arrays W0, b0, W1, b1, ... (and optionally relu0, ...) as a network of Dense layers."""
    from .layers import _array
    keys = set(z.files)
    count = 0
    while f"W{count}" in keys or f"b{count}" in keys:
        count += 1
    if not count:
        raise InvalidArgument(f"expected a network saved by nettrim or arrays W0, b0, W1, b1, ..., found {sorted(keys)}")
    extra = sorted(k for k in keys if k[:1] in "Wb" and k[1:].isdigit() and int(k[1:]) >= count)
    if extra:
        raise InvalidArgument(f"W{count}: missing, but {', '.join(extra)} follow it")
    layers, relus, dtypes = [], [], {}
    for i in range(count):
        if f"W{i}" not in keys:
            raise InvalidArgument(f"W{i}: missing (b{i} has no weights)")
        if f"b{i}" not in keys:
            raise InvalidArgument(f"b{i}: missing (W{i} has no bias; store zeros for a layer without one)")
        raw_W, raw_b = z[f"W{i}"], z[f"b{i}"]
        W = _array(f"W{i}", raw_W, 2, "a weight matrix (inputs x outputs)")
        b = _array(f"b{i}", raw_b, 1, "a bias vector")
        if b.shape != (W.shape[1],):
            raise InvalidArgument(f"b{i}: expected shape ({W.shape[1]},) to match W{i} {W.shape} (inputs x outputs), "
                             f"got {b.shape}")
        if layers and W.shape[0] != layers[-1].weight.shape[1]:
            raise InvalidArgument(f"W{i}: expected {layers[-1].weight.shape[1]} rows (the outputs of W{i - 1}; W is stored "
                             f"inputs x outputs), got shape {W.shape}")
        relu = None
        if f"relu{i}" in keys:
            flag = z[f"relu{i}"]
            if flag.shape != () or flag.dtype.kind not in "bi":
                raise InvalidArgument(f"relu{i}: expected one boolean, got {flag.dtype} of shape {flag.shape}")
            relu = bool(flag)
        dtypes[f"W{i}"], dtypes[f"b{i}"] = raw_W.dtype.str, raw_b.dtype.str
        relus.append(relu)
        layers.append(Dense(W, b, True, f"dense{i}"))
    has_flags = any(r is not None for r in relus)
    for i, layer in enumerate(layers):
        layer.relu = (i < count - 1) if relus[i] is None and not has_flags else (True if relus[i] is None else relus[i])
    net = cls(layers)
    net.npz_layout = {"layout": "plain", "relu_keys": has_flags, "dtypes": dtypes}
    return net


def _plain_arrays(net, source):
    """W0, b0, ... for :meth:`Network.save_npz` in the plain layout, in the source file's dtypes."""
    arrays, dtypes = {}, source.get("dtypes", {})
    for i, layer in enumerate(net.layers):
        arrays[f"W{i}"] = layer.weight.astype(dtypes.get(f"W{i}", np.float32))
        arrays[f"b{i}"] = layer.bias.astype(dtypes.get(f"b{i}", np.float32))
        if source.get("relu_keys"):
            arrays[f"relu{i}"] = np.array(bool(layer.relu))
    return arrays


def _unfolded_columns(layer):
    return layer.weight.shape[0] if isinstance(layer, Dense) else layer.weight.shape[1] * layer.groups * \
        layer.kernel[0] * layer.kernel[1]


def _from_spec(spec, z):
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list) or "input_shape" not in spec:
        raise InvalidArgument("__nettrim__: expected the description nettrim writes (input_shape, steps)")
    steps = []
    for i, e in enumerate(spec["steps"]):
        try:
            steps.append(_step_from_spec(i, e, z))
        except KeyError as missing:
            raise InvalidArgument(f"steps[{i}] ({e.get('type', '?')}): {missing} is missing") from None
    return Network(steps, spec["input_shape"])


def _step_from_spec(i, e, z):
    kind = e["type"]
    if kind in ("Dense", "Conv2d"):
        for key in (f"{i}.W", f"{i}.weight"):    # ".weight" for Dense: files written before version 2
            if key in z.files:
                weight = z[key]
                break
        else:
            rows = tuple(int(v) for v in z[f"{i}.rows"])
            weight = sp.csr_matrix((z[f"{i}.data"], z[f"{i}.indices"], z[f"{i}.indptr"]), shape=rows).toarray()
        name = f"steps[{i}] ({e.get('name') or kind})"
        try:
            if kind == "Dense":
                return Dense(weight, z[f"{i}.bias"], e["relu"], e["name"], e["has_bias"])
            return Conv2d(np.reshape(weight, e["shape"]), z[f"{i}.bias"], e["stride"], e["padding"],
                          e["dilation"], e["groups"], e["relu"], e["name"], e["has_bias"])
        except (ValueError, TypeError) as err:
            raise InvalidArgument(f"{name}: {err}") from None
    if kind == "Flatten":
        return Flatten()
    if kind == "MaxPool2d":
        return MaxPool2d(e["kernel"], e["stride"], e["padding"])
    if kind == "AvgPool2d":
        return AvgPool2d(e["kernel"], e["stride"], e["padding"], e["count_include_pad"])
    raise InvalidArgument(f"steps[{i}]: unknown step type {kind!r} (nettrim writes Dense, Conv2d, Flatten, MaxPool2d, "
                     f"AvgPool2d)")


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
    from ._validate import as_float_matrix, check_bool
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
