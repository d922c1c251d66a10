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
two need their optional packages, imported when a model of theirs is read or written).
"""
from __future__ import annotations

import os

import numpy as np

from .._validate import check_bool, check_path, check_shape
from ..errors import InvalidArgument, InvalidArgumentType, ModelFileError, UnsupportedModelError
from ..graph import GraphModel
from ..io import first_line
from . import npz, onnx, onnx_graph, sklearn, torch, torch_graph
from .base import FORMATS, Provenance, check_reproduces, file_format

__all__ = ["read", "write", "check_writable", "Provenance", "file_format", "FORMATS", "check_reproduces", "UnsupportedModelError",
           "ModelFileError"]


def read(source, *, input_shape=None, check_inputs=None, trust=False):
    """``(network, provenance)`` of a model file (.npz, .onnx, .pt/.pth) or object (torch
    ``nn.Module``, ``onnx.ModelProto``, fitted scikit-learn MLP).

    ``input_shape``: one sample's shape, needed by convolutional models that do not state it
    (for a model whose first layer is dense it must hold that layer's number of inputs).
    ``check_inputs``: a few samples to check nettrim's forward pass against the framework's.
    ``trust``: allow a pickled PyTorch module, whose loading runs code from the file (see
    :func:`nettrim.adapters.torch.read_file`).  A file's errors name the file."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return _read_file(source, input_shape=input_shape, check_inputs=check_inputs, trust=trust)
    # (by the classes it derives from: a module of the user's own class is a torch module)
    kind = next((c.__module__.split(".")[0] for c in type(source).__mro__
                 if c.__module__.split(".")[0] in ("torch", "onnx", "sklearn")), None)
    if kind == "torch":
        return torch.read(source, input_shape, check_inputs=check_inputs)
    if kind == "onnx":
        return _read_onnx(source, input_shape, check_inputs)
    if kind == "sklearn":
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
        if file_format(destination) != provenance.format:
            raise ModelFileError(f"{destination}: the output must have the input model's format "
                                 f"({provenance.format})")
    if provenance.format == "npz":
        if destination is None:
            raise InvalidArgument("destination: an .npz network is written to a file; pass its path")
        return npz.write(net, provenance, destination, sparse=sparse)
    if provenance.details.get("graph"):
        return _write_graph(net, provenance, destination, sparse=sparse)
    if provenance.format == "torch":
        return torch.write(net, provenance, destination, sparse=sparse)
    if provenance.format == "onnx":
        return onnx.write(net, provenance, destination, sparse=sparse)
    if provenance.format == "sklearn":
        return sklearn.write(net, provenance, destination)
    raise InvalidArgument(f"provenance: unknown format {provenance.format!r}")


def _write_graph(net, provenance, destination, *, sparse):
    """:func:`write` of a graph model (:class:`~nettrim.graph.GraphModel`)."""
    if not isinstance(net, GraphModel):
        raise InvalidArgumentType(f"net: expected the GraphModel read with this provenance, got {type(net).__name__}")
    if provenance.format == "torch":
        if sparse:
            raise InvalidArgument("sparse: a PyTorch graph model is written dense (with masks=True, "
                                  "nettrim.adapters.torch_graph.write keeps the zeros through fine-tuning)")
        return torch_graph.write(net, provenance, destination)
    return onnx_graph.write(net, provenance, destination, sparse=sparse)


def check_writable(provenance):
    """Raise unless :func:`write` can put a pruned network back where ``provenance`` came from
    (a sparse ``.pt`` state dict, which holds no module, cannot take it): a check to make before
    the work of pruning."""
    if not isinstance(provenance, Provenance):
        raise InvalidArgumentType(f"provenance: expected the Provenance that nettrim.adapters.read gave, got "
                                  f"{type(provenance).__name__}")
    if provenance.format == "torch":
        torch.check_writable(provenance)


def _read_file(path, *, input_shape=None, check_inputs=None, trust=False):
    """``read`` of a file: the network and the provenance that :func:`write` needs to put the
    pruned weights back in the same format.  PyTorch files are read without running code from
    them unless ``trust=True``."""
    path = check_path("path", path)
    trust = check_bool("trust", trust)
    if input_shape is not None:
        input_shape = check_shape("input_shape", input_shape)
    fmt = file_format(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, expected a model file")
    try:
        if fmt == "npz":
            net, provenance = npz.read(path)
            _check_given_shape(net, input_shape)
            return net, provenance
        if fmt == "onnx":
            return _read_onnx(onnx.read_onnx(path), input_shape, check_inputs)
        return torch.read_path(path, input_shape, check_inputs=check_inputs, trust=trust)
    except ImportError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except ModelFileError:
        raise
    except (ValueError, TypeError) as e:
        text = first_line(e)
        if text.startswith(path) or text.startswith("input_shape:") or text.startswith("check_inputs:"):
            raise type(e)(text) from None
        raise ModelFileError(f"{path}: {text}") from None
    except (KeyError, OSError, RuntimeError, EOFError) as e:
        raise ModelFileError(f"{path}: cannot read the model: {first_line(e)}") from None


def _read_onnx(model, input_shape, check_inputs):
    """An ONNX model read as a chain (:func:`nettrim.adapters.onnx.read`), or, when it is not
    one, as a graph model that onnxruntime runs (:func:`nettrim.adapters.onnx_graph.read`)."""
    return onnx.read(model, input_shape, check_inputs=check_inputs,
                     not_a_chain=lambda source: onnx_graph.read(source, input_shape, check_inputs=check_inputs))


def _check_given_shape(net, input_shape):
    if input_shape is None:
        return
    if int(np.prod(input_shape)) != net.n_inputs or (len(net.input_shape) > 1 and input_shape != net.input_shape):
        raise InvalidArgument(f"input_shape: {input_shape} does not match the model's input "
                              f"{'x'.join(map(str, net.input_shape))} ({net.n_inputs} values per sample)")
