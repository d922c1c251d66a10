"""The parallel scheme on other processes: a real Dask LocalCluster on loopback (worker
processes), a ProcessPoolExecutor, neuron blocks and the memory budget."""
import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
import time
import warnings

import nettrim
import numpy as np
import pytest
from nettrim.adapters.sklearn import from_sklearn
from nettrim.methods.masks import most_kept

distributed = pytest.importorskip("distributed")

# One engine thread everywhere: the same arithmetic in this process and in the workers, so
# that results can be compared bit for bit.
SETTINGS = dict(scheme="parallel", eps_rel=0.05, threads=1)


@pytest.fixture(scope="module")
def client():
    from nettrim.distributed import connect, disconnect
    c = connect("local", workers=2)
    yield c
    disconnect(c)


@pytest.fixture(scope="module")
def mlp(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    return from_sklearn(clf), Xtr[:800]


def same_weights(a, b):
    return all(np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
               for la, lb in zip(a.layers, b.layers))


def test_dask_gives_the_in_process_weights_bit_for_bit(client, mlp):
    net, X = mlp
    local, r_local = nettrim.prune_network(net, X, **SETTINGS)
    remote, r_remote = nettrim.prune_network(net, X, executor=client, **SETTINGS)
    assert same_weights(local, remote)
    assert [r.nnz for r in r_local.layers] == [r.nnz for r in r_remote.layers]
    assert all(r.status == "converged" for r in r_remote.layers)


def test_neuron_blocks_on_dask_match_blocks_in_process_and_stay_feasible(client, mlp):
    net, X = mlp
    kw = dict(SETTINGS, block_outputs=24)
    local, _ = nettrim.prune_network(net, X, **kw)
    remote, report = nettrim.prune_network(net, X, executor=client, **kw)
    assert same_weights(local, remote)
    # The blocks' tolerances add up to the layer's: the layer's own constraint holds, and its
    # output error (the relu re-fit's promise; its inactive outputs may rise) is within eps.
    assert all(r.omega_violation <= 1e-3 for r in report.layers)
    assert all(r.complement_violation <= 1e-3 for r in report.layers if r.kept_inactive)
    assert any(not r.kept_inactive for r in report.layers)
    assert all(r.relative_error <= r.eps_rel * (1 + 1e-3) for r in report.layers)
    whole, whole_report = nettrim.prune_network(net, X, **SETTINGS)
    # A tighter program (each block within its share): not fewer weights than the whole layer's, and not many more.
    for r_block, r_whole in zip(report.layers, whole_report.layers):
        assert r_block.nnz >= 0.9 * r_whole.nnz and r_block.nnz <= 1.5 * r_whole.nnz + 10


def test_per_neuron_blocks_solve_the_same_program(mlp):
    """With one constraint per neuron the blocks are the layer's program split apart: each
    neuron keeps its own tolerance, and the layer's l1 objective agrees to the solver's accuracy."""
    net, X = mlp
    kw = dict(SETTINGS, constraint="neuron", refit=False, final_refit=False)   # the layers' own programs
    whole, rw = nettrim.prune_network(net, X, **kw)
    blocks, rb = nettrim.prune_network(net, X, block_outputs=20, **kw)
    for lw, lb, a, b in zip(whole.layers, blocks.layers, rw.layers, rb.layers):
        assert a.eps == pytest.approx(b.eps, rel=1e-6)
        l1w, l1b = np.abs(lw.weight).sum(), np.abs(lb.weight).sum()
        assert l1b == pytest.approx(l1w, rel=2e-2)


def test_a_worker_killed_mid_run_changes_nothing(mlp):
    from nettrim.distributed import connect, disconnect
    net, X = mlp
    expected, _ = nettrim.prune_network(net, X, **SETTINGS)
    c = connect("local", workers=2)
    killed = []
    try:
        def kill_a_busy_worker():
            deadline = time.time() + 60
            while time.time() < deadline and not killed:
                busy = [w for w, tasks in c.processing().items() if tasks]
                if busy:
                    pid = c.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.005)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # Dask's own warnings about the lost worker
            result, report = nettrim.prune_network(net, X, executor=c, **SETTINGS)
        killer.join(5)
    finally:
        disconnect(c)
    assert killed, "no worker was busy long enough to be killed"
    assert same_weights(expected, result)
    assert all(r.status == "converged" for r in report.layers)


def test_a_process_pool_executor_gives_the_same_weights(mlp):
    net, X = mlp
    expected, _ = nettrim.prune_network(net, X, **SETTINGS)
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        result, _ = nettrim.prune_network(net, X, executor=pool, **SETTINGS)
    assert same_weights(expected, result)


def test_curves_run_on_the_cluster(client, mlp):
    net, X = mlp
    pruned, report = nettrim.prune_network(net, X, scheme="parallel", sparsity=0.8, threads=1, executor=client)
    assert 0.19 <= report.density and pruned.nnz() <= most_kept(net.size(), 0.2)
    assert report.allocation == "curves"


def test_a_bad_scheduler_address_is_one_clear_error():
    from nettrim.distributed import connect
    with pytest.raises(nettrim.InvalidArgument, match=r"^scheduler: could not connect to 'tcp://127.0.0.1:9'"):
        connect("tcp://127.0.0.1:9", timeout=2)


def test_cli_bad_scheduler_is_one_line(tmp_path, mlp):
    import subprocess
    import sys
    net, X = mlp
    model, calib = tmp_path / "m.npz", tmp_path / "x.npy"
    net.save_npz(model)
    np.save(calib, X[:100])
    run = subprocess.run([sys.executable, "-m", "nettrim.cli", "prune", str(model), "--calib", str(calib),
                          "-o", str(tmp_path / "out.npz"), "--scheme", "parallel", "--scheduler",
                          "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nettrim: error: --scheduler: could not connect"), run.stderr


def test_block_and_budget_arguments_are_checked(mlp):
    net, X = mlp
    with pytest.raises(nettrim.InvalidArgument, match="^block_outputs: .*parallel"):
        nettrim.prune_network(net, X, scheme="cascade", block_outputs=8)
    with pytest.raises(nettrim.InvalidArgumentType, match="^block_outputs"):
        nettrim.prune_network(net, X, scheme="parallel", block_outputs=2.5)
    for bad in ("lots", "-1GB", 0, True):
        with pytest.raises(nettrim.InvalidArgument, match="^memory_budget"):
            nettrim.prune_network(net, X, memory_budget=bad)


def test_memory_budget_chooses_the_rows_before_anything_is_allocated(mlp):
    net, X = mlp
    options = nettrim.PruneOptions.checked(**SETTINGS)        # (the run's estimate: its threads, refit)

    def need(rows):
        return options.estimate(net, len(X), max_samples=rows, max_dense=rows)["total"]
    budget = (need(1) + need(len(X))) // 2      # (what does not depend on the rows is most of it here)
    pruned, report = nettrim.prune_network(net, X, memory_budget=budget, **SETTINGS)
    assert report.rows is not None and report.rows < len(X)
    assert all(r.samples == report.rows for r in report.layers)
    assert need(report.rows) <= budget < need(report.rows + 1)
    assert "rows" in report.memory and str(report.rows) in report.summary()
    again, _ = nettrim.prune_network(net, X, memory_budget=budget, **SETTINGS)
    assert same_weights(pruned, again)                # the subset is seeded
    enough, report = nettrim.prune_network(net, X, memory_budget="64GiB", **SETTINGS)
    assert report.rows is None and all(r.samples == len(X) for r in report.layers)
