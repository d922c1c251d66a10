"""Tutorial, "Beyond one machine": the parallel scheme on a Dask cluster, blocks, a memory budget."""
# ruff: noqa: I001  (each snippet imports what it introduces, in the tutorial's order)
from digits_setup import X_train, mlp

import nettrim
from nettrim import adapters

net, provenance = adapters.read(mlp)

# --- example: dask ---
from dask.distributed import Client, LocalCluster

if __name__ == "__main__":                  # worker processes import this file again
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        pruned, report = nettrim.prune_network(net, X_train, scheme="parallel", eps_rel=0.05,
                                               executor=client)
        blocks, block_report = nettrim.prune_network(net, X_train, scheme="parallel", eps_rel=0.05,
                                                     block_outputs=32, executor=client)
    print(report.summary())
    print([layer.nnz for layer in block_report.layers])
# --- end: dask ---

# --- example: budget ---
    small, report = nettrim.prune_network(net, X_train, eps_rel=0.05, memory_budget="6MiB")
    print(report.memory)
    print([layer.samples for layer in report.layers])
# --- end: budget ---
