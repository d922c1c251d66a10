"""Files written atomically: a temporary file in the same folder, then a rename."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import zipfile

import numpy as np

from ._validate import check_path
from .errors import InvalidArgumentType, ModelFileError

_umask_lock = threading.Lock()


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file, then move it onto ``path``; returns the
    sha256 (hex) of the bytes written.

    An interrupted run never leaves a half-written ``path``: either the old file or the
    complete new one is there.  The file gets the mode a plain ``open(path, "w")`` would give
    it: an existing file's own mode, otherwise ``0o666`` less the umask (``mkstemp`` alone
    would leave 0600).  Errors name ``path``, never the temporary file."""
    path = check_path("path", path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory; expected a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nettrim-", suffix=".part", dir=folder)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: the directory {folder} does not exist") from None
    except OSError as e:
        raise type(e)(f"{path}: cannot write in {folder} ({e.strerror or e})") from None
    try:
        os.fchmod(fd, file_mode(path))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and tmp in str(e):
            raise type(e)(f"{path}: cannot write ({e.strerror or e})") from None
        raise
    return digest


def file_mode(path):
    """The permission bits ``open(path, "w")`` gives: an existing file keeps its own, a new
    one gets ``0o666 & ~umask``."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def current_umask():
    try:                                   # Linux: read it without changing it
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:                      # elsewhere: set and restore (not thread-safe across processes' threads)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_savez(path, arrays):
    """``np.savez`` written atomically and byte for byte reproducibly (fixed zip timestamps)."""


    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                with z.open(info, "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)

    return atomic_write(path, write)


def atomic_json(path, obj):
    return atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable).encode()))


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise InvalidArgumentType(f"not JSON serialisable: {type(x).__name__}")


def load_arrays(path, what="calibration inputs", *, need_labels=False):
    """``(X, y)`` from ``.npy`` (X only) or ``.npz`` (arrays ``X`` and, optionally, ``y``).

    Errors name the file: missing, unreadable, without ``X``, of the wrong shape or type, or
    with NaN or infinite values."""
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
        raise ModelFileError(f"{path}: cannot read {what} ({first_line(e)})") from None
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


def first_line(e):
    """An exception's message, its first line only (or its type's name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
