"""Model files by format: ``.npz`` (nettrim or plain weight lists), ``.onnx``, PyTorch (``.pt``/``.pth``).

:func:`load_model` reads a file into a :class:`Network` and keeps what is needed to write the
pruned weights back in the same format with :func:`save_model` (always atomically).

PyTorch files are read with ``torch.load(..., weights_only=True)``, which runs no code from
the file.  A pickled whole ``nn.Module`` (``torch.save(model, path)``) cannot be read that way:
unpickling it imports and calls whatever the file names, so a crafted file runs arbitrary
code.  Reading one needs ``trust=True`` (``--trust-model`` on the command line), for files
from a source you trust.  TorchScript (``torch.jit.save``) and ONNX files need no such opt-in.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .errors import InvalidArgument
from .network import Network

FORMATS = {".npz": "npz", ".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".ts": "torch"}


class ModelFileError(InvalidArgument):
    """A model file that is missing, unreadable or of an unsupported kind."""


@dataclass
class LoadedModel:
    net: Network
    format: str                 # "npz", "onnx" or "torch"
    source: Any = None          # the ONNX ModelProto or torch module, for writing back
    scripted: bool = False      # a TorchScript module (saved with torch.jit.save)


def model_format(path):
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ModelFileError(f"{path}: unsupported model format {ext or '(no extension)'!r} "
                             f"(expected .npz, .onnx, .pt or .pth)")
    return FORMATS[ext]


def load_model(path, *, input_shape: Optional[tuple] = None, sample_inputs=None, trust=False) -> LoadedModel:
    """Read a model file.

    ``input_shape`` (one sample's) is needed by convolutional PyTorch models and ONNX models
    that do not state it; for a model whose first layer is dense it must hold that layer's
    number of inputs.  ``sample_inputs`` (a few rows) check the numpy forward pass against the
    framework.  ``trust=True`` allows a pickled PyTorch module, whose loading runs code from
    the file (see the module docstring)."""
    from ._validate import check_bool, check_path, check_shape
    path = check_path("path", path)
    trust = check_bool("trust", trust)
    if input_shape is not None:
        input_shape = check_shape("input_shape", input_shape)
    fmt = model_format(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, expected a model file")
    try:
        if fmt == "npz":
            net = Network.load_npz(path)
            _check_given_shape(net, input_shape)
            return LoadedModel(net, fmt)
        if fmt == "onnx":
            from .adapters.onnx import load_onnx, read_onnx
            model = read_onnx(path)
            return LoadedModel(load_onnx(model, input_shape, check_inputs=sample_inputs), fmt, model)
        module, scripted = _load_torch(path, trust)
        from .adapters.torch import from_torch
        return LoadedModel(from_torch(module, input_shape, check_inputs=sample_inputs), fmt, module, scripted)
    except ImportError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except ModelFileError:
        raise
    except (ValueError, TypeError) as e:
        text = _first_line(e)
        if text.startswith(path) or text.startswith("input_shape:") or text.startswith("check_inputs:"):
            raise type(e)(text) from None
        raise ModelFileError(f"{path}: {text}") from None
    except (KeyError, OSError, RuntimeError, EOFError) as e:
        raise ModelFileError(f"{path}: cannot read the model: {_first_line(e)}") from None


def _check_given_shape(net, input_shape):
    if input_shape is None:
        return
    if int(np.prod(input_shape)) != net.n_inputs or (len(net.input_shape) > 1 and input_shape != net.input_shape):
        raise InvalidArgument(f"input_shape: {input_shape} does not match the model's input "
                         f"{'x'.join(map(str, net.input_shape))} ({net.n_inputs} values per sample)")


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _load_torch(path, trust=False):
    import pickle
    import warnings

    import torch

    from .adapters.torch import SPARSE_FORMAT
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # torch 2.13 deprecates TorchScript
            return torch.jit.load(path, map_location="cpu"), True
    except Exception:      # not TorchScript (torch.jit.load runs no pickled code)
        pass
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # More than tensors and plain containers: a pickled object, most often a whole nn.Module.
        if not trust:
            raise ModelFileError(
                f"{path}: holds a pickled Python object (a whole nn.Module?), and unpickling it runs whatever "
                "code the file names. Load it only if you trust its source: --trust-model on the command line, "
                "trust=True in load_model(). Safer: save the model as TorchScript (torch.jit.save) or ONNX"
            ) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise ModelFileError(f"{path}: cannot read the model: {_first_line(e)}") from None
    except Exception as e:
        raise ModelFileError(f"{path}: cannot read the model, damaged or truncated? ({_first_line(e)})") from None
    if isinstance(obj, dict) and obj.get("format") == SPARSE_FORMAT:
        raise ModelFileError(f"{path}: a sparse state dict written by nettrim (prune --sparse); it holds weights, not "
                             f"an architecture: restore it with nettrim.adapters.torch.load_sparse(path, model)")
    if isinstance(obj, dict):
        raise ModelFileError(f"{path}: holds a state_dict, which has no architecture; save the module as "
                             "TorchScript (torch.jit.save(torch.jit.script(model), path)) or the module itself "
                             "(torch.save(model, path), read with --trust-model)")
    if not isinstance(obj, torch.nn.Module):
        raise ModelFileError(f"{path}: expected a torch.nn.Module, found {type(obj).__name__}")
    return obj.eval(), False


def save_model(loaded: LoadedModel, pruned: Network, path, *, sparse=False):
    """Write ``pruned`` in the format ``loaded`` came from, atomically; returns the file's sha256.

    ``sparse=True`` writes the weights so that the file shrinks with the pruning: ``.npz``
    as CSR arrays, ONNX with compact initializers (runs in onnxruntime as it is), PyTorch as
    a sparse state dict (restore with :func:`nettrim.adapters.torch.load_sparse`)."""
    from .io import atomic_write
    path = str(path)
    if model_format(path) != loaded.format:
        raise ModelFileError(f"{path}: the output must have the input model's format ({loaded.format})")
    if loaded.format == "npz":
        return pruned.save_npz(path, sparse=sparse)
    if loaded.format == "onnx":
        from .adapters.onnx import pruned_onnx
        model = pruned_onnx(pruned, loaded.source, sparse=sparse)
        return atomic_write(path, lambda f: f.write(model.SerializeToString()))
    import torch

    from .adapters.torch import save_sparse, to_torch
    module = to_torch(pruned, loaded.source)
    if sparse:
        return save_sparse(module, path)
    return atomic_write(path, (lambda f: torch.jit.save(module, f)) if loaded.scripted else
                        (lambda f: torch.save(module, f)))


def load_arrays(path, what="calibration inputs", *, need_labels=False):
    """``(X, y)`` from ``.npy`` (X only) or ``.npz`` (arrays ``X`` and, optionally, ``y``).

    Errors name the file: missing, unreadable, without ``X``, of the wrong shape or type, or
    with NaN or infinite values."""
    import zipfile
    path = str(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{what} file not found: {path}")
    try:
        with open(path, "rb") as fh:       # np.load leaves its own handle open when a zip is damaged
            data = np.load(fh, allow_pickle=False)
            y = None
            if hasattr(data, "files"):
                with data:
                    if "X" not in data.files:
                        raise ModelFileError(f"{path}: expected an array named 'X' in the .npz, found {data.files}")
                    X = data["X"]
                    y = data["y"] if "y" in data.files else None
            else:
                X = data
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: cannot read {what} ({_first_line(e)})") from None
    if need_labels and y is None:
        raise ModelFileError(f"{path}: expected labels: an .npz with arrays 'X' and 'y'")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ModelFileError(f"{path}: expected {what} of real numbers, got dtype {X.dtype}")
    if X.ndim < 2 or len(X) == 0:
        raise ModelFileError(f"{path}: expected {what} of shape (samples, features...), got {X.shape}")
    if not np.isfinite(X).all():
        raise ModelFileError(f"{path}: expected finite {what}, found NaN or infinite values")
    if y is not None and len(y) != len(X):
        raise ModelFileError(f"{path}: expected one label per sample in 'y' ({len(X)}), got {len(y)}")
    return X, y
