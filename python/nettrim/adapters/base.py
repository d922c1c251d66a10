"""What every adapter shares: the provenance a reader gives its writer, the formats of model
files, and the check that a reader reproduced the framework's outputs."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core
from ..errors import InvalidArgument, ModelFileError, UnsupportedModelError

FORMATS = {".npz": "npz", ".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".ts": "torch"}


@dataclass
class Provenance:
    """Where a network came from: its format, the source (a path, or the framework object it was
    read from) and what the writer needs besides (e.g. each layer's place in the source)."""
    format: str                 # "npz", "sklearn", "torch" or "onnx"
    source: Any = None
    details: dict = field(default_factory=dict)


def file_format(path):
    """The format of a model file from its extension ("npz", "onnx" or "torch")."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ModelFileError(f"{path}: unsupported model format {ext or '(no extension)'!r} "
                             f"(expected .npz, .onnx, .pt or .pth)")
    return FORMATS[ext]


def check_reproduces(net, inputs, framework_outputs, framework):
    """Raise unless ``net.forward`` matches the framework's own outputs on (at most 64 of) ``inputs``.

    A reader that misses an operation then fails loudly instead of pruning the wrong network.
    ``framework_outputs(x)`` runs the original model on float32 inputs of the network's shape."""
    if inputs is None:
        # (the model's own figure of its input: a huge one is refused here, by name, not by numpy)
        need = 8 * 4 * int(np.prod(net.input_shape, dtype=np.float64)) * 4
        have = _core.available_memory()
        if have and need > have:
            raise UnsupportedModelError(f"its input of {net.input_shape} per sample is too large: checking the model "
                                        f"on a few samples would need {need >> 20} MiB, more than the {have >> 20} MiB "
                                        "available")
        inputs = np.random.default_rng(0).standard_normal((8,) + net.input_shape).astype(np.float32)
    x = np.asarray(inputs)
    if x.ndim < 2 or len(x) == 0 or x.shape[1:] not in (net.input_shape, (net.n_inputs,)) or \
            not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise InvalidArgument(f"check_inputs: expected samples of shape (n,) + {net.input_shape} (or flat rows of "
                         f"{net.n_inputs}), got {x.dtype} of shape {x.shape}")
    x = x.astype(np.float32).reshape((-1,) + net.input_shape)[:64]
    want = np.asarray(framework_outputs(x)).reshape(len(x), -1)
    got = net.forward(x).reshape(len(x), -1)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-3 * (1 + np.abs(want).max())):
        raise UnsupportedModelError(f"model: nettrim could not reproduce {framework}'s outputs from the model's "
                                    "layers (an operation it does not handle?)")
