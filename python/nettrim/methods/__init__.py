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

from .apoz import apoz, apoz_scores
from .magnitude import magnitude
from .masks import check_nm, n_of_m
from .obs import lobs, sparsegpt
from .refit import refit_on_support
from .wanda import wanda, wanda_scores

LAYERWISE = {"magnitude": magnitude, "wanda": wanda, "lobs": lobs, "sparsegpt": sparsegpt}
"""Methods that prune one layer from its inputs and weights."""

NM_CAPABLE = {"magnitude", "wanda", "sparsegpt", "nettrim"}

METHODS = ("nettrim",) + tuple(LAYERWISE) + ("apoz",)

__all__ = ["magnitude", "wanda", "wanda_scores", "lobs", "sparsegpt", "apoz", "apoz_scores",
           "refit_on_support", "n_of_m", "check_nm", "LAYERWISE", "METHODS", "NM_CAPABLE"]
