"""Input checks at the Python boundary: each error names the argument and what was expected."""
from __future__ import annotations

import numbers
import os

import numpy as np

from .errors import InvalidArgument, InvalidArgumentType

MAX_THREADS = 1024
"""The most engine threads (or parallel workers) accepted: more is a typo, and libgomp fails
to create threads well before 2**31 (an uncaught "Thread creation failed", or a segfault)."""


def resolve_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidArgumentType(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise InvalidArgumentType(f"dtype: expected 'float32' or 'float64', got {dt.name}")
    return dt.type


def as_float_matrix(name, a, *, rows=None, cols=None, finite=True):
    """A 2-D real floating array (finite entries unless ``finite=False``), never copied."""
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype == object:
        raise InvalidArgumentType(f"{name}: expected a numeric array, got dtype object")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidArgumentType(f"{name}: expected real floating values, got complex dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidArgumentType(f"{name}: expected a floating dtype (float32 or float64), got {arr.dtype}; "
                        f"convert with .astype(np.float32) if the values are meant as numbers")
    if arr.ndim != 2:
        raise InvalidArgument(f"{name}: expected a 2-D array, got {arr.ndim}-D with shape {arr.shape}")
    if arr.size == 0:
        raise InvalidArgument(f"{name}: expected a non-empty array, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise InvalidArgument(f"{name}: expected {rows} rows, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise InvalidArgument(f"{name}: expected {cols} columns, got shape {arr.shape}")
    if finite:
        check_finite(name, arr)
    return arr


def check_finite(name, arr):
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{name}: expected finite values, got NaN or Inf")


def check_choice(name, value, choices):
    if value not in choices:
        raise InvalidArgument(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_nonnegative(name, value, *, strict=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentType(f"{name}: expected a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise InvalidArgument(f"{name}: expected a finite number {'>' if strict else '>='} 0, got {value!r}")
    return v


def default_threads():
    """The engine's thread count for ``threads=0``: ``NETTRIM_THREADS`` when set, else 0
    (the engine's own automatic choice)."""
    text = os.environ.get("NETTRIM_THREADS", "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_THREADS:
        raise InvalidArgument(f"NETTRIM_THREADS: expected a number of threads in [0, {MAX_THREADS}], got {text!r}")
    return value


# --- scalars: "name: expected X, got Y" -----------------------------------------------------------
def check_int(name, value, *, low=None, high=None, none=False, what="an integer"):
    """An integer (Python or numpy; not a bool, a float or a string) in [low, high]."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(f"{name}: expected {what}{' or None' if none else ''}, got {value!r} "
                        f"({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"in [{low}, {high}]" if low is not None and high is not None else
                  f">= {low}" if low is not None else f"<= {high}")
        raise InvalidArgument(f"{name}: expected {what} {bounds}, got {value}")
    return value


def check_real(name, value, *, low=None, high=None, strict_low=False, finite=True, what="a real number"):
    """A real number (int or float, Python or numpy; not a bool or a string), finite, in range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArgumentType(f"{name}: expected {what}, got {value!r} ({type(value).__name__})")
    value = float(value)
    if finite and not np.isfinite(value):
        raise InvalidArgument(f"{name}: expected a finite number, got {value!r}")
    if np.isnan(value) or (low is not None and (value < low or (strict_low and value == low))) or \
            (high is not None and value > high):
        lo = "" if low is None else f"{'>' if strict_low else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        raise InvalidArgument(f"{name}: expected {what} {' and '.join(b for b in (lo, hi) if b)}, got {value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentType(f"{name}: expected True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_callable(name, value, signature="a function"):
    if value is not None and not callable(value):
        raise InvalidArgumentType(f"{name}: expected {signature} or None, got {value!r} ({type(value).__name__})")
    return value


def check_threads(name, value):
    return check_int(name, value, low=0, high=MAX_THREADS, what="a number of threads (0: automatic)")


def check_path(name, value):
    """A file system path (str or os.PathLike), as a str."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentType(f"{name}: expected a path (str or os.PathLike), got {value!r} ({type(value).__name__})")
    return os.fspath(value)


def check_shape(name, value):
    """One sample's shape: a tuple of positive integers (a list or numpy array is fine; a string is not)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidArgumentType(f"{name}: expected a tuple of positive integers such as (1, 28, 28), got {value!r}")
    dims = list(value)
    if not dims or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) for d in dims):
        raise InvalidArgumentType(f"{name}: expected a tuple of positive integers such as (1, 28, 28), got {value!r}")
    if any(int(d) < 1 for d in dims):
        raise InvalidArgument(f"{name}: expected positive sizes, got {tuple(int(d) for d in dims)}")
    return tuple(int(d) for d in dims)


def check_output_path(name, path):
    """A file that can be written: its folder exists and is writable, and it is not a folder.

    Called before any work, so that a long prune does not end in an error about where to put it."""
    path = check_path(name, path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path} is a directory; expected a file name")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name}: the directory of {path} does not exist ({folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: cannot write to the directory of {path} ({folder}: permission denied)")
    if os.path.exists(path) and not os.access(path, os.W_OK) and not os.access(folder, os.W_OK):
        raise PermissionError(f"{name}: cannot replace {path} (permission denied)")
    return path


def check_directory(name, path):
    """A directory that exists or can be made (no file in the way, a writable parent)."""
    path = check_path(name, path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgument(f"{name}: {path} is a file; expected a directory (an existing one, or a new name)")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InvalidArgument(f"{name}: {path} is under {parent}, which is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: cannot write in {parent} (permission denied)")
    return path
