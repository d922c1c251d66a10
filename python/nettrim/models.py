"""Files: models by format (``.npz``, ``.onnx``, PyTorch ``.pt``/``.pth``) and data arrays.

:func:`read_model_file` is :func:`nettrim.adapters.read` for a path: the network and its
provenance, which :func:`nettrim.adapters.write` needs to put the pruned weights back in the
same format.  PyTorch files are read without running code from them unless ``trust=True``
(see :func:`nettrim.adapters.torch.read_file`).  :func:`load_arrays` reads calibration and
evaluation data.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .errors import InvalidArgument


class ModelFileError(InvalidArgument):
    """A model or data file that is missing, unreadable or of an unsupported kind."""


def model_format(path):
    """"npz", "onnx" or "torch" from the file's extension."""
    from .adapters import file_format
    return file_format(path)


def read_model_file(path, *, input_shape: Optional[tuple] = None, check_inputs=None, trust=False):
    """``(network, provenance)`` of a model file.

    ``input_shape`` (one sample's) is needed by convolutional PyTorch models and ONNX models
    that do not state it; for a model whose first layer is dense it must hold that layer's
    number of inputs.  ``check_inputs`` (a few rows) check the numpy forward pass against the
    framework.  ``trust=True`` allows a pickled PyTorch module, whose loading runs code from
    the file."""
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
            from .adapters import npz
            net, provenance = npz.read(path)
            _check_given_shape(net, input_shape)
            return net, provenance
        if fmt == "onnx":
            from .adapters import onnx
            return onnx.read(onnx.read_onnx(path), input_shape, check_inputs=check_inputs)
        from .adapters import torch
        module, scripted = torch.read_file(path, trust)
        return torch.read(module, input_shape, check_inputs=check_inputs, scripted=scripted)
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
