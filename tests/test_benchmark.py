"""``nettrim bench`` and the layer program in standard forms: the table's figures against a direct
cvxpy solve, the cvxpy problem and the CBF file against nettrim's certified optimum, the plot,
the CLI, and Ctrl-C."""
import json
import signal
import subprocess
import sys
import textwrap
import time

import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim import benchmark
from nettrim.adapters.sklearn import from_sklearn

cp = pytest.importorskip("cvxpy")

VARIANTS = [
    dict(mode="relu", constraint="joint"),
    dict(mode="relu", constraint="neuron"),
    dict(mode="linear", constraint="joint"),
    dict(mode="relu", constraint="joint", inactive="relu"),
    dict(mode="relu", constraint="joint", cascade=True),
]


def layer(variant, seed=3, P=120, n_in=10, M=4):
    X, Y, W, b = relu_layer(seed, P=P, n_in=n_in, M=M)
    V = None
    if variant["mode"] == "linear":
        Y = X @ W + b
    if variant.get("cascade"):     # the pruned network's signals, and the trained weights' response as the bound
        X = X + 0.05 * np.random.default_rng(seed).standard_normal(X.shape)
        V = X @ W + b
    return X, Y, V


def certified(X, Y, V, variant, **extra):
    settings = {k: v for k, v in variant.items() if k != "cascade"}
    solver = nettrim.LayerSolver(X, Y, V=V, dtype="float64", gap_tol=1e-3, max_iter=100000, **settings, **extra)
    return solver, solver.solve(eps_rel=0.1)


def same_optimum(value, ours):
    """nettrim's certified objective against another solver's optimum of the same program: never
    below it (feasible), and within the certificate's 1e-3 (and the ball's polish margin) above."""
    assert value * (1 - 1e-6) <= ours.objective <= value * (1 + 1.5e-3), (value, ours.objective)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_the_cvxpy_problem_is_nettrims_program(variant):
    X, Y, V = layer(variant)
    solver, ours = certified(X, Y, V, variant)
    problem, U = solver.to_cvxpy(eps_rel=0.1)
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL and U.shape == ours.U.shape
    same_optimum(problem.value, ours)


def read_cbf(path):
    """A CBF file (the subset write_cbf writes: F and L+ variables, L+ and Q cones) as a cvxpy problem."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    sections, i = {}, 0
    while i < len(lines):
        key = lines[i]
        if key in ("VER", "OBJSENSE"):
            sections[key] = lines[i + 1]
            i += 2
        elif key in ("VAR", "CON"):
            total, count = map(int, lines[i + 1].split())
            sections[key] = (total, [(c.split()[0], int(c.split()[1])) for c in lines[i + 2:i + 2 + count]])
            i += 2 + count
        else:
            count = int(lines[i + 1])
            sections[key] = [tuple(float(v) for v in row.split()) for row in lines[i + 2:i + 2 + count]]
            i += 2 + count
    assert sections["VER"] == "3" and sections["OBJSENSE"] == "MIN"
    n, var_cones = sections["VAR"]
    rows, con_cones = sections["CON"]
    x = cp.Variable(n)
    c = np.zeros(n)
    for j, v in sections["OBJACOORD"]:
        c[int(j)] = v
    import scipy.sparse as sp
    entries = sections["ACOORD"]
    A = sp.csr_matrix(([v for _, _, v in entries], ([int(r) for r, _, _ in entries], [int(j) for _, j, _ in entries])),
                      shape=(rows, n))
    b = np.zeros(rows)
    for r, v in sections["BCOORD"]:
        b[int(r)] = v
    z = A @ x + b
    constraints, start = [], 0
    for kind, size in var_cones:
        if kind == "L+":
            constraints.append(x[start:start + size] >= 0)
        start += size
    start = 0
    for kind, size in con_cones:
        if kind == "L+":
            constraints.append(z[start:start + size] >= 0)
        else:
            assert kind == "Q"
            constraints.append(cp.SOC(z[start], z[start + 1:start + size]))
        start += size
    return cp.Problem(cp.Minimize(c @ x), constraints)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_the_cbf_file_is_nettrims_program(variant, tmp_path):
    X, Y, V = layer(variant, P=60, n_in=6, M=3)
    solver, ours = certified(X, Y, V, variant)
    sizes = solver.write_cbf(tmp_path / "layer.cbf", eps_rel=0.1)
    assert sizes["variables"] >= 2 * ours.U.size
    problem = read_cbf(tmp_path / "layer.cbf")
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL
    same_optimum(problem.value, ours)


def test_write_cbf_refuses_what_it_does_not_write(tmp_path):
    X, Y, V = layer(VARIANTS[0])
    with pytest.raises(nettrim.InvalidArgument, match="penalty"):
        nettrim.LayerSolver(X, Y, penalty="group").write_cbf(tmp_path / "g.cbf")
    with pytest.raises(nettrim.InvalidArgument, match="compressed"):
        nettrim.LayerSolver(X, Y, mode="linear", form="compressed").to_cvxpy()


def test_the_table_agrees_with_a_direct_solve_and_the_plot_is_written(tmp_path):
    X, Y, W, b = relu_layer(5, P=150, n_in=12, M=5)
    report = benchmark.bench_layer(X, W=W, b=b, name="small", eps_rel=0.1, time_limit=30, trace=True, methods=True)
    rows = {r.solver: r for r in report.rows}
    assert {"nettrim float32", "nettrim float64", "nettrim certified", "reference", "CLARABEL", "SCS"} <= set(rows)
    problem, _ = nettrim.LayerSolver(X, W=W, b=b, dtype="float64").to_cvxpy(eps_rel=0.1)
    problem.solve(solver=cp.CLARABEL)
    assert rows["CLARABEL"].objective == pytest.approx(problem.value, rel=1e-6)
    for r in report.rows:
        assert r.feasible, r
        assert r.objective <= problem.value * (1 + 2e-3) and r.gap_to_best <= 2e-3
    assert rows["nettrim certified"].certified_gap <= benchmark.CERTIFIED_GAP
    assert any("OSQP" in line for line in report.skipped)
    assert [m.method for m in report.methods][:2] == ["nettrim (l1 solution)", "nettrim"]
    assert len({m.nnz for m in report.methods if m.method != "wanda"}) == 1    # (Wanda keeps per output)
    assert "CLARABEL" in report.table() and "nettrim certified" in report.table()
    report.plot(tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(rows["nettrim float64"].trace) >= 2


def test_nettrim_bench_on_a_model_file(digits_mlp, tmp_path):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "X.npy", Xtr[:300].astype(np.float32))
    out = subprocess.run([sys.executable, "-m", "nettrim.cli", "bench", str(tmp_path / "model.npz"), "--calib",
                          str(tmp_path / "X.npy"), "--layer", "dense1", "--eps-rel", "0.05,0.1", "--solvers",
                          "nettrim float64,CLARABEL,OSQP", "--plot", str(tmp_path / "b.png"), "--json",
                          str(tmp_path / "b.json"), "--time-limit", "60"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("dense1: 129 inputs (bias included) x 300 samples x 64 outputs") == 2
    assert "skipped: OSQP" in out.stdout
    assert (tmp_path / "b-eps0.05.png").stat().st_size > 1000 and (tmp_path / "b-eps0.1.png").stat().st_size > 1000
    tables = json.loads((tmp_path / "b.json").read_text())
    rows = {r["solver"]: r for r in tables[1]["rows"]}
    assert abs(rows["nettrim float64"]["objective"] / rows["CLARABEL"]["objective"] - 1) <= 2e-3


@pytest.mark.parametrize("args, match", [
    (["--solvers", "gurobi"], "--solvers: 'gurobi' is not one of"),
    (["--layer", "dense9"], "--layer: 'dense9' is not one of"),
    (["--eps-rel", "0"], "--eps-rel"),
])
def test_nettrim_bench_bad_input_is_one_line(digits_mlp, tmp_path, args, match):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "X.npy", Xtr[:50].astype(np.float32))
    base = {"--layer": "dense1"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = [sys.executable, "-m", "nettrim.cli", "bench", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "X.npy")]
    for flag, value in base.items():
        argv += [flag, value]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and match in out.stderr, out.stderr


def test_ctrl_c_stops_the_solver_under_way_and_keeps_the_table():
    script = textwrap.dedent("""
        import signal, sys, numpy as np, nettrim
        from nettrim import benchmark
        signal.signal(signal.SIGINT, signal.default_int_handler)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((4000, 300)); W = rng.standard_normal((300, 200)) / 17
        report = benchmark.bench_layer(X, W=W, eps_rel=0.01, time_limit=600, solvers=["nettrim float64", "reference"],
                                       progress=lambda m: print(m, file=sys.stderr, flush=True))
        print(report.table())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("reference: solving"):
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "nettrim float64" in out and "interrupted" in out
