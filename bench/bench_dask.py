"""The parallel scheme in-process and on a Dask LocalCluster (1 and 2 worker processes).

Fashion-MNIST MLP (784-300-100-10) and CNN (bench_network's), parallel scheme, eps_rel 0.05,
one engine thread per solve.  Times are medians of --repeats runs, side by side in one run;
the Dask time is split into

- computation: the summed solve time the layers report, divided by the workers busy at once
  (the longest layer's time when there are fewer layers than workers);
- transfer: the time to scatter the layers' inputs (measured alone, the same data, the same
  cluster);
- scheduling and the rest: what remains of the wall time.

    python bench/bench_dask.py [--samples 2000] [--repeats 3] [--models mlp,cnn] [--blocks 100]

On this 2-core machine Dask cannot show more than 2x; the figures feed the scaling model in
the docs (docs: "Beyond one machine").
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings
from functools import partial

import data  # this folder is on sys.path when a script here runs
import nettrim
import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def mlp(Xtr, ytr):
    Ws, bs = data.trained_mlp("fashion_mlp", (300, 100), Xtr, ytr)
    return nettrim.from_arrays(Ws, bs), None


def cnn(Xtr, ytr):
    from bench_network import fashion_cnn
    return fashion_cnn(Xtr, ytr), (1, 28, 28)


def timed(fn, repeats):
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        runs.append((time.perf_counter() - t, out))
    runs.sort(key=lambda r: r[0])
    return runs[len(runs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--blocks", type=int, default=100, help="also run the MLP in blocks of this many outputs (0: no)")
    args = ap.parse_args()
    from nettrim.distributed import DaskExecutor, connect, disconnect
    from nettrim.network import check_inputs
    Xtr, ytr, Xte, yte = data.fashion_mnist()
    Xcal = Xtr[np.random.default_rng(0).permutation(len(Xtr))[:args.samples]]
    rows, results = [], []
    models = {"mlp": mlp, "cnn": cnn}
    for name in args.models.split(","):
        net, shape = models[name](Xtr, ytr)
        X = Xcal if shape is None else Xcal.reshape((len(Xcal),) + shape)
        settings = [dict()]
        if name == "mlp" and args.blocks:
            settings.append(dict(block_outputs=args.blocks))
        for extra in settings:
            kw = dict(scheme="parallel", eps_rel=0.05, threads=1, **extra)
            label = name + (f", blocks of {extra['block_outputs']}" if extra else "")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wall, (ref, report) = timed(partial(nettrim.prune_network, net, X, **kw), args.repeats)
            solve = sum(r.seconds for r in report.layers)
            rows.append((label, "in-process", wall, solve, 0.0, 0.0, 0.0))
            for workers in (1, 2):
                client = connect("local", workers=workers)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        nettrim.prune_network(net, X, executor=client, **kw)        # warm the workers' imports
                        wall, (out, report) = timed(partial(nettrim.prune_network, net, X, executor=client, **kw),
                                                    args.repeats)
                    # Bit-identical when numpy's BLAS threads match (Dask's workers run one; the tests pin
                    # one everywhere); otherwise the re-fits round differently.
                    same = max(float(np.abs(a.weight - b.weight).max() / max(np.abs(a.weight).max(), 1e-30))
                               for a, b in zip(ref.layers, out.layers))
                    # Transfer: the same layers' inputs scattered alone (what share() does in the run).
                    plan = net.sample_positions(len(X), 8000, 0)
                    inputs = net.layer_inputs(check_inputs(net, X, "X"), plan, range(len(net.layers)))
                    ex = DaskExecutor(client)
                    t = time.perf_counter()
                    for k, arr in inputs.items():
                        ex.share(arr, broadcast=bool(extra)).current().result()
                    transfer = time.perf_counter() - t
                    moved = ex.scattered_bytes
                    ex.shutdown()
                finally:
                    disconnect(client)
                times = sorted((r.seconds for r in report.layers), reverse=True)
                compute = max(sum(times) / workers, times[0]) if not extra else sum(times) / workers
                rows.append((label, f"dask, {workers} worker{'s' * (workers > 1)}", wall, sum(times), compute,
                             transfer, max(0.0, wall - compute - transfer)))
                results.append(dict(model=label, workers=workers, wall=wall, solve_sum=sum(times), compute=compute,
                                    transfer=transfer, moved_bytes=moved, weight_difference=same,
                                    layer_seconds=[r.seconds for r in report.layers]))
                print(f"{label}: dask {workers} workers, largest weight difference {same:.1e} (relative to the "
                      f"largest weight), {moved / 2**20:.1f} MiB moved",
                      flush=True)
    head = ("model", "run", "wall s", "solves s (sum)", "computation s", "transfer s", "scheduling+rest s")
    print(nettrim_table([head] + [(a, b) + tuple(f"{v:.2f}" for v in rest) for a, b, *rest in rows]))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_dask.json").write_text(json.dumps(dict(samples=args.samples, rows=rows, runs=results),
                                                        indent=1))


def nettrim_table(rows):
    from nettrim.reporting import format_table
    return format_table(rows)


if __name__ == "__main__":
    main()
