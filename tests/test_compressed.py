"""The linear program from its samples' sums (form="compressed"): the same program as the rows,
by the optimum, the returned matrix and its reported figures; the streaming sums; the choice
prune_layer and the network schemes make; and what a compressed solver refuses."""
import warnings

import nettrim
import numpy as np
import pytest
from conftest import relu_layer
from nettrim import LayerSolver, SampleStatistics
from nettrim.adapters.sklearn import from_sklearn
from nettrim.solver import COMPRESS_RATIO

cp = pytest.importorskip("cvxpy")

TIGHT = dict(tol=1e-6, dual_tol=1e-5, max_iter=50000)


def linear_layer(seed, P=2000, n_in=15, M=4, noise=0.2):
    """Gaussian inputs, a sparse teacher with a bias, noise: Y = X W + b + noise (no ReLU)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, n_in))
    W = rng.standard_normal((n_in, M)) * (rng.random((n_in, M)) < 0.4)
    b = rng.standard_normal(M)
    return X, X @ W + b + noise * rng.standard_normal((P, M)), W, b


def rank_deficient(X):
    """X with a duplicated column and a zero column: X^T X singular."""
    X = X.copy()
    X[:, 3] = X[:, 1]
    X[:, 7] = 0.0
    return X


def clarabel_optimum(X, Y, eps, constraint):
    Xs = np.hstack([X, np.ones((len(X), 1))])
    U = cp.Variable((Xs.shape[1], Y.shape[1]))
    R = Xs @ U - Y
    cons = [cp.norm(R, "fro") <= eps[0]] if constraint == "joint" else [
        cp.norm(R[:, m]) <= eps[m] for m in range(Y.shape[1])]
    prob = cp.Problem(cp.Minimize(cp.sum(cp.abs(U))), cons)
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == cp.OPTIMAL
    return prob.value


def rows_error(X, Y, U):
    return float(np.linalg.norm(np.hstack([X, np.ones((len(X), 1))]) @ U - Y))


@pytest.mark.parametrize("shape", ["random", "rank_deficient", "few_samples"])
@pytest.mark.parametrize("constraint", ["joint", "neuron"])
def test_same_program_as_the_rows(shape, constraint):
    X, Y, W, b = linear_layer(1, P=300 if shape != "few_samples" else 12)
    if shape == "rank_deficient":
        X = rank_deficient(X)
    # (the rank-deficient layer's floor, the error of its least-squares fit, is 0.30 of an output)
    rel = {"random": 0.2, "rank_deficient": 0.4, "few_samples": 0.05}[shape]
    rows = nettrim.prune_layer(X, Y, eps_rel=rel, mode="linear", constraint=constraint, dtype="float64",
                               form="rows", **TIGHT)
    packed = nettrim.prune_layer(X, Y, eps_rel=rel, mode="linear", constraint=constraint, dtype="float64",
                                 form="compressed", **TIGHT)
    assert rows.form == "rows" and packed.form == "compressed"
    assert rows.converged and packed.converged
    np.testing.assert_allclose(packed.eps, rows.eps, rtol=1e-12)
    opt = clarabel_optimum(X, Y, rows.eps, constraint)
    for r in (rows, packed):
        assert abs(r.objective - opt) <= 1e-4 * opt
    # The reported figures are those of the returned matrix, on the rows, in float64.
    err = rows_error(X, Y, packed.U)
    assert packed.relative_error == pytest.approx(err / np.linalg.norm(Y), rel=1e-9, abs=1e-12)
    assert err <= np.linalg.norm(packed.eps) * (1 + 1e-6) + 1e-12
    assert packed.omega_violation <= 1e-6 and packed.complement_violation == 0
    if shape == "random":     # (a unique optimum: the same matrix)
        np.testing.assert_allclose(packed.U, rows.U, atol=1e-4 * np.abs(rows.U).max())


def test_float32_meets_the_program_on_the_rows():
    X, Y, _, _ = linear_layer(2, P=5000, n_in=40, M=8)
    r = nettrim.prune_layer(X.astype(np.float32), Y.astype(np.float32), eps_rel=0.2, mode="linear")
    assert r.form == "compressed" and r.converged
    err = rows_error(X, Y, r.U.astype(np.float64))
    assert err <= np.linalg.norm(r.eps) * (1 + 1e-3)
    assert r.relative_error == pytest.approx(err / np.linalg.norm(Y), rel=1e-5)


def test_the_sums_stream_bit_identically_and_match_float64_products():
    X, Y, _, _ = linear_layer(3, P=5003, n_in=9, M=3)
    one = SampleStatistics.from_batches([(X, Y)])
    for size in (1, 100, 2048, 4999):
        many = SampleStatistics.from_batches((X[i:i + size], Y[i:i + size]) for i in range(0, len(X), size))
        assert np.array_equal(many.gram, one.gram) and np.array_equal(many.cross, one.cross)
        assert np.array_equal(many.target_norm2, one.target_norm2)
        assert many.samples == 5003
    Xs = np.hstack([X, np.ones((len(X), 1))])
    np.testing.assert_allclose(one.gram, Xs.T @ Xs, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(one.cross, Xs.T @ Y, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(one.target_norm2, (Y ** 2).sum(0), rtol=1e-12)


def test_from_batches_is_the_compressed_solver_of_the_same_rows():
    X, Y, W, b = linear_layer(4, P=3000, n_in=20, M=5)
    batches = ((X[i:i + 700], Y[i:i + 700]) for i in range(0, 3000, 700))
    streamed = LayerSolver.from_batches(batches, W=W, b=b, dtype="float64")
    whole = LayerSolver(X, Y, mode="linear", dtype="float64", form="compressed")
    assert streamed.shape == whole.shape == (3000, 21, 5)
    a, c = streamed.solve(eps_rel=0.15), whole.solve(eps_rel=0.15)
    assert a.objective == pytest.approx(c.objective, rel=1e-9)
    streamed.warm_start("W")      # (the trained weights given)
    assert streamed.solve(eps_rel=0.15).converged
    # errors2 from the sums is the rows' error, with an uncertainty far below it here.
    err2, unc = streamed.statistics.errors2(a.U)
    rows = np.hstack([X, np.ones((3000, 1))]) @ a.U - Y
    np.testing.assert_allclose(err2, (rows ** 2).sum(0), rtol=1e-9)
    assert np.all(unc < 1e-9 * err2)


def test_eps_below_the_floor_names_eps_and_the_floor():
    X, Y, _, _ = linear_layer(5, P=1000, noise=1.0)
    solver = LayerSolver(X, Y, mode="linear", form="compressed")
    lstsq = np.linalg.lstsq(np.hstack([X, np.ones((1000, 1))]), Y, rcond=None)[0]
    floor = rows_error(X, Y, lstsq)
    assert np.linalg.norm(solver.floor) == pytest.approx(floor, rel=1e-6)
    with pytest.raises(nettrim.InvalidArgument, match=r"eps_rel: 0\.001 is below the floor.*least-squares"):
        solver.solve(eps_rel=0.001)
    with pytest.raises(nettrim.InvalidArgument, match=r"eps: .* is below the floor"):
        solver.solve(eps=0.5 * floor)
    per_neuron = LayerSolver(X, Y, mode="linear", form="compressed", constraint="neuron")
    with pytest.raises(nettrim.InvalidArgument, match=r"below the floor \(output 0\)"):
        per_neuron.solve(eps=0.5 * per_neuron.floor)
    assert solver.solve(eps=1.01 * floor).converged


def test_an_error_lost_to_cancellation_is_said():
    # An exact fit (floor 0) of large outputs at an eps far below what the sums resolve.
    X, _, W, _ = linear_layer(6, P=4000, n_in=10, M=2)
    Y = X @ W + 1e4
    solver = LayerSolver(X, Y, mode="linear", form="compressed", dtype="float64", max_iter=200)
    with pytest.warns(nettrim.NumericalWarning, match="compressed samples"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
            r = solver.solve(eps_rel=1e-9)
    assert not r.error_resolved
    assert solver.solve(eps_rel=0.1).error_resolved


def test_prune_layer_compresses_the_linear_program_with_many_samples_only():
    X, Y, W, b = linear_layer(7, P=400, n_in=20, M=3)
    assert nettrim.prune_layer(X, Y, mode="linear", eps_rel=0.2).form == "compressed"        # 400 >= 2 x 21
    few = int(COMPRESS_RATIO * 21) - 1
    assert nettrim.prune_layer(X[:few], Y[:few], mode="linear", eps_rel=0.2).form == "rows"
    Xr, Yr, _, _ = relu_layer(1, P=400, n_in=20, M=3)
    assert nettrim.prune_layer(Xr, Yr).form == "rows"                           # the ReLU program keeps its rows
    with pytest.raises(nettrim.InvalidArgument, match="form: 'compressed' holds the linear program only"):
        nettrim.prune_layer(Xr, Yr, form="compressed")


def test_a_network_reports_its_compressed_layer(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    for scheme in ("parallel", "cascade"):
        net, report = nettrim.prune_network(from_sklearn(clf), Xtr[:600], eps_rel=0.1, scheme=scheme)
        forms = {r.name: r.form for r in report.layers}
        assert forms == {"dense0": "rows", "dense1": "rows", "dense2": "compressed"}   # 600 >= 2 x 65 for the logits
        assert "solved compressed" in str(report)


def test_what_a_compressed_solver_refuses():
    X, Y, W, b = linear_layer(8, P=500)
    solver = LayerSolver(X, Y, mode="linear", form="compressed")
    with pytest.raises(nettrim.InvalidArgument, match="update_target"):
        solver.update_target(Y)
    with pytest.raises(nettrim.InvalidArgument, match="mode"):
        solver.update_settings(mode="relu")
    with pytest.raises(nettrim.InvalidArgument, match="V"):
        solver.update_bound(np.zeros_like(Y))
    with pytest.raises(nettrim.InvalidArgument, match="form"):
        LayerSolver(X, Y, mode="linear", form="sums")


@pytest.mark.parametrize("batches, match", [
    ([], "batches: expected at least one"),
    ([(np.ones((4, 3)), np.ones((4, 2))), (np.ones((4, 5)), np.ones((4, 2)))], r"X: expected 3 columns.*\(batch 1\)"),
    ([(np.ones((4, 3)), np.ones((4, 2))), (np.ones((4, 3)), np.ones((5, 2)))], r"Y: expected 4 rows.*\(batch 1\)"),
    ([(np.ones((4, 3)), np.ones((4, 2))), (np.ones((4, 3), np.float32), np.ones((4, 2)))],
     r"dtypes of the first batch.*\(batch 1\)"),
    ([(np.ones((4, 3)), np.ones((4, 2))), (np.full((4, 3), np.nan), np.ones((4, 2)))], r"X: expected finite.*\(batch 1\)"),
    ([(np.ones((4, 3)), np.ones((4, 2), np.int64))], r"Y: expected a floating dtype.*\(batch 0\)"),
    ([np.ones((4, 3))], "batch 0: expected an \\(X, Y\\) pair"),
    (5, "batches: expected an iterable"),
])
def test_bad_batches_are_named(batches, match):
    with pytest.raises((nettrim.InvalidArgument, nettrim.InvalidArgumentType), match=match):
        LayerSolver.from_batches(batches)
