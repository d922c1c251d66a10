"""Guarantees that must last: no memory growth over many solves, the same bits for the same
thread count, and Python threads calling the engine at once get what serial calls get."""
import os
import threading

import nettrim
import numpy as np
import pytest
from conftest import relu_layer


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(bool(os.environ.get("NETTRIM_SANITIZED")),
                    reason="ASan's quarantine holds freed memory: the resident size says nothing there")
def test_memory_stays_flat_over_a_thousand_solves():
    X, Y, W, b = relu_layer(21, P=300, n_in=20, M=6)
    solver = nettrim.LayerSolver(X, Y, dtype="float64", threads=1)
    for _ in range(50):                           # allocator and caches settle
        solver.solve(eps_rel=0.05, warn=False)
        nettrim.prune_layer(X, Y, threads=1)
    before = rss_bytes()
    for i in range(1000):
        solver.solve(eps_rel=0.02 + 0.01 * (i % 5), warn=False)
        if i % 10 == 0:
            nettrim.prune_layer(X, Y, threads=1)
    grown = rss_bytes() - before
    assert grown < 4 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 1000 solves"


def test_the_same_thread_count_gives_the_same_bits():
    X, Y, W, b = relu_layer(22, P=1500, n_in=50, M=30)
    for threads in (1, 2):
        runs = [nettrim.prune_layer(X, Y, threads=threads) for _ in range(3)]
        for r in runs[1:]:
            assert r.iterations == runs[0].iterations
            assert np.array_equal(r.U, runs[0].U)


def test_python_threads_at_once_get_the_serial_answers():
    problems = [relu_layer(30 + k, P=400, n_in=25, M=8) for k in range(6)]
    serial = [nettrim.prune_layer(X, Y, threads=1).U for X, Y, W, b in problems]
    out = [None] * len(problems)

    def work(k):
        X, Y, W, b = problems[k]
        out[k] = nettrim.prune_layer(X, Y, threads=1).U

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, out):
        assert np.array_equal(a, b)
