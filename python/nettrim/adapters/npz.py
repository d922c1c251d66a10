"""``.npz`` files: nettrim's own layout (every step, any network) or plain ``W0, b0, W1, b1, ...``.

:func:`read` gives the network and its provenance; :func:`write` puts a (pruned) network in
a file, in the layout of the file it came from by default.
"""
from __future__ import annotations

import json
import os

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidArgument
from ..layers import PRUNABLE, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d
from ..network import Network
from . import Provenance


def write(net, provenance, path, *, sparse=False, layout=None):
    """``net`` in one ``.npz``, written atomically; returns the file's sha256.

    Two layouts:

    - ``"plain"``: arrays ``W0, b0, W1, b1, ...`` with every ``W`` stored **inputs x outputs**
      (scikit-learn's ``coefs_`` orientation, ``y = relu(x @ W + b)``), the layout
      :func:`read` reads from any source.  A network read from such a file is written
      back in it by default, with the same keys (``relu0``, ... too when the file had them)
      and the same dtypes (the default when ``provenance`` is a plain file's).  Only for
      networks of Dense layers, and not with ``sparse``.
    - ``"nettrim"``: every step and its settings (``__nettrim__``, JSON), a Dense layer's
      weights as ``"{i}.W"`` (inputs x outputs) and a convolution's as ``"{i}.weight"``
      (C_out, C_in/groups, kh, kw, as PyTorch), ``"{i}.bias"``; with ``sparse=True`` the
      weights as CSR arrays (``"{i}.data"``, ``.indices``, ``.indptr``, ``.rows``) of the
      same matrix (a convolution's reshaped to (C_out, -1)) wherever that is smaller than
      dense (below about half the weights kept), so the file shrinks with the pruning.
      The default for everything else.

    ``provenance``: what :func:`read` said of the file the network came from, or None."""
    from .._validate import check_bool, check_output_path
    from ..io import atomic_savez
    path = check_output_path("path", path)
    sparse = check_bool("sparse", sparse)
    source = provenance.details if provenance is not None and provenance.format == "npz" else None
    if layout is None:
        layout = ("plain" if source and source.get("layout") == "plain" and not sparse
                  and all(isinstance(s, Dense) for s in net.steps) else "nettrim")
    if layout not in ("plain", "nettrim"):
        raise InvalidArgument(f"layout: expected 'plain' or 'nettrim', got {layout!r}")
    if layout == "plain":
        if sparse or not all(isinstance(s, Dense) for s in net.steps):
            raise InvalidArgument("layout: 'plain' (W0, b0, ...) holds dense weights of Dense layers only")
        return atomic_savez(path, _plain_arrays(net, source or {}))
    arrays, spec = {}, []
    for i, step in enumerate(net.steps):
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
    arrays["__nettrim__"] = np.array(json.dumps({"version": 2, "input_shape": net.input_shape, "steps": spec}))
    return atomic_savez(path, arrays)

def read(path):
    """``(network, provenance)`` from an ``.npz`` written by :func:`write`, or of plain arrays
    ``W0, b0, W1, b1, ...`` (each W inputs x outputs; ``relu0, ...`` optional booleans, else
    ReLU on all but the last layer).

    A plain file's keys and dtypes go into the provenance, so that :func:`write` puts the
    pruned network back in the same layout.  Every error names the file (and the array at
    fault)."""
    import zipfile

    from .._validate import check_path
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
                    return _from_spec(spec, z), Provenance("npz", path, {"layout": "nettrim"})
                return _from_plain(z, path)
        except (ValueError, TypeError, KeyError) as e:
            raise InvalidArgument(f"{path}: {_first_line(e)}") from None
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as e:   # a damaged member (zlib, CRC)
            raise InvalidArgument(f"{path}: cannot read the file, damaged or truncated? ({_first_line(e)})") from None


def _first_line(e):
    text = str(e).strip().strip('"')
    return text.splitlines()[0] if text else type(e).__name__


def _from_plain(z, path):
    """Arrays W0, b0, W1, b1, ... (and optionally relu0, ...) as a network of Dense layers."""
    from ..layers import _array
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
    return Network(layers), Provenance("npz", path, {"layout": "plain", "relu_keys": has_flags, "dtypes": dtypes})


def _plain_arrays(net, source):
    """W0, b0, ... in the plain layout, in the source file's dtypes."""
    arrays, dtypes = {}, source.get("dtypes", {})
    for i, layer in enumerate(net.layers):
        arrays[f"W{i}"] = layer.weight.astype(dtypes.get(f"W{i}", np.float32))
        arrays[f"b{i}"] = layer.bias.astype(dtypes.get(f"b{i}", np.float32))
        if source.get("relu_keys"):
            arrays[f"relu{i}"] = np.array(bool(layer.relu))
    return arrays


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


