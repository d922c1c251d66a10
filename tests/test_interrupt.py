"""Long solves release the GIL and answer Ctrl-C promptly."""
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
import time


import nettrim

from conftest import relu_layer


def test_gil_is_released_during_a_solve():
    X, Y, W, b = relu_layer(20, P=3000, n_in=150, M=60)
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        res = nettrim.prune_layer(X, Y, dtype="float64", threads=1, max_iter=300, tol=0)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    assert res.iterations == 300 and elapsed > 0.3
    during = [x for x in ticks if start < x < start + elapsed]
    # With the GIL held, the counting thread would not run at all during the solve.
    assert len(during) >= 0.3 * elapsed / 0.005


def test_ctrl_c_interrupts_a_long_solve_within_a_second():
    script = textwrap.dedent("""
        import sys, time, numpy as np, nettrim
        rng = np.random.default_rng(0)
        X = rng.standard_normal((20000, 400)); W = rng.standard_normal((400, 200)) / 20
        Y = np.maximum(X @ W, 0)
        print("ready", flush=True)
        t = time.perf_counter()
        try:
            nettrim.prune_layer(X, Y, dtype="float64", max_iter=100000, tol=0)
        except KeyboardInterrupt:
            print("interrupted %.3f" % (time.perf_counter() - t), flush=True)
            sys.exit(0)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # well inside the solve
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    latency = time.perf_counter() - sent
    assert out.startswith("interrupted"), out
    assert proc.returncode == 0
    assert latency < 1.0, latency
