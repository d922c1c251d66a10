"""Masks from scores: the largest per matrix, per column, or N in every group of M.

Scores are (n_in, n_out) like the weights; ``True`` marks a weight that is kept.  Ties are
broken by position (a stable sort), so masks are deterministic.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidArgument


def most_kept(size, keep):
    """The most of ``size`` weights that a target of ``keep`` (the fraction kept) allows:
    ``keep * size`` rounded down, since a requested sparsity is a ceiling on what is kept.
    (Up to the rounding of ``keep`` itself: ``1 - 0.9`` is 0.09999999999999998, and 10% of
    640 weights is 64.)"""
    return max(0, min(int(size), math.floor(float(keep) * size * (1 + 1e-12))))


def keep_count(size, sparsity):
    """How many of ``size`` weights a ``sparsity`` (fraction removed) keeps: at most
    ``(1 - sparsity) * size`` (:func:`most_kept`)."""
    return most_kept(size, 1.0 - float(sparsity))


def largest(scores, keep):
    """Keep the ``keep`` largest entries of the whole matrix."""
    mask = np.zeros(scores.size, bool)
    if keep > 0:
        mask[np.argsort(-scores, axis=None, kind="stable")[:keep]] = True
    return mask.reshape(scores.shape)


def largest_per_column(scores, keep):
    """Keep the ``keep`` largest entries of every column (every output neuron)."""
    order = np.argsort(-scores, axis=0, kind="stable")[:keep]
    mask = np.zeros(scores.shape, bool)
    np.put_along_axis(mask, order, True, axis=0)
    return mask


def n_of_m(scores, n, m):
    """Keep the ``n`` largest of every ``m`` consecutive inputs of each output (N:M sparsity).

    Groups run along the input axis (axis 0), as in NVIDIA's 2:4 sparse tensor cores.  When
    ``n_in`` is not a multiple of ``m`` the last, shorter group keeps at most ``n``."""
    n, m = check_nm((n, m))
    n_in, n_out = scores.shape
    groups = -(-n_in // m)
    padded = np.full((groups * m, n_out), -np.inf)
    padded[:n_in] = scores
    blocks = padded.reshape(groups, m, n_out)
    order = np.argsort(-blocks, axis=1, kind="stable")[:, :n]
    mask = np.zeros(blocks.shape, bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask.reshape(groups * m, n_out)[:n_in]


def check_nm(nm):
    """``(n, m)`` from a pair or a string such as ``"2:4"``."""
    try:
        n, m = (int(v) for v in (nm.split(":") if isinstance(nm, str) else nm))
    except (TypeError, ValueError):
        raise InvalidArgument(f"nm: expected (N, M) or 'N:M' such as '2:4', got {nm!r}") from None
    if not 0 < n < m:
        raise InvalidArgument(f"nm: expected 0 < N < M, got {n}:{m}")
    return n, m
