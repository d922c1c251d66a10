"""Model files by format: ``.npz`` (nettrim or plain weight lists), ``.onnx``, PyTorch (``.pt``/``.pth``).

:func:`load_model` reads a file into a :class:`Network` and keeps what is needed to write the
pruned weights back in the same format with :func:`save_model` (always atomically).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .network import Network

FORMATS = {".npz": "npz", ".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".ts": "torch"}


class ModelFileError(ValueError):
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


def load_model(path, *, input_shape: Optional[tuple] = None, sample_inputs=None) -> LoadedModel:
    """Read a model file.  ``input_shape`` (one sample's) is needed by convolutional PyTorch
    models; ``sample_inputs`` (a few rows) check the numpy forward pass against the framework."""
    path = str(path)
    fmt = model_format(path)
    if not os.path.exists(path):
        raise ModelFileError(f"model file not found: {path}")
    try:
        if fmt == "npz":
            return LoadedModel(Network.load_npz(path), fmt)
        if fmt == "onnx":
            import onnx
            from .adapters.onnx import load_onnx
            try:
                model = onnx.load(path)
            except Exception as e:       # protobuf's DecodeError and friends
                raise ModelFileError(f"{path}: cannot read the model: {_first_line(e)}") from None
            return LoadedModel(load_onnx(model, input_shape, check_inputs=sample_inputs), fmt, model)
        module, scripted = _load_torch(path)
        from .adapters.torch import from_torch
        return LoadedModel(from_torch(module, input_shape, check_inputs=sample_inputs), fmt, module, scripted)
    except ImportError as e:
        raise ModelFileError(f"{path}: {e}") from None
    except ModelFileError:
        raise
    except (ValueError, KeyError, OSError, RuntimeError, EOFError) as e:
        raise ModelFileError(f"{path}: cannot read the model: {_first_line(e)}") from None


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _load_torch(path):
    import torch
    try:
        return torch.jit.load(path, map_location="cpu"), True
    except Exception:      # not TorchScript: a pickled module
        pass
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelFileError(f"{path}: cannot read the model: {_first_line(e)}") from None
    if isinstance(obj, dict):
        raise ModelFileError(f"{path}: holds a state_dict, which has no architecture; save the module itself "
                             "(torch.save(model, path)) or a TorchScript module")
    if not isinstance(obj, torch.nn.Module):
        raise ModelFileError(f"{path}: expected a torch.nn.Module, found {type(obj).__name__}")
    return obj.eval(), False


def save_model(loaded: LoadedModel, pruned: Network, path, *, sparse=False):
    """Write ``pruned`` in the format ``loaded`` came from, atomically."""
    from .io import atomic_write
    path = str(path)
    if model_format(path) != loaded.format:
        raise ModelFileError(f"{path}: the output must have the input model's format ({loaded.format})")
    if loaded.format == "npz":
        pruned.save_npz(path, sparse=sparse)
    elif loaded.format == "onnx":
        from .adapters.onnx import save_onnx
        save_onnx(pruned, loaded.source, path)
    else:
        import torch
        from .adapters.torch import to_torch
        module = to_torch(pruned, loaded.source)
        atomic_write(path, (lambda f: torch.jit.save(module, f)) if loaded.scripted else
                     (lambda f: torch.save(module, f)))


def load_arrays(path, what="calibration inputs", *, need_labels=False):
    """``(X, y)`` from ``.npy`` (X only) or ``.npz`` (arrays ``X`` and, optionally, ``y``)."""
    path = str(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{what} file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path}: cannot read {what} ({e})") from None
    y = None
    if hasattr(data, "files"):
        if "X" not in data.files:
            raise ModelFileError(f"{path}: expected an array named 'X' in the .npz, found {data.files}")
        X = data["X"]
        y = data["y"] if "y" in data.files else None
    else:
        X = data
    if need_labels and y is None:
        raise ModelFileError(f"{path}: expected labels: an .npz with arrays 'X' and 'y'")
    if X.ndim < 2 or len(X) == 0:
        raise ModelFileError(f"{path}: expected {what} of shape (samples, features...), got {X.shape}")
    return X, y
