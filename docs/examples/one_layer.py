"""Tutorial, "One layer": prune_layer and LayerSolver on the first layer of the digits MLP."""
# ruff: noqa: I001  (each snippet imports what it introduces, in the tutorial's order)
from digits_setup import X_train, mlp

# --- example: prune_layer ---
import numpy as np
import nettrim

W, b = mlp.coefs_[0], mlp.intercepts_[0]     # (64, 128) inputs x outputs, and (128,)
res = nettrim.prune_layer(X_train, W=W, b=b, eps_rel=0.05)
print(res.summary())
print(res.weight.shape, res.bias.shape, res.sparse_weight.nnz)
# --- end: prune_layer ---

# --- example: solver ---
solver = nettrim.LayerSolver(X_train, W=W, b=b)     # converts X and factorises once
first = solver.solve(eps_rel=0.05)                  # starts from zero
looser = solver.solve(eps_rel=0.08)                 # continues from the last iterates
print(first.iterations, looser.iterations, looser.nnz)

path = solver.solve_path(eps_rel=np.geomspace(0.02, 0.3, 6))
print(path.summary())
print(path.density)              # one entry per point; path[i] is a LayerResult
# --- end: solver ---

# --- example: warm start ---
solver.warm_start(first)                 # the ADMM state kept by a result ...
again = solver.solve(eps_rel=0.05)       # ... starts the next solve where it ended
solver.warm_start("zero")                # or: "W" (the trained weights), or a matrix
solver.update_settings(tol=1e-4)         # settings change without refactorising
tighter = solver.solve(eps_rel=0.05)
print(again.iterations, tighter.iterations)
# --- end: warm start ---

# --- example: variants ---
per_neuron = nettrim.prune_layer(X_train, W=W, b=b, eps_rel=0.05, constraint="neuron")
grouped = nettrim.prune_layer(X_train, W=W, b=b, eps_rel=0.05, penalty="group")
rows_left = int(np.count_nonzero(np.abs(grouped.weight).sum(axis=1)))
certified = nettrim.prune_layer(X_train, W=W, b=b, eps_rel=0.05, dtype="float64", gap_tol=1e-3)
print(per_neuron.nnz, rows_left, certified.gap, certified.dual_bound <= certified.objective)

H = np.maximum(X_train @ W + b, 0)                        # the first layer's outputs feed the second
W2, b2 = mlp.coefs_[1], mlp.intercepts_[1]
second = nettrim.prune_layer(H, W=W2, b=b2, eps_rel=0.05)
logits = nettrim.prune_layer(np.maximum(H @ W2 + b2, 0), W=mlp.coefs_[2], b=mlp.intercepts_[2],
                             eps_rel=0.05, mode="linear")  # no ReLU after the last layer
print(second.summary())
print(logits.summary())
# --- end: variants ---
