"""Memory estimates against the peak RSS of real runs, each measured in a fresh process.

The engine's own figure (``_core.workspace_bytes``, the backend's ``workspace_bytes``) against
a solve on the engine alone, and ``Network.memory_estimate`` (what ``prune_network`` checks
against the memory available, and what ``memory_budget`` sizes the rows by) against
``prune_network`` itself.  Each child measures its peak RSS (VmHWM, reset once its data is
made) above its RSS after the imports (and, for the engine alone, after its data), on 2 threads: the estimate is asked
for 2 threads too.
"""
import json
import os
import subprocess
import sys
import textwrap

import nettrim
import numpy as np
import pytest
from nettrim import _core
from nettrim.network import from_arrays

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the RSS from /proc")

THREADS = 2
PRELUDE = """
import json, resource, warnings
import numpy as np
import nettrim
from nettrim import _core

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def peak():
    # the peak RSS since the last reset_peak() (VmHWM)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

def reset_peak():
    # the peak RSS anew from the RSS now (Linux: 5 to clear_refs), so that what was allocated
    # and freed before (the data's own temporaries) does not count
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
"""


def child(code):
    """Runs ``code`` after PRELUDE in a fresh Python on THREADS threads; its last line of output, as JSON."""
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=str(THREADS))
    env.pop("NETTRIM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("P, N, M, dtype", [(20000, 401, 300, "float32"),    # the P x M buffers
                                            (2000, 3001, 100, "float64")])   # the set-up (P < N)
def test_engine_workspace_is_the_peak_of_a_solve(P, N, M, dtype):
    measured = child(f"""
        P, N, M, dtype = {P}, {N}, {M}, {dtype!r}
        rng = np.random.default_rng(0)
        X = rng.standard_normal((P, N), dtype=dtype)
        X[:, -1] = 1
        W = rng.standard_normal((N, M), dtype=dtype) / np.sqrt(N)
        Y = np.empty((P, M), dtype)
        for p in range(0, P, 500):        # (in blocks: a whole product's BLAS buffers peak higher)
            np.matmul(X[p:p + 500], W, out=Y[p:p + 500])
        np.maximum(Y, 0, out=Y)
        base = rss()
        reset_peak()
        s = _core.Settings()
        s.bias_row, s.max_iter, s.threads = N - 1, 20, {THREADS}
        engine = (_core.SolverFloat32 if dtype == "float32" else _core.SolverFloat64)("cpu")
        engine.setup(X, s)
        engine.update_target(Y)
        engine.update_eps([0.1 * float(np.linalg.norm(Y))])
        engine.solve()
        print(json.dumps(peak() - base))
    """)
    estimate = _core.workspace_bytes(P, N, M, False, dtype)
    ratio = estimate / measured
    assert 0.75 <= ratio <= 1.25, f"workspace_bytes {estimate >> 20} MiB, measured {measured >> 20} MiB ({ratio:.2f})"


def test_network_estimate_is_the_peak_of_prune_network():
    # One ReLU layer of 400 inputs and 300 outputs on 20000 samples: the solve, its set-up and
    # the check of the returned weights are each a few hundred MiB.
    P, n_in, M = 20000, 400, 300
    measured = child(f"""
        from nettrim.network import from_arrays
        base = rss()
        reset_peak()
        rng = np.random.default_rng(0)
        X = rng.standard_normal(({P}, {n_in}), dtype=np.float32)
        W = rng.standard_normal(({n_in}, {M}), dtype=np.float32) / np.sqrt({n_in})
        net = from_arrays([W], [np.full({M}, 0.1, np.float32)], last_linear=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nettrim.prune_network(net, X, max_iter=30, refit=False, final_refit=False, threads={THREADS})
        print(json.dumps(peak() - base))
    """)
    net = from_arrays([np.zeros((n_in, M), np.float32)], [np.zeros(M, np.float32)], last_linear=False)
    estimate = net.memory_estimate(P, refit=False, threads=THREADS)["total"]
    ratio = estimate / measured
    assert measured > 200 << 20
    assert 0.75 <= ratio <= 1.25, f"memory_estimate {estimate >> 20} MiB, measured {measured >> 20} MiB ({ratio:.2f})"


def test_the_estimate_is_the_engines():
    # Inputs many, outputs few, no re-fit: the solve is the layer's largest moment.
    net = from_arrays([np.zeros((1000, 100), np.float32)], [np.zeros(100, np.float32)], last_linear=False)
    P, N, M = 10000, 1001, 100

    def layer(**kw):
        return net.memory_estimate(P, refit=False, threads=THREADS, **kw)["layers"][0]["bytes"]

    assert layer(engine=True) == layer(engine="cpu") != layer(engine=False)
    assert layer(itemsize=8) > layer(itemsize=4)
    # Its working memory is the backend's own figure, for this layer's sizes.
    assert layer(itemsize=8) - layer(itemsize=4) >= \
        _core.workspace_bytes(P, N, M, False, "float64") - _core.workspace_bytes(P, N, M, False, "float32")
    with pytest.raises(ValueError, match=r"^backend: "):
        net.memory_estimate(P, engine="no-such-backend")
    assert _core.workspace_bytes(P, N, M, True) > _core.workspace_bytes(P, N, M, False)
    with pytest.raises(ValueError, match=r"^dtype: "):
        _core.workspace_bytes(P, N, M, False, "float16")
    with pytest.raises(ValueError, match=r"^workspace_bytes: "):
        _core.workspace_bytes(-1, N, M, False)


def test_available_memory_is_the_machines():
    have = _core.available_memory()
    assert isinstance(have, int) and have >= 0
    with open("/proc/meminfo") as f:
        meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:2]}
    if "MemAvailable" in meminfo:
        assert 0 < have <= meminfo["MemTotal"]
        assert abs(have - meminfo["MemAvailable"]) < 0.1 * meminfo["MemTotal"]
    assert nettrim is not None
