"""The CUDA engine against the CPU engine, side by side in one run on one machine.

For each layer, every engine configuration solves the same problem (eps_rel 0.05, the
engine's default tolerances) --repeats times; the table has medians:

- cpu float32, cpu float64 (all the host's cores);
- cuda float32, cuda:tf32 float32 (TF32 tensor cores for the two large products),
  cuda float64.

Columns: seconds per iteration, iterations, total seconds (setup included), the ratio of
an iteration to the two P x N x M GEMMs of one iteration (cuBLAS's own time for the CUDA
rows, timed with CUDA events on random data; numpy's for the CPU rows), the objective
and its relative difference from the CPU engine's result in the same dtype, and the
violations of the returned matrix recomputed here in float64.

Layers: synthetic 785 x 10000 x 300 and 1569 x 20000 x 500 (N x P x M, the bias input
included); the digits MLP's hidden layers (scikit-learn's bundled data); the Fashion-MNIST
MLP's layers where Debian's dataset-fashion-mnist is installed; with --authors, a
synthetic layer of the authors' LeNet shape, 3137 x 55000 x 512.

    python bench/bench_cuda.py [--repeats 3] [--quick] [--authors] [--max-iter 5000]

Without a CUDA build or a GPU it says so and exits (status 0).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import warnings

import data  # this folder is on sys.path when a script here runs
import nettrim
import numpy as np
from bench_layer import gemm_time
from nettrim import _core
from nettrim.metrics import constraint_violations

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CONFIGS = [("cpu", "float32"), ("cpu", "float64"), ("cuda", "float32"), ("cuda:tf32", "float32"),
           ("cuda", "float64")]


def cuda_skip_reason():
    """Why the CUDA engine cannot run here, or None."""
    if not getattr(_core, "cuda", False):
        return ("this nettrim build has no CUDA backend (build it with "
                "pip install . -Ccmake.define.NETTRIM_CUDA=ON; see cpp/cuda/README.md)")
    if "cuda" not in nettrim.backends():
        return f"the CUDA backend is built in, but no CUDA device is visible ({_core.cuda_device_count()} devices)"
    return None


def gemm_seconds(backend, dtype, N, P, M, cache):
    key = (backend, dtype, N, P, M)
    if key not in cache:
        if backend == "cpu":
            cache[key] = gemm_time(N, P, M, np.dtype(dtype), os.cpu_count())   # bench_layer's timer
        else:
            cache[key] = _core.cuda_gemm_seconds(P, N, M, float64=dtype == "float64", tf32=backend == "cuda:tf32")
    return cache[key]


def run(X, Y, backend, dtype, repeats, max_iter):
    """Median seconds, seconds per iteration, and the last result of `repeats` solves."""
    runs = []
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
            runs.append(nettrim.prune_layer(X, Y, eps_rel=0.05, dtype=dtype, backend=backend, max_iter=max_iter))
    res = runs[-1]
    return (res, statistics.median(r.seconds for r in runs),
            statistics.median(r.solve_seconds / max(1, r.iterations) for r in runs))


def layer_rows(name, X, Y, args, gemm_cache):
    P, n_in = X.shape
    N, M = n_in + 1, Y.shape[1]
    Xs = np.hstack([X, np.ones((P, 1), X.dtype)]).astype(np.float64)
    omega, zeros = Y > 0, np.zeros(Y.shape)
    rows, cpu_objective = [], {}
    for backend, dtype in CONFIGS:
        repeats = args.cpu_repeats if backend == "cpu" and args.cpu_repeats else args.repeats
        res, secs, per_it = run(X, Y, backend, dtype, repeats, args.max_iter)
        v_om, v_c = constraint_violations(Xs @ res.U.astype(np.float64), Y, omega, zeros, res.eps)
        g = gemm_seconds(backend, dtype, N, P, M, gemm_cache)
        if backend == "cpu":
            cpu_objective[dtype] = res.objective
        ref = cpu_objective.get(dtype)
        rows.append(dict(layer=name, shape=f"{N}x{P}x{M}", backend=backend, dtype=dtype, status=res.status,
                         iterations=res.iterations, seconds=secs, setup_seconds=res.setup_seconds,
                         sec_per_iter=per_it, gemm2=g, iter_over_gemm=per_it / g, objective=res.objective,
                         objective_vs_cpu=(res.objective / ref - 1) if ref else None,
                         omega_violation=v_om, complement_violation=v_c, repeats=repeats))
        print_row(rows[-1])
    return rows


HEAD = ("layer", "N x P x M", "engine", "dtype", "status", "iters", "s/iter", "2GEMM s", "iter/2GEMM", "total s",
        "setup s", "objective", "vs cpu", "viol Omega", "viol Omega^c")


def print_head():
    print("  ".join(f"{h:>12}" if i >= 5 else f"{h:<16}" for i, h in enumerate(HEAD)))
    sys.stdout.flush()


def print_row(r):
    vs = "" if r["objective_vs_cpu"] is None else f"{r['objective_vs_cpu']:+.1e}"
    cells = (r["layer"], r["shape"], r["backend"], r["dtype"], r["status"], f"{r['iterations']}",
             f"{r['sec_per_iter']:.5f}", f"{r['gemm2']:.5f}", f"{r['iter_over_gemm']:.2f}", f"{r['seconds']:.3f}",
             f"{r['setup_seconds']:.3f}", f"{r['objective']:.4f}", vs, f"{r['omega_violation']:.1e}",
             f"{r['complement_violation']:.1e}")
    print("  ".join(f"{c:>12}" if i >= 5 else f"{c:<16}" for i, c in enumerate(cells)))
    sys.stdout.flush()


def synthetic(N, P, M, seed=0):
    """The per-iteration benchmark's synthetic ReLU layer (bench_layer.py's recipe)."""
    rng = np.random.default_rng(seed)
    X = rng.random((P, N - 1), dtype=np.float32)
    W = (rng.standard_normal((N - 1, M)) * 0.05).astype(np.float32)
    return X, np.maximum(X @ W - 0.5, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-repeats", type=int, default=0, help="repeats of the CPU rows (default: --repeats)")
    ap.add_argument("--max-iter", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="the synthetic 785 x 10000 x 300 layer only")
    ap.add_argument("--authors", action="store_true", help="also the 3137 x 55000 x 512 layer")
    args = ap.parse_args()

    reason = cuda_skip_reason()
    if reason:
        print(f"bench_cuda: skipped: {reason}.")
        return 0

    print(f"CUDA device: {_core.cuda_device_name()}; nettrim {nettrim.__version__}; "
          f"medians of {args.repeats} solves (eps_rel 0.05)")
    layers = [("synthetic", *synthetic(785, 10000, 300))]
    if not args.quick:
        layers.append(("synthetic", *synthetic(1569, 20000, 500)))
        Xtr, ytr, _, _ = data.digits()
        Ws, bs = data.trained_mlp("digits_mlp_256_128", (256, 128), Xtr, ytr, max_iter=300)
        for i, (X, Y, _, _) in enumerate(data.layer_problems(Ws, bs, Xtr)):
            layers.append((f"digits L{i + 1}", X, Y))
        if (data.FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
            Ftr, fy, _, _ = data.fashion_mnist()
            Wf, bf = data.trained_mlp("fashion_mlp", (300, 100), Ftr, fy)
            for i, (X, Y, _, _) in enumerate(data.layer_problems(Wf, bf, Ftr[:10000])):
                layers.append((f"fashion L{i + 1}", X, Y))
        else:
            print(data.FASHION_HELP.format(data.FASHION_DIR))
    if args.authors:
        layers.append(("authors' shape", *synthetic(3137, 55000, 512, seed=1)))

    print_head()
    rows, gemm_cache = [], {}
    for name, X, Y in layers:
        rows += layer_rows(name, X, Y, args, gemm_cache)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_cuda.json"
    path.write_text(json.dumps(dict(device=_core.cuda_device_name(), rows=rows), indent=1, default=float))
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
