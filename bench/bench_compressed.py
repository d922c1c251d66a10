"""The linear program compressed (X^T X, X^T Y) against its rows, and a streamed layer of a million samples.

Side by side in one run, medians over --repeats; memory is the peak resident size above the
data's (VmHWM, reset before each solve).  Layers:

- synthetic: a sparse teacher with noise, Y = X W + b + noise (no ReLU), N = 129 inputs (the
  bias included), M = 64 outputs, P/N = 10, 100 and 1000;
- digits: the logits layer (65 x 10) of a 64-256-128-10 MLP on scikit-learn's digits, P = 1347;
- stream (--stream): 1,000,000 samples of a 768 -> 3072 float32 linear layer, generated and
  summed batch by batch (never in memory at once), solved at eps_rel 0.1.

    python bench/bench_compressed.py [--repeats 3] [--stream] [--quick]

Both forms solve in float64 to tol 1e-6 (the objectives must agree to about that); the
stream in float32 at the defaults.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time
import warnings

import data  # this folder is on sys.path when a script here runs
import nettrim
import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TIGHT = dict(tol=1e-6, dual_tol=1e-6, max_iter=100000, dtype="float64")


def peak_reset():
    """Resets the peak resident size (Linux: /proc/self/clear_refs), returns the current one (bytes)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def peak():
    return _status("VmHWM")


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def teacher(P, n_in, M, seed=0, noise=0.1, dtype=np.float64):
    """Y = X W + b + noise: Gaussian inputs, a teacher with 20% of its weights nonzero."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n_in, M)) * (rng.random((n_in, M)) < 0.2)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    X = rng.standard_normal((P, n_in)).astype(dtype)
    return X, X @ W + b + noise * rng.standard_normal((P, M)).astype(dtype)


def solve_once(X, Y, form, eps_rel, **kw):
    base = peak_reset()
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        r = nettrim.prune_layer(X, Y, mode="linear", eps_rel=eps_rel, form=form, **kw)
    return r, time.perf_counter() - t, peak() - base


def compare(name, X, Y, eps_rel, repeats):
    """One row per form: medians of time, the last run's figures."""
    P, n_in = X.shape
    N, M = n_in + 1, Y.shape[1]
    rows = []
    for form in ("rows", "compressed"):
        runs = [solve_once(X, Y, form, eps_rel, **TIGHT) for _ in range(repeats)]
        r = runs[-1][0]
        rows.append(dict(layer=name, P=P, N=N, M=M, ratio=P / N, form=r.form, status=r.status,
                         setup=statistics.median(x[0].setup_seconds for x in runs),
                         solve=statistics.median(x[0].solve_seconds for x in runs),
                         seconds=statistics.median(x[1] for x in runs),
                         memory=statistics.median(x[2] for x in runs), iterations=r.iterations,
                         objective=r.objective, relative_error=r.relative_error, nnz=r.nnz))
    rows_form, packed = rows
    packed["speedup"] = rows_form["seconds"] / packed["seconds"]
    packed["objective_difference"] = abs(packed["objective"] - rows_form["objective"]) / rows_form["objective"]
    return rows


def print_table(rows):
    print(f"{'layer':<22}{'P/N':>7}{'form':>12}{'setup s':>9}{'solve s':>9}{'total s':>9}{'iters':>7}"
          f"{'memory MB':>11}{'objective':>14}{'rel. diff':>10}{'speedup':>9}")
    for r in rows:
        diff = f"{r['objective_difference']:.1e}" if "objective_difference" in r else ""
        speed = f"{r['speedup']:.1f}x" if "speedup" in r else ""
        print(f"{r['layer']:<22}{r['ratio']:>7.0f}{r['form']:>12}{r['setup']:>9.3f}{r['solve']:>9.3f}"
              f"{r['seconds']:>9.3f}{r['iterations']:>7d}{r['memory'] / 2**20:>11.1f}{r['objective']:>14.6g}"
              f"{diff:>10}{speed:>9}")


def stream(P=1_000_000, n_in=768, M=3072, batch=8192, eps_rel=0.1, seed=0):
    """A 1,000,000-sample linear layer generated and summed a batch at a time, then solved."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n_in, M)) * (rng.random((n_in, M)) < 0.2) / np.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)

    def batches():
        for p0 in range(0, P, batch):
            rows = min(batch, P - p0)
            X = rng.standard_normal((rows, n_in), dtype=np.float32)
            yield X, X @ W + b + 0.05 * rng.standard_normal((rows, M), dtype=np.float32)

    base = peak_reset()
    t0 = time.perf_counter()
    stats = nettrim.SampleStatistics.from_batches(batches())
    t1 = time.perf_counter()
    solver = nettrim.LayerSolver.from_statistics(stats)
    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        r = solver.solve(eps_rel=eps_rel)
    t3 = time.perf_counter()
    out = dict(P=P, N=n_in + 1, M=M, batch=batch, eps_rel=eps_rel, status=r.status, iterations=r.iterations,
               sums_seconds=t1 - t0, setup_seconds=t2 - t1, solve_seconds=t3 - t2, seconds=t3 - t0,
               peak_bytes=peak(), peak_above_start=peak() - base, density=r.density,
               relative_error=r.relative_error, floor_rel=float(np.linalg.norm(solver.floor)) / solver._y_norm)
    print(f"stream: {P} samples, {n_in + 1} x {M} float32, batches of {batch}: {r.status} in {r.iterations} "
          f"iterations; sums {out['sums_seconds']:.1f} s (generation included), set-up {out['setup_seconds']:.1f} s, "
          f"solve {out['solve_seconds']:.1f} s, total {out['seconds']:.1f} s; peak memory {out['peak_bytes'] / 2**30:.2f} "
          f"GiB; kept {100 * r.density:.1f}%, relative error {r.relative_error:.4f} (floor {out['floor_rel']:.4f})")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="P/N = 10 and 100 only, one repeat")
    ap.add_argument("--stream", action="store_true", help="also the 1,000,000-sample streamed layer")
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    rows = []
    for ratio in (10, 100) if args.quick else (10, 100, 1000):
        X, Y = teacher(ratio * 129, 128, 64, seed=ratio)
        rows += compare(f"synthetic 129x{ratio * 129}", X, Y, 0.1, repeats)
        print_table(rows)
    Xtr, ytr, _, _ = data.digits()
    Ws, bs = data.trained_mlp("digits_mlp_256_128", (256, 128), Xtr, ytr, max_iter=300)
    Z = Xtr.astype(np.float32)
    for W, b in zip(Ws[:-1], bs[:-1]):
        Z = np.maximum(Z @ W + b, 0)
    rows += compare(f"digits logits {Z.shape[1] + 1}x{len(Z)}", Z, Z @ Ws[-1] + bs[-1], 0.05, repeats)
    print_table(rows)
    result = dict(rows=rows)
    if args.stream:
        result["stream"] = stream()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_compressed.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
