"""scikit-learn MLPClassifier / MLPRegressor with ReLU activations."""
from __future__ import annotations

import copy


from ..network import Network, from_arrays


def from_sklearn(model) -> Network:
    if not hasattr(model, "coefs_"):
        raise ValueError(f"model: expected a fitted scikit-learn MLPClassifier or MLPRegressor, got "
                         f"{type(model).__name__}")
    if model.activation != "relu":
        raise ValueError(f"model: expected activation='relu' (Net-Trim prunes ReLU networks), got "
                         f"activation={model.activation!r}")
    return from_arrays(model.coefs_, model.intercepts_, last_linear=True)


def to_sklearn(net: Network, model):
    """A copy of ``model`` carrying the (pruned) weights of ``net``; the original is untouched."""
    out = copy.deepcopy(model)
    out.coefs_ = [layer.W.astype(model.coefs_[i].dtype) for i, layer in enumerate(net.layers)]
    out.intercepts_ = [layer.b.astype(model.intercepts_[i].dtype) for i, layer in enumerate(net.layers)]
    return out
