"""Other pruning methods, under the same interface as a Net-Trim layer solve.

Each layer-wise method takes a layer's input signals ``X`` (P, n_in), its trained weights
``W`` (n_in, n_out) and bias ``b``, and a target (``sparsity``, the fraction of weights to
remove, or ``nm=(N, M)``), and returns a :class:`~nettrim.PrunedLayer`; so
``nettrim.prune_network(net, X, method=...)`` runs any of them in the parallel or cascade
scheme, and results compare at matched nonzeros.

==============  =============================================================  =====
method          criterion (paper)                                              N:M
==============  =============================================================  =====
``magnitude``   largest ``|w|`` (Han et al. 2015); global in network scope     yes
``wanda``       ``|w_ij| ||x_i||`` per output, no update (Sun et al. 2024)     yes
``lobs``        OBS sensitivity and update, layer Hessian (Dong et al. 2017)   no
``sparsegpt``   blocked OBS with adaptive mask (Frantar and Alistarh 2023)     yes
``apoz``        whole neurons with mostly-zero ReLU output (Hu et al. 2016)    no
==============  =============================================================  =====
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import InvalidArgument
from .apoz import apoz, apoz_scores
from .base import Given, Layerwise, Target
from .magnitude import magnitude
from .masks import check_nm, n_of_m
from .nettrim import NetTrim
from .obs import lobs, sparsegpt
from .refit import refit_on_support
from .wanda import wanda, wanda_scores


@dataclass(frozen=True)
class Method:
    """What a pruning method is to the pruning driver: how it is made, and what it can do.

    ``layerwise``: for a method that prunes one layer from its inputs and trained weights,
    ``fn(X, W, b, *, sparsity=..., nm=..., **options)`` (its signature lists its options);
    None for Net-Trim (its own method object, :class:`~nettrim.methods.nettrim.NetTrim`) and
    for APoZ (whole neurons, decided for the whole network at once).
    ``nm``: it has an N:M variant.  ``network``: how ``scope="network"`` shares one sparsity
    out among the layers: ``"allocation"`` (Net-Trim's: curves, one shared eps, or uniform),
    ``"global"`` (one threshold on ``|w|`` across layers), ``"neurons"`` (one ranking of
    neurons across layers) or ``"uniform"`` (the same fraction per layer, as the method's paper
    does: its criterion does not compare across layers)."""
    name: str
    network: str
    nm: bool = False
    layerwise: Optional[Callable] = None


METHODS = {m.name: m for m in (
    Method("nettrim", "allocation", nm=True),
    Method("magnitude", "global", nm=True, layerwise=magnitude),
    Method("wanda", "uniform", nm=True, layerwise=wanda),
    Method("lobs", "uniform", layerwise=lobs),
    Method("sparsegpt", "uniform", nm=True, layerwise=sparsegpt),
    Method("apoz", "neurons"),
)}
"""Every pruning method, by name (``prune_network(method=...)``, ``nettrim prune --method``)."""


def method_named(name):
    """The :class:`Method` called ``name``; an error lists the names."""
    if name not in METHODS:
        raise InvalidArgument(f"method: expected one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]


def nm_methods():
    """The names of the methods with an N:M variant."""
    return sorted(name for name, m in METHODS.items() if m.nm)


__all__ = ["magnitude", "wanda", "wanda_scores", "lobs", "sparsegpt", "apoz", "apoz_scores",
           "refit_on_support", "n_of_m", "check_nm", "METHODS", "Method", "method_named", "nm_methods",
           "NetTrim", "Layerwise", "Given", "Target"]
