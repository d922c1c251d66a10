"""The samples of a linear layer, compressed: ``X^T X``, ``X^T Y`` and ``||Y||^2``, summed batch by batch.

Without a ReLU after the layer, Net-Trim's constraint is on ``||X U - Y||``, and

    ||X U - Y||^2 = tr(U^T G U) - 2 tr(U^T C) + ||Y||^2      (G = X^T X, C = X^T Y)

for every ``U``: these sums hold all that the program sees of the samples, in ``N x N +
N x M`` numbers whatever their count.  :class:`SampleStatistics` sums them in float64 (the
engine's ``nettrim::SampleStatistics``), so a calibration set larger than memory streams
through; :meth:`nettrim.LayerSolver.from_batches` solves the layer from them (docs: "The
linear program at any number of samples").
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._validate import as_float_matrix, check_finite
from .errors import InvalidArgument, InvalidArgumentType


class SampleStatistics:
    """``X^T X``, ``X^T Y`` and the column norms of ``Y`` of a linear layer, summed in float64.

    Parameters
    ----------
    inputs, outputs : int
        The layer's input features (columns of X, without the bias) and outputs (columns of Y).
    fit_bias : bool
        Sum a constant-one feature with the inputs, for a pruned layer with a bias (as
        :class:`~nettrim.LayerSolver`'s ``fit_bias``).

    Rows are summed in fixed blocks, so the sums depend on the rows and their order alone: the
    same rows give bit-identical sums in one batch or in many, on any number of threads.
    """

    CHUNK_PRODUCTS = 1 << 32
    """Rows go to the engine in chunks of about this many multiply-adds (X^T X and X^T Y), a
    fraction of a second each on 2 cores: Ctrl-C is answered between chunks."""

    def __init__(self, inputs: int, outputs: int, *, fit_bias: bool = True):
        for name, value in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgument(f"{name}: expected an integer >= 1, got {value!r}")
        if not isinstance(fit_bias, (bool, np.bool_)):
            raise InvalidArgumentType(f"fit_bias: expected True or False, got {fit_bias!r}")
        self.fit_bias = bool(fit_bias)
        self._sums = _core.SampleStatistics(int(inputs), int(outputs), self.fit_bias)
        self.batches = 0
        self._dtypes = None
        self._interrupted = False

    @classmethod
    def from_batches(cls, batches, *, fit_bias: bool = True) -> "SampleStatistics":
        """The sums of an iterable of ``(X, Y)`` batches (arrays of rows by features, any float
        dtype), read once: a generator that loads each batch from disk streams a calibration set
        of any size.  The first batch fixes the shapes."""
        stats = None
        try:
            iterator = iter(batches)
        except TypeError:
            raise InvalidArgumentType(f"batches: expected an iterable of (X, Y) pairs, got {batches!r}") from None
        for i, pair in enumerate(iterator):
            X, Y = _pair(pair, i)
            if stats is None:
                if np.ndim(X) != 2 or np.ndim(Y) != 2:
                    raise InvalidArgument(f"batches: batch 0: expected X and Y of 2 dimensions (rows by features), "
                                          f"got shapes {np.shape(X)} and {np.shape(Y)}")
                stats = cls(np.shape(X)[1], np.shape(Y)[1], fit_bias=fit_bias)
            stats.add(X, Y, batch=i)
        if stats is None:
            raise InvalidArgument("batches: expected at least one (X, Y) batch, got none")
        return stats

    def add(self, X, Y, *, batch=None) -> None:
        """Add a batch of rows: ``X`` (rows, inputs) and ``Y`` (rows, outputs).  A shape that does
        not match, or a value that is not finite, raises ``InvalidArgument`` naming the batch, and
        nothing is added."""
        where = f" (batch {batch})" if batch is not None else ""
        n_in = self.inputs - (1 if self.fit_bias else 0)
        try:
            Xa = as_float_matrix("X", X, cols=n_in, finite=False)
            Ya = as_float_matrix("Y", Y, rows=Xa.shape[0], cols=self.outputs, finite=False)
            check_finite("X", Xa)
            check_finite("Y", Ya)
        except (InvalidArgument, InvalidArgumentType) as e:
            raise type(e)(f"{e}{where}") from None
        # The first batch fixes the dtypes: a later batch of another one is more likely a mix-up
        # of sources than intended, and the sums would not say so.
        dtypes = (Xa.dtype, Ya.dtype)
        if self._dtypes is None:
            self._dtypes = dtypes
        elif dtypes != self._dtypes:
            raise InvalidArgumentType(f"X, Y: expected the dtypes of the first batch ({self._dtypes[0]}, "
                                      f"{self._dtypes[1]}), got ({dtypes[0]}, {dtypes[1]}){where}")
        if self._interrupted:
            raise InvalidArgument("statistics: an earlier add was interrupted, and its batch is only partly in the "
                                  "sums; start new statistics")
        # One dtype for the pair, the wider one; C order (the engine reads rows).  In chunks of
        # rows, so that Ctrl-C is seen between them (the engine's add holds no interrupt hook).
        dtype = np.float32 if Xa.dtype == np.float32 and Ya.dtype == np.float32 else np.float64
        chunk = max(1, self.CHUNK_PRODUCTS // (self.inputs * (self.inputs + self.outputs)))
        try:
            for p0 in range(0, Xa.shape[0], chunk):
                self._sums.add(np.ascontiguousarray(Xa[p0:p0 + chunk], dtype=dtype),
                               np.ascontiguousarray(Ya[p0:p0 + chunk], dtype=dtype))
        except KeyboardInterrupt:
            self._interrupted = True
            raise
        self.batches += 1

    # --- the sums --------------------------------------------------------------------------
    @property
    def samples(self) -> int:
        """Rows added so far (P)."""
        return self._sums.samples

    @property
    def inputs(self) -> int:
        """N: the input features, with the constant-one feature when ``fit_bias``."""
        return self._sums.inputs

    @property
    def outputs(self) -> int:
        return self._sums.outputs

    @property
    def gram(self) -> np.ndarray:
        """``X^T X`` (N, N), float64."""
        return np.array(self._sums.gram)

    @property
    def cross(self) -> np.ndarray:
        """``X^T Y`` (N, M), float64."""
        return np.array(self._sums.cross)

    @property
    def target_norm2(self) -> np.ndarray:
        """``||Y[:, m]||^2`` per output (M,), float64."""
        return np.array(self._sums.target_norm2)

    def errors2(self, U):
        """``||X u_m - y_m||^2`` per output for a matrix ``U`` (N, M), from the sums alone, in
        float64, and the rounding each figure may carry: the sum ``u^T G u - 2 u^T c + ||y||^2``
        cancels where the error is a small part of ``||y||^2``, and the uncertainty returned
        says by how much (see :meth:`error_resolved`)."""
        Ud = np.asarray(U, dtype=np.float64)
        if Ud.shape != (self.inputs, self.outputs):
            raise InvalidArgument(f"U: expected shape {(self.inputs, self.outputs)}, got {Ud.shape}")
        GU = self._sums.gram @ Ud
        quadratic = np.einsum("nm,nm->m", Ud, GU)
        linear = np.einsum("nm,nm->m", Ud, self._sums.cross)
        y2 = np.asarray(self._sums.target_norm2)
        err2 = quadratic - 2 * linear + y2
        scale = np.abs(quadratic) + 2 * np.abs(linear) + y2
        return np.maximum(err2, 0.0), self.relative_uncertainty * scale

    @property
    def relative_uncertainty(self) -> float:
        """The rounding of a figure computed from these sums, relative to the sums it is the
        difference of: each is a sum of P (or N) float64 products, rounded at about max(N, P)
        eps64 of its size (the engine's compress() takes the same figure)."""
        return 4 * np.finfo(np.float64).eps * max(self.inputs, self.samples)

    def __repr__(self) -> str:
        return (f"SampleStatistics(samples={self.samples}, inputs={self.inputs}, outputs={self.outputs}, "
                f"fit_bias={self.fit_bias})")


def _pair(pair, i):
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise InvalidArgumentType(f"batches: batch {i}: expected an (X, Y) pair, got {type(pair).__name__}")
    return pair[0], pair[1]
