"""Bad input gets a clear exception that names the argument."""
import nettrim
import numpy as np
import pytest
from conftest import relu_layer

X, Y, W, b = relu_layer(0, P=100, n_in=8, M=3)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(X=X[:50]), ValueError, "Y: expected 50 rows"),
    (dict(X=X[:, :, None]), ValueError, "X: expected a 2-D array"),
    (dict(X=np.full_like(X, np.nan)), ValueError, "X: expected finite"),
    (dict(Y=np.where(Y > 0, np.inf, Y)), ValueError, "Y: expected finite"),
    (dict(Y=Y - 1.0), ValueError, "Y: expected ReLU outputs"),
    (dict(eps_rel=-0.1), ValueError, "eps_rel: expected a finite number >= 0"),
    (dict(eps=-1.0), ValueError, "eps: expected finite values >= 0"),
    (dict(X=X[:0]), ValueError, "X: expected a non-empty array"),
    (dict(X=X.astype(np.int64)), TypeError, "X: expected a floating dtype"),
    (dict(X=X.astype(np.complex128)), TypeError, "X: expected real floating values"),
    (dict(dtype="float16"), TypeError, "dtype: expected 'float32' or 'float64'"),
    (dict(mode="tanh"), ValueError, "mode: expected one of"),
    (dict(W=W[:5]), ValueError, "W: expected 8 rows"),
    (dict(V=Y[:, :2]), ValueError, "V: expected 3 columns"),
    (dict(alpha=2.5), ValueError, "alpha: expected a value in"),
    (dict(max_iter=-1), ValueError, "max_iter"),
    (dict(warm_start="best"), ValueError, "warm_start: expected one of"),
])
def test_bad_input_is_named(kwargs, exc, match):
    args = dict(X=X, Y=Y)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        nettrim.prune_layer(args.pop("X"), args.pop("Y"), **args)


def test_unknown_keyword():
    with pytest.raises(TypeError, match="epsilon"):
        nettrim.prune_layer(X, Y, epsilon=0.1)


def test_neither_y_nor_w():
    with pytest.raises(ValueError, match="Y: expected the target outputs, or W"):
        nettrim.prune_layer(X)


def test_too_large_for_memory_is_refused_before_allocating():
    # A read-only broadcast view: 2e6 x 2000 float64 would be 32 GB if materialised.
    big_X = np.broadcast_to(np.float64(0.5), (2_000_000, 2000))
    big_Y = np.broadcast_to(np.float64(1.0), (2_000_000, 2000))
    with pytest.raises(MemoryError, match="X: a layer with P=2000000"):
        nettrim.prune_layer(big_X, big_Y, dtype="float64")


def test_engine_rejects_bad_settings_directly():
    from nettrim import _core
    s = _core.Settings()
    s.tol = -1.0
    with pytest.raises(ValueError, match="tol: expected a finite value >= 0"):
        s.validate()
