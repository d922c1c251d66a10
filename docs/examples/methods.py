"""Tutorial, "Other methods": the comparison methods, one layer and whole networks."""
# ruff: noqa: I001  (each snippet imports what it introduces, in the tutorial's order)
import numpy as np
from digits_setup import X_test, X_train, mlp, y_test

# --- example: one layer ---
from nettrim import methods

W, b = mlp.coefs_[0], mlp.intercepts_[0]
for name in ["magnitude", "wanda", "lobs", "sparsegpt"]:
    out = getattr(methods, name)(X_train, W, b, sparsity=0.9)       # a PrunedLayer
    print(name, out.method, out.nnz, out.weight.shape)
two_four = methods.sparsegpt(X_train, W, b, nm="2:4")                # N:M patterns
print(two_four.density)

# Least squares on a fixed support: the kept weights of magnitude pruning, re-fitted.
Y = np.maximum(X_train @ W + b, 0)
mask = methods.magnitude(None, W, b, sparsity=0.9).weight != 0
weights, bias = methods.refit_on_support(X_train, Y, mask)
print(np.count_nonzero(weights) <= mask.sum())
print(methods.n_of_m(np.abs(W), 2, 4).sum(axis=0)[:3])              # a 2:4 mask: 32 of 64 per column
# --- end: one layer ---

# --- example: networks ---
import nettrim
from nettrim.adapters.sklearn import from_sklearn

net = from_sklearn(mlp)
for method in ["nettrim", "magnitude", "sparsegpt"]:
    pruned, report = nettrim.prune_network(net, X_train, method=method, sparsity=0.9, scope="layer")
    print(method, report.method, round(report.density, 3), (pruned.predict(X_test) == y_test).mean())
pruned, report = nettrim.prune_network(net, X_train, nm="2:4")               # Net-Trim, 2:4
print(report.summary())
# --- end: networks ---

# --- example: structured ---
from nettrim.structured import shrink

masked, report = nettrim.prune_network(net, X_train, structured=True, eps_rel=0.1)   # group penalty
small, removed = shrink(masked)            # the neurons whose weights all went, taken out
print(removed, small)
neurons = methods.apoz(net, X_train, sparsity=0.3)    # APoZ: a masked copy of the network
print(shrink(neurons)[1])
# --- end: structured ---
