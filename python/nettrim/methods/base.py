"""The protocol every pruning method follows: a layer problem and a target in, an outcome out.

A method is an object with ``name`` and ``prune(problem, target) -> PrunedLayer``
(:class:`~nettrim.problem.LayerProblem`, :class:`Target`, :class:`~nettrim.PrunedLayer`).  The schemes
run any method the same way; what differs between methods is only how one layer is pruned.
Statuses and notes travel in the outcome (never as warnings from worker threads).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import InvalidArgument
from ..result import PrunedLayer


@dataclass(frozen=True)
class Target:
    """What one layer is pruned to: a tolerance (Net-Trim), a density, or an N:M pattern."""
    eps_rel: Optional[float] = None       # Net-Trim's relative tolerance
    keep: Optional[float] = None          # fraction of the weights to keep (1 - sparsity)
    nm: Optional[Tuple[int, int]] = None  # N nonzeros in every M inputs
    close: Optional[float] = None         # with keep: a density in [(1 - close) keep, keep] will do
    slope: Optional[float] = None         # d log(density) / d log(eps) near eps_rel, when known (a curve)
    lowest: Optional[float] = None        # with keep: the smallest eps_rel a search tries (default 1e-3)
    inactive: Optional[str] = None        # Net-Trim's program for this layer ("bounded" / "relu"; an
                                          # allocation's choice); None: the method's own


class Layerwise:
    """A method that prunes a layer from its inputs and trained weights to a density or N:M
    (magnitude, Wanda, L-OBS, SparseGPT): ``fn(X, W, b, sparsity=..., nm=..., **options)``."""

    def __init__(self, name: str, fn: Callable, options=None):
        self.name, self.fn, self.options = name, fn, dict(options or {})

    def prune(self, problem, target: Target) -> PrunedLayer:
        t0 = time.perf_counter()
        if target.nm is not None:
            out = self.fn(problem.X, problem.W, problem.b, nm=target.nm, **self.options)
        else:
            if target.keep is None:
                raise InvalidArgument(f"sparsity: method {self.name!r} needs a target sparsity (or nm)")
            if target.keep <= 0:
                # (a share of a network's budget that leaves this layer nothing, e.g. one global
                # magnitude threshold at 0.999999 removed: every weight goes, the bias stays)
                out = PrunedLayer(weight=np.zeros_like(problem.W, dtype=np.float32), bias=problem.b, method=self.name)
            else:
                out = self.fn(problem.X, problem.W, problem.b, sparsity=1.0 - target.keep, **self.options)
        out.seconds = out.final_seconds = time.perf_counter() - t0
        return out


class Given:
    """Weights decided for the whole network beforehand (APoZ's neurons): one matrix per group,
    in the order the groups are asked for."""
    name = "given"

    def __init__(self, matrices):
        self.matrices = {name: wb for name, wb in matrices.items()}

    def prune(self, problem, target: Target) -> PrunedLayer:
        weight, bias = self.matrices[problem.name]
        return PrunedLayer(weight=weight, bias=bias if problem.has_bias else None, method=self.name)
