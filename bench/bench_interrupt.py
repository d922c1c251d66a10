"""Ctrl-C latency: how long a layer solve takes to raise KeyboardInterrupt after SIGINT.

A child process solves a synthetic layer; the parent sends SIGINT at a chosen moment,
halfway through setup (the conversion, Gram product and eigendecomposition, timed
beforehand) or during the iterations, and
measures the time until the child has caught KeyboardInterrupt.  Both processes read the
same monotonic clock (time.perf_counter is CLOCK_MONOTONIC on Linux), so the latency is
the child's catch time minus the parent's send time.  Run it alone: on a loaded machine
the scheduler, not the engine, sets the figure.

    python bench/bench_interrupt.py [--repeats 5] [--quick]
"""
from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import textwrap
import time

CHILD = textwrap.dedent("""
    import sys, time, numpy as np, nettrim
    P, N, M, dtype, when = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P, N - 1)).astype(dtype)
    W = (rng.standard_normal((N - 1, M)) / np.sqrt(N)).astype(dtype)
    Y = np.maximum(X @ W, 0)
    told = []

    def progress(*_):
        if not told:
            told.append(1)
            print("iterating", flush=True)

    import warnings
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    nettrim.prune_layer(X, Y, dtype=dtype, max_iter=0)      # how long the call takes before iterating
    print("setup %.6f" % (time.perf_counter() - t), flush=True)
    try:
        nettrim.prune_layer(X, Y, dtype=dtype, max_iter=10**7, tol=0, progress=progress, adapt_every=1)
    except KeyboardInterrupt:
        print("caught %.6f" % time.perf_counter(), flush=True)
        sys.exit(0)
    sys.exit("finished without an interrupt")
""")


def one(P, N, M, dtype, when, delay):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(P), str(N), str(M), dtype, when],
                            stdout=subprocess.PIPE, text=True)
    word, setup = proc.stdout.readline().split()
    assert word == "setup"
    if when == "iterations":
        assert proc.stdout.readline().strip() == "iterating"
    else:   # halfway through the conversion, Gram product and eigendecomposition
        delay = float(setup) / 2
    time.sleep(delay)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=600)
    lines = [line for line in out.splitlines() if line.startswith("caught")]
    if not lines:
        raise RuntimeError(f"no interrupt caught: {out!r}")
    return float(lines[0].split()[1]) - sent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="the small shape only")
    args = ap.parse_args()
    shapes = [(4000, 301, 100)] + ([] if args.quick else [(20000, 1001, 500)])
    print("N x P x M          dtype    moment      latency s (median, max of %d)" % args.repeats)
    for P, N, M in shapes:
        for dtype in ("float32", "float64"):
            for when, delay in (("setup", 0.0), ("iterations", 0.3)):
                lat = [one(P, N, M, dtype, when, delay) for _ in range(args.repeats)]
                print(f"{N}x{P}x{M:<7} {dtype:8} {when:10}  {statistics.median(lat):.3f}  {max(lat):.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
