"""nettrim's ``.npz`` layouts, between files and layers: every step of any network
(``"nettrim"``), or plain arrays ``W0, b0, W1, b1, ...`` of Dense layers (``"plain"``).

:class:`~nettrim.Network` saves and loads with it, and so does the ``.npz`` adapter
(:mod:`nettrim.adapters.npz`), which adds the provenance a writer needs.  Everything here
returns layers (steps), never a network, so that it sits below both.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import scipy.sparse as sp

from . import _core
from ._validate import check_path
from .errors import InvalidArgument
from .io import first_line
from .layers import PRUNABLE, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, _array

LAYOUTS = ("nettrim", "plain")


def arrays(steps, input_shape, *, layout="nettrim", sparse=False, source=None):
    """The arrays of a network's ``steps`` in ``layout``: "nettrim" (:func:`nettrim_arrays`) or
    "plain" (:func:`plain_arrays`, Dense layers only, dense weights; ``source``: the details
    :func:`read` gave of a plain file, whose keys and dtypes are kept)."""
    if layout not in LAYOUTS:
        raise InvalidArgument(f"layout: expected 'plain' or 'nettrim', got {layout!r}")
    if layout == "nettrim":
        return nettrim_arrays(steps, input_shape, sparse=sparse)
    if sparse or not all(isinstance(s, Dense) for s in steps):
        raise InvalidArgument("layout: 'plain' (W0, b0, ...) holds dense weights of Dense layers only")
    return plain_arrays(steps, source or {})


def nettrim_arrays(steps, input_shape, *, sparse=False):
    """The arrays of nettrim's layout: every step and its settings (``__nettrim__``, JSON), a
    Dense layer's weights as ``"{i}.W"`` (inputs x outputs), a convolution's as ``"{i}.weight"``
    (C_out, C_in/groups, kh, kw, as PyTorch), ``"{i}.bias"``; with ``sparse`` the weights as
    CSR arrays (``"{i}.data"``, ``.indices``, ``.indptr``, ``.rows``) of the same matrix (a
    convolution's reshaped to (C_out, -1)) wherever that is smaller than dense (below about
    half the weights kept), so that the file shrinks with the pruning."""
    arrays, spec = {}, []
    for i, step in enumerate(steps):
        entry = {"type": type(step).__name__}
        if isinstance(step, PRUNABLE):
            entry.update(name=step.name, relu=bool(step.relu), has_bias=bool(step.has_bias))
            weight = step.weight
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
    arrays["__nettrim__"] = np.array(json.dumps({"version": 2, "input_shape": input_shape, "steps": spec}))
    return arrays


def read(path):
    """``(steps, input_shape, details)`` of an ``.npz`` in either layout (``input_shape`` None
    for a plain file, whose first layer says it); ``details["layout"]`` says which, and for a
    plain file its keys and dtypes.  Every error names the file (and the array at fault)."""
    path = check_path("path", path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:       # np.load leaves its own handle open when the zip is damaged
        try:
            z = np.load(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise InvalidArgument(f"{path}: not a readable .npz file ({first_line(e)})") from None
        if not hasattr(z, "files"):
            raise InvalidArgument(f"{path}: holds a single array; expected an .npz of weights (W0, b0, W1, b1, ...)")
        try:
            with z:
                if "__nettrim__" in z.files:
                    try:
                        spec = json.loads(str(z["__nettrim__"]))
                    except ValueError as e:
                        raise InvalidArgument(f"__nettrim__: not the JSON description nettrim writes ({e})") from None
                    steps, input_shape = _steps_from_spec(spec, z)
                    return steps, input_shape, {"layout": "nettrim"}
                layers, details = plain_layers(z)
                return layers, None, details
        except (ValueError, TypeError, KeyError) as e:
            raise InvalidArgument(f"{path}: {first_line(e)}") from None
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:   # a damaged member (zlib, CRC)
            raise InvalidArgument(f"{path}: cannot read the file, damaged or truncated? ({first_line(e)})") from None


def plain_layers(z):
    """Arrays W0, b0, W1, b1, ... (and optionally relu0, ...) as Dense layers: ``(layers, details)``,
    the details (the file's keys and dtypes) for writing a pruned network back the same way."""
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
    return layers, {"layout": "plain", "relu_keys": has_flags, "dtypes": dtypes}


def plain_arrays(layers, source):
    """W0, b0, ... in the plain layout, in the source file's floating dtypes (``source``: the
    details :func:`plain_layers` gave, or {}).  Weights that the file held as integers are
    written as float32: a pruned weight is no integer (:func:`integer_arrays` names them)."""
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"W{i}"] = layer.weight.astype(_float_dtype(source, f"W{i}"))
        arrays[f"b{i}"] = layer.bias.astype(_float_dtype(source, f"b{i}"))
        if source.get("relu_keys"):
            arrays[f"relu{i}"] = np.array(bool(layer.relu))
    return arrays


def integer_arrays(source):
    """The arrays a plain file held as integers (``source``: the details :func:`read` gave)."""
    return sorted(k for k, d in source.get("dtypes", {}).items() if np.dtype(d).kind != "f")


def _float_dtype(source, key):
    dtype = np.dtype(source.get("dtypes", {}).get(key, np.float32))
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


def _steps_from_spec(spec, z):
    """``(steps, input_shape)`` of nettrim's layout."""
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list) or "input_shape" not in spec:
        raise InvalidArgument("__nettrim__: expected the description nettrim writes (input_shape, steps)")
    steps = []
    for i, e in enumerate(spec["steps"]):
        try:
            steps.append(_step_from_spec(i, e, z))
        except KeyError as missing:
            raise InvalidArgument(f"steps[{i}] ({e.get('type', '?')}): {missing} is missing") from None
    return steps, spec["input_shape"]


def _step_from_spec(i, e, z):
    kind = e["type"]
    if kind in ("Dense", "Conv2d"):
        for key in (f"{i}.W", f"{i}.weight"):    # ".weight" for Dense: files written before version 2
            if key in z.files:
                weight = z[key]
                break
        else:
            weight = dense_from_csr(f"steps[{i}]", z[f"{i}.data"], z[f"{i}.indices"], z[f"{i}.indptr"],
                                    z[f"{i}.rows"])
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


def dense_from_csr(name, data, indices, indptr, shape):
    """The dense matrix of CSR arrays read from a file, checked before anything is allocated:
    a shape of two sizes, whose dense matrix fits in the memory available; ``indptr`` from 0 to
    the number of values, never decreasing; every column index inside the matrix and sorted
    within its row (scipy would otherwise place a stray index in the next row, or sum
    duplicates).  Errors name ``name`` and the array at fault."""
    shape = np.asarray(shape)
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 0).any():
        raise InvalidArgument(f"{name}: expected the matrix's shape as two sizes, got {shape.tolist()!r}")
    rows, cols = (int(v) for v in shape)
    need = 4 * rows * cols
    have = _core.available_memory()
    if have and need > have:
        raise InvalidArgument(f"{name}: a {rows} x {cols} matrix needs {need >> 20} MiB dense, more than the "
                              f"{have >> 20} MiB available")
    data, indices, indptr = (np.asarray(a) for a in (data, indices, indptr))
    if data.ndim != 1 or data.dtype.kind != "f":
        raise InvalidArgument(f"{name}: expected the values as one row of floats, got {data.dtype} {data.shape}")
    if indices.ndim != 1 or indices.dtype.kind not in "iu" or len(indices) != len(data):
        raise InvalidArgument(f"{name}: expected one integer column index per value ({len(data)}), got "
                              f"{indices.dtype} {indices.shape}")
    if indptr.ndim != 1 or indptr.dtype.kind not in "iu" or len(indptr) != rows + 1:
        raise InvalidArgument(f"{name}: expected {rows + 1} row pointers (rows + 1) as integers, got "
                              f"{indptr.dtype} {indptr.shape}")
    if indptr[0] != 0 or indptr[-1] != len(data) or (np.diff(indptr) < 0).any():
        raise InvalidArgument(f"{name}: the row pointers must run from 0 to the number of values ({len(data)}) "
                              "without decreasing")
    if len(indices) and (indices.min() < 0 or indices.max() >= cols):
        bad = int(indices[(indices < 0) | (indices >= cols)][0])
        raise InvalidArgument(f"{name}: column index {bad} is outside the matrix's {cols} columns")
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    if len(indices) > 1 and ((np.diff(indices) <= 0) & (np.diff(row_of) == 0)).any():
        raise InvalidArgument(f"{name}: the column indices of a row must be sorted, each once")
    out = np.zeros((rows, cols), dtype=data.dtype)
    out[row_of, indices] = data
    return out
