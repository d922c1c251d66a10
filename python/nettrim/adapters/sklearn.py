"""scikit-learn MLPClassifier / MLPRegressor with ReLU activations."""
from __future__ import annotations

import copy

import numpy as np

from ..errors import InvalidArgument, InvalidArgumentType
from ..network import Network, from_arrays
from .base import Provenance


def _mlp_types():
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    return MLPClassifier, MLPRegressor


def from_sklearn(model) -> Network:
    """The network of a fitted ``MLPClassifier`` / ``MLPRegressor`` with ``activation='relu'``."""
    if not isinstance(model, _mlp_types()):
        raise InvalidArgumentType(f"model: expected a fitted scikit-learn MLPClassifier or MLPRegressor, got "
                        f"{type(model).__name__}")
    if not hasattr(model, "coefs_"):
        raise InvalidArgument(f"model: this {type(model).__name__} is not fitted yet (call fit first)")
    if model.activation != "relu":
        raise InvalidArgument(f"model: expected activation='relu' (Net-Trim prunes ReLU networks), got "
                         f"activation={model.activation!r}")
    return from_arrays(list(model.coefs_), list(model.intercepts_), last_linear=True)


def to_sklearn(net: Network, model):
    """A copy of ``model`` carrying the (pruned) weights of ``net``; the original is untouched.

    ``net`` must have the model's layers and shapes (as :func:`from_sklearn` gives them)."""
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network, got {type(net).__name__}")
    if not isinstance(model, _mlp_types()) or not hasattr(model, "coefs_"):
        raise InvalidArgumentType(f"model: expected the fitted MLPClassifier or MLPRegressor the network was read from, got "
                        f"{type(model).__name__}")
    if len(net.layers) != len(model.coefs_) or len(net.steps) != len(net.layers):
        raise InvalidArgument(f"net: has {len(net.layers)} layers ({len(net.steps)} steps), the model "
                         f"{len(model.coefs_)} dense layers")
    for i, layer in enumerate(net.layers):
        if np.shape(layer.weight) != np.shape(model.coefs_[i]):
            raise InvalidArgument(f"net: layer {layer.name} has weights of shape {layer.weight.shape}, the model's "
                             f"coefs_[{i}] {np.shape(model.coefs_[i])}")
    out = copy.deepcopy(model)
    out.coefs_ = [layer.weight.astype(model.coefs_[i].dtype) for i, layer in enumerate(net.layers)]
    out.intercepts_ = [layer.bias.astype(model.intercepts_[i].dtype) for i, layer in enumerate(net.layers)]
    return out


def read(model):
    """``(network, provenance)`` of a fitted scikit-learn ReLU MLP (see :func:`from_sklearn`)."""
    return from_sklearn(model), Provenance("sklearn", model)


def write(net: Network, provenance, destination=None):
    """A copy of the estimator ``provenance`` came from, carrying ``net``'s weights.  Saving it
    to a file is yours (``joblib.dump``): nettrim writes no pickles."""
    if destination is not None:
        raise InvalidArgument("destination: a scikit-learn model is returned, not written; save the returned "
                              "estimator yourself (e.g. joblib.dump)")
    return to_sklearn(net, provenance.source)
