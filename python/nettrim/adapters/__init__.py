"""Readers and writers between models and :class:`nettrim.Network`: one protocol for every format.

    net, provenance = nettrim.adapters.read(model_or_path)       # .npz, .onnx, .pt; a torch
    pruned, report = nettrim.prune_network(net, X)               # module, an ONNX ModelProto, a
    nettrim.adapters.write(pruned, provenance, "pruned.onnx")    # scikit-learn MLP

``read`` gives the :class:`~nettrim.Network` and a :class:`Provenance`: what the writer needs
to put pruned weights back where they came from (the framework object, where each layer
lives in it, a file's layout).  ``write(net, provenance, destination)`` writes a file
(atomically; returns its sha256) or, with no destination, returns the framework object (a
module, a ModelProto, an estimator) carrying the pruned weights.  Nothing is attached to the
network itself.  Formats: :mod:`.npz`, :mod:`.sklearn`, :mod:`.torch`, :mod:`.onnx` (the last
two need their optional packages).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidArgument, InvalidArgumentType

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
    from ..models import ModelFileError
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ModelFileError(f"{path}: unsupported model format {ext or '(no extension)'!r} "
                             f"(expected .npz, .onnx, .pt or .pth)")
    return FORMATS[ext]


def read(source, *, input_shape=None, check_inputs=None, trust=False):
    """``(network, provenance)`` of a model file (.npz, .onnx, .pt/.pth) or object (torch
    ``nn.Module``, ``onnx.ModelProto``, fitted scikit-learn MLP).

    ``input_shape``: one sample's shape, needed by convolutional models that do not state it.
    ``check_inputs``: a few samples to check nettrim's forward pass against the framework's.
    ``trust``: allow a pickled PyTorch module, whose loading runs code from the file (see
    :func:`nettrim.adapters.torch.read_file`)."""
    if isinstance(source, (str, bytes, os.PathLike)):
        from ..models import read_model_file
        return read_model_file(source, input_shape=input_shape, check_inputs=check_inputs, trust=trust)
    kind = type(source).__module__.split(".")[0]
    if kind == "torch":
        from . import torch
        return torch.read(source, input_shape, check_inputs=check_inputs)
    if kind == "onnx":
        from . import onnx
        return onnx.read(source, input_shape, check_inputs=check_inputs)
    if kind == "sklearn":
        from . import sklearn
        return sklearn.read(source)
    raise InvalidArgumentType(f"source: expected a model file path, a torch.nn.Module, an onnx.ModelProto or a "
                              f"fitted scikit-learn MLP, got {type(source).__name__}")


def write(net, provenance, destination=None, *, sparse=False):
    """Put ``net`` (a pruned network read with :func:`read`) back into its format.

    ``destination``: a file path (of the same format; written atomically; returns its sha256),
    or None to get the framework object (an ``nn.Module``, an ``onnx.ModelProto``, an
    estimator).  ``sparse=True`` writes a file that shrinks with the pruning (see each format)."""
    if not isinstance(provenance, Provenance):
        raise InvalidArgumentType(f"provenance: expected the Provenance that nettrim.adapters.read gave, got "
                                  f"{type(provenance).__name__}")
    if destination is not None and provenance.format != "sklearn":
        from ..models import ModelFileError
        if file_format(destination) != provenance.format:
            raise ModelFileError(f"{destination}: the output must have the input model's format "
                                 f"({provenance.format})")
    if provenance.format == "npz":
        from . import npz
        if destination is None:
            raise InvalidArgument("destination: an .npz network is written to a file; pass its path")
        return npz.write(net, provenance, destination, sparse=sparse)
    if provenance.format == "torch":
        from . import torch
        return torch.write(net, provenance, destination, sparse=sparse)
    if provenance.format == "onnx":
        from . import onnx
        return onnx.write(net, provenance, destination, sparse=sparse)
    if provenance.format == "sklearn":
        from . import sklearn
        return sklearn.write(net, provenance, destination)
    raise InvalidArgument(f"provenance: unknown format {provenance.format!r}")


class UnsupportedModelError(InvalidArgument):
    """The model holds a layer or connection Net-Trim cannot prune."""


def check_reproduces(net, inputs, framework_outputs, framework):
    """Raise unless ``net.forward`` matches the framework's own outputs on (at most 64 of) ``inputs``.

    A reader that misses an operation then fails loudly instead of pruning the wrong network.
    ``framework_outputs(x)`` runs the original model on float32 inputs of the network's shape."""
    if inputs is None:
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
