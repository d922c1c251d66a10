"""Files written atomically: a temporary file in the same folder, then a rename."""
from __future__ import annotations

import json
import os
import tempfile


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file, then move it onto ``path``.

    An interrupted run never leaves a half-written ``path``: either the old file or the
    complete new one is there."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nettrim-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_savez(path, arrays):
    """``np.savez`` written atomically and byte for byte reproducibly (fixed zip timestamps)."""
    import zipfile

    import numpy as np

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                with z.open(info, "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)

    atomic_write(path, write)


def atomic_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_jsonable).encode()))


def _jsonable(x):
    import numpy as np
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
