"""Argument checks shared by the layer-wise methods: each error names the argument."""
from __future__ import annotations

import numpy as np

from .._validate import as_float_matrix, check_int, check_real
from ..errors import InvalidArgument
from .masks import check_nm


def check_layer(X, W, b, *, sparsity=None, nm=None, target=True, x_optional=False):
    """``(X, W, b, sparsity, nm)`` checked: X (P, n_in) and W (n_in, n_out) finite floats, b
    (n_out,) or None, and (when ``target``) exactly one of a sparsity in [0, 1) or an N:M.
    ``x_optional``: X may be None (a method that does not look at the inputs)."""
    W = as_float_matrix("W", _float(W))
    if not (x_optional and X is None):
        X = as_float_matrix("X", _float(X), cols=W.shape[0])
    if b is not None:
        arr = np.asarray(_float(b))
        if arr.shape != (W.shape[1],):
            raise InvalidArgument(f"b: expected shape ({W.shape[1]},) to match W {W.shape}, got {arr.shape}")
        as_float_matrix("b", arr[None])
    if target:
        if nm is not None and sparsity is not None:
            raise InvalidArgument(f"nm, sparsity: expected one of them, got both ({nm!r} and {sparsity!r})")
        if nm is not None:
            nm = check_nm(nm)
        elif sparsity is None:
            raise InvalidArgument("sparsity: expected the fraction of weights to remove (or nm), got None")
        else:
            sparsity = check_real("sparsity", sparsity, low=0, what="a fraction in [0, 1) of weights to remove")
            if sparsity >= 1:
                raise InvalidArgument(f"sparsity: expected a fraction in [0, 1) of weights to remove, got {sparsity!r}")
    return X, W, b, sparsity, nm


def check_damp(damp):
    return check_real("damp", damp, low=0, what="a damping fraction")


def check_positive_int(name, value):
    return check_int(name, value, low=1)


def _float(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    return arr.astype(np.float64) if np.issubdtype(arr.dtype, np.integer) else arr
