"""Tutorial, "Whole networks": prune_network on the digits MLP, read through its adapter."""
# ruff: noqa: I001  (each snippet imports what it introduces, in the tutorial's order)
import tempfile
from concurrent.futures import ThreadPoolExecutor

from digits_setup import X_test, X_train, mlp, y_test

# --- example: read ---
import nettrim
from nettrim import adapters

net, provenance = adapters.read(mlp)           # a fitted scikit-learn MLP, a torch module, a file ...
print(net)
# --- end: read ---

# --- example: eps ---
pruned, report = nettrim.prune_network(net, X_train, scheme="cascade", eps_rel=0.05)
print(report.summary())
print("accuracy", (pruned.predict(X_test) == y_test).mean(), "kept", report.density)
# --- end: eps ---

# --- example: sparsity ---
pruned, report = nettrim.prune_network(net, X_train, sparsity=0.9)     # allocation="curves"
print(report.allocation, [round(layer.density, 3) for layer in report.layers])
uniform, _ = nettrim.prune_network(net, X_train, sparsity=0.9, allocation="uniform")
per_layer, _ = nettrim.prune_network(net, X_train, sparsity=[0.8, 0.95, 0.5])   # one per layer
for name, candidate in [("curves", pruned), ("uniform", uniform), ("per layer", per_layer)]:
    print(name, (candidate.predict(X_test) == y_test).mean(), candidate.nnz())
# --- end: sparsity ---

# --- example: options ---
with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(max_workers=2) as pool:
    parallel, report = nettrim.prune_network(
        net, X_train, scheme="parallel", eps_rel=0.05,
        layers=["dense0", "dense1"],             # the last layer stays dense
        executor=pool,                           # the layers are independent jobs
        checkpoint=folder,                       # a rerun resumes after the last finished layer
        on_layer=lambda k, layer: print("done:", layer.name, layer.nnz, "of", layer.nnz_before))
    print([layer.status for layer in report.layers])
# --- end: options ---

# --- example: write ---
small_mlp = adapters.write(pruned, provenance)     # a copy of the estimator with the pruned weights
print(small_mlp.score(X_test, y_test))
with tempfile.TemporaryDirectory() as folder:
    pruned.save_npz(f"{folder}/pruned.npz", sparse=True)      # CSR weights, nettrim's layout
    again, _ = adapters.read(f"{folder}/pruned.npz")
    print(again.nnz() == pruned.nnz())
# --- end: write ---
