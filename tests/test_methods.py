"""The other pruning methods (nettrim.methods) on small layers with known answers, and
under prune_network at matched nonzeros."""
import warnings

import nettrim
import numpy as np
import pytest
from nettrim import _core
from nettrim.adapters.sklearn import from_sklearn
from nettrim.methods import apoz, lobs, magnitude, n_of_m, refit_on_support, sparsegpt, wanda
from nettrim.methods.masks import most_kept
from nettrim.reference import constrained_lsq
from nettrim.structured import shrink


def layer(seed, P=400, n_in=12, M=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, n_in)) * rng.uniform(0.2, 3.0, n_in)   # inputs of different scales
    W = rng.standard_normal((n_in, M))
    b = rng.standard_normal(M)
    return X.astype(np.float32), W.astype(np.float32), b.astype(np.float32)


def test_magnitude_keeps_exactly_the_largest_weights():
    _, W, b = layer(0)
    res = magnitude(None, W, b, sparsity=0.7)
    Wp, bp = res.weight, res.bias
    keep = W.size - round(0.7 * W.size)
    assert np.count_nonzero(Wp) == keep
    assert np.abs(W[Wp != 0]).min() > np.abs(W[Wp == 0]).max()
    assert np.array_equal(Wp[Wp != 0], W[Wp != 0]) and bp is b


def test_wanda_masks_each_output_by_weight_times_input_norm():
    X, W, b = layer(1)
    Wp = wanda(X, W, b, sparsity=0.5).weight
    score = np.abs(W) * np.linalg.norm(X.astype(np.float64), axis=0)[:, None]
    for j in range(W.shape[1]):
        expected = np.sort(np.argsort(-score[:, j])[:6])
        assert np.array_equal(np.flatnonzero(Wp[:, j]), expected)
    # the weights are not updated
    assert np.array_equal(Wp[Wp != 0], W[Wp != 0])


@pytest.mark.parametrize("prune", [
    lambda X, W, b: magnitude(X, W, b, nm=(2, 4)),
    lambda X, W, b: wanda(X, W, b, nm=(2, 4)),
    lambda X, W, b: sparsegpt(X, W, b, nm=(2, 4)),
    lambda X, W, b: sparsegpt(X, W, b, nm="1:3"),
])
def test_n_of_m_patterns_are_exact(prune):
    X, W, b = layer(2, n_in=24, M=7)
    Wp = prune(X, W, b).weight
    for m, n in ((4, 2), (3, 1)):
        if np.count_nonzero(Wp) == W.size * n // m:
            counts = (Wp.reshape(-1, m, W.shape[1]) != 0).sum(axis=1)
            assert np.all(counts == n)
            return
    pytest.fail(f"{np.count_nonzero(Wp)} nonzeros: not an N:M pattern")


def test_n_of_m_mask_with_a_short_last_group():
    scores = np.arange(10, dtype=float)[:, None] * np.ones((1, 3))
    mask = n_of_m(scores, 2, 4)
    assert mask.sum(axis=0).tolist() == [6, 6, 6]          # 2 + 2 + the last group's 2 of 2
    assert mask[:, 0].tolist() == [False, False, True, True, False, False, True, True, True, True]


def _obs_by_least_squares(X, w0, b0, q, with_bias):
    """Exact OBS for pruning weight q: refit the others to reproduce X w0 (+ b0)."""
    keep = [i for i in range(X.shape[1]) if i != q]
    A = X[:, keep].astype(np.float64)
    target = X.astype(np.float64) @ w0 + (b0 if with_bias else 0)
    if with_bias:
        A = np.hstack([A, np.ones((len(A), 1))])
    sol = np.linalg.lstsq(A, target, rcond=None)[0]
    w = np.zeros_like(w0, dtype=np.float64)
    w[keep] = sol[:len(keep)]
    return w, (sol[-1] if with_bias else b0)


def test_lobs_pruning_one_weight_is_exact_obs():
    X, W, b = layer(3, M=1)
    res = lobs(X, W, b, sparsity=1 / W.size, damp=0.0)
    Wp, bp = res.weight, res.bias
    q = int(np.flatnonzero(Wp[:, 0] == 0)[0])
    # the pruned weight is the least sensitive one
    Hinv = np.linalg.inv(np.hstack([X, np.ones((len(X), 1))]).astype(np.float64).T
                         @ np.hstack([X, np.ones((len(X), 1))]) / len(X))
    assert q == int(np.argmin(W[:, 0].astype(np.float64) ** 2 / np.diag(Hinv)[:-1]))
    w, bias = _obs_by_least_squares(X, W[:, 0].astype(np.float64), float(b[0]), q, with_bias=True)
    np.testing.assert_allclose(Wp[:, 0], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bp[0], bias, rtol=1e-4, atol=1e-5)


def test_sparsegpt_pruning_the_first_weight_is_exact_obs():
    X, W, b = layer(4, M=1)
    W[0, 0] = 1e-3          # the smallest score: pruned, and the first column visited
    res = sparsegpt(X, W, b, sparsity=1 / W.size, damp=0.0)
    Wp, bp = res.weight, res.bias
    assert np.flatnonzero(Wp[:, 0] == 0).tolist() == [0]
    w, _ = _obs_by_least_squares(X, W[:, 0].astype(np.float64), 0.0, 0, with_bias=False)
    np.testing.assert_allclose(Wp[:, 0], w, rtol=1e-4, atol=1e-5)
    assert bp is b


def test_sparsegpt_later_weights_only_move_forward():
    """Pruning weight q updates only the inputs after q (the ones before are already fixed):
    the result is the least-squares refit over inputs q+1.. of what inputs q.. produced."""
    X, W, b = layer(5, M=1)
    q = 4
    W[q, 0] = 1e-3
    Wp = sparsegpt(X, W, b, sparsity=1 / W.size, damp=0.0).weight
    assert np.flatnonzero(Wp[:, 0] == 0).tolist() == [q]
    np.testing.assert_array_equal(Wp[:q, 0], W[:q, 0])
    rest = np.linalg.lstsq(X[:, q + 1:].astype(np.float64), X[:, q:].astype(np.float64) @ W[q:, 0], rcond=None)[0]
    np.testing.assert_allclose(Wp[q + 1:, 0], rest, rtol=1e-4, atol=1e-5)


def test_obs_methods_handle_dead_inputs_and_singular_hessians():
    X, W, b = layer(6, n_in=10)
    X[:, 3] = 0                 # a dead input
    X[:, 7] = X[:, 6]           # two identical inputs: X^T X is singular
    for prune in (lobs, sparsegpt):
        res = prune(X, W, b, sparsity=0.5)
        Wp = res.weight
        assert np.all(np.isfinite(Wp)) and np.all(np.isfinite(res.bias)) and np.all(Wp[3] == 0)
        assert np.count_nonzero(Wp) == W.size // 2


def test_refit_on_support_is_least_squares_for_a_linear_layer():
    X, W, b = layer(7)
    Y = X @ W + b
    mask = np.random.default_rng(0).random(W.shape) < 0.5
    Wp, bp = refit_on_support(X, Y, mask, relu=False)
    for j in range(W.shape[1]):
        A = np.hstack([X[:, mask[:, j]], np.ones((len(X), 1))]).astype(np.float64)
        sol = np.linalg.lstsq(A, Y[:, j].astype(np.float64), rcond=None)[0]
        np.testing.assert_allclose(Wp[mask[:, j], j], sol[:-1], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bp[j], sol[-1], rtol=1e-4, atol=1e-4)
    assert np.all(Wp[~mask] == 0)


def test_refit_on_support_keeps_inactive_relus_inactive():
    """Feasible, and near the constrained least squares solved by cvxpy (Clarabel)."""
    cp = pytest.importorskip("cvxpy")
    X, W, b = layer(8, P=300)
    Y = np.maximum(X @ W + b, 0)
    mask = np.random.default_rng(1).random(W.shape) < 0.4
    Wp, bp = refit_on_support(X, Y, mask, relu=True)
    Z = X @ Wp + bp
    assert np.all(Z[Y == 0] <= 1e-4)
    for j in range(W.shape[1]):
        A = np.hstack([X[:, mask[:, j]], np.ones((len(X), 1))]).astype(np.float64)
        on = Y[:, j] > 0
        u = cp.Variable(A.shape[1])
        cp.Problem(cp.Minimize(cp.sum_squares(A[on] @ u - Y[on, j])), [A[~on] @ u <= 0]).solve(solver=cp.CLARABEL)
        best = np.linalg.norm(A[on] @ u.value - Y[on, j])
        ours = np.linalg.norm(Z[on, j] - Y[on, j])
        # the active-set heuristic pins violated rows to their bound: measured 1.10x-1.29x the optimum
        assert best <= ours <= 1.35 * best + 1e-6, (j, ours, best)
    assert np.all(Wp[~mask] == 0)


def test_constrained_lsq_reaches_the_clarabel_optimum_from_a_feasible_start():
    """The active-set re-fit: the optimum of min ||A u - y|| s.t. B u <= v (Clarabel), every
    bound met, and a start that exceeds a bound only relaxes that bound to the start's value."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(3)
    for trial in range(6):
        n = 8 + 3 * trial
        A, y = rng.standard_normal((5 * n, n)), rng.standard_normal(5 * n)
        B, v = rng.standard_normal((20 * n, n)), np.abs(rng.standard_normal(20 * n))
        u0 = np.zeros(n)
        u, iterations, converged = constrained_lsq(A, y, B, v, u0, max_iter=1000)
        x = cp.Variable(n)
        cp.Problem(cp.Minimize(cp.sum_squares(A @ x - y)), [B @ x <= v]).solve(solver=cp.CLARABEL)
        assert converged and iterations > 1
        assert np.max(B @ u - v) <= 1e-8
        assert np.linalg.norm(A @ u - y) <= np.linalg.norm(A @ x.value - y) * (1 + 1e-7) + 1e-9, trial
    # A start above one bound: that row may stay at the start's value, no higher.
    v_tight = v.copy()
    u_start = rng.standard_normal(n) * 0.01
    v_tight[0] = B[0] @ u_start - 1.0
    v_tight[1:] = np.maximum(v_tight[1:], B[1:] @ u_start)
    u, _, _ = constrained_lsq(A, y, B, v_tight, u_start, max_iter=1000)
    assert B[0] @ u <= B[0] @ u_start + 1e-8 and np.max(B[1:] @ u - v_tight[1:]) <= 1e-8


def test_engine_refit_takes_the_reference_steps():
    """The engine's refit_support against the numpy reference, neuron by neuron: the same
    number of active-set steps and the same weights; a bound V and a bias kept fixed."""
    rng = np.random.default_rng(5)
    P, n, M = 300, 15, 6
    X = rng.standard_normal((P, n))
    Y = np.maximum(X @ rng.standard_normal((n, M)) + 0.3, 0)
    mask = rng.random((n, M)) < 0.6
    V = -np.abs(rng.standard_normal((P, M))) * 0.1
    start_w = np.where(mask, rng.standard_normal((n, M)) * 1e-3, 0)
    for fit_bias, start_b in ((True, np.full(M, -1.0)), (False, np.full(M, 0.2))):
        weights, bias, steps, unconverged = _core.refit_support(X, Y, mask.astype(float), start_w, start_b, V,
                                                                fit_bias, max_iter=500)
        assert unconverged == 0 and min(steps) > 1
        for j in range(M):
            cols, Xs, u0, fixed, on = _one_output(X, Y, mask, start_w, start_b, fit_bias, j)
            u, iterations, converged = constrained_lsq(Xs[on], Y[on, j] - fixed, Xs[~on], V[~on, j] - fixed, u0,
                                                       max_iter=500)
            assert converged and iterations == steps[j], (j, iterations, steps[j])
            _assert_engine_output(weights, bias, mask, cols, u, j, fit_bias, start_b)


def _one_output(X, Y, mask, start_w, start_b, fit_bias, j):
    """Output j's re-fit as the reference takes it: (support, its columns [+ ones], start, fixed bias, Omega)."""
    cols = np.flatnonzero(mask[:, j])
    A = np.hstack([X[:, cols], np.ones((len(X), 1))]) if fit_bias else X[:, cols]
    u0 = np.append(start_w[cols, j], start_b[j]) if fit_bias else start_w[cols, j]
    return cols, A, u0, 0.0 if fit_bias else start_b[j], Y[:, j] > 0


def _assert_engine_output(weights, bias, mask, cols, u, j, fit_bias, start_b):
    """The engine's output j equals the reference's ``u`` on the support, zero off it."""
    np.testing.assert_allclose(weights[cols, j], u[:len(cols)], rtol=1e-7, atol=1e-9)
    assert np.all(weights[~mask[:, j], j] == 0)
    np.testing.assert_allclose(bias[j], u[-1] if fit_bias else start_b[j], rtol=1e-7, atol=1e-9)


def test_refit_in_a_degenerate_corner_is_feasible_and_no_worse_than_its_start():
    """Five bounds tight at the start in four unknowns (a corner where rounding once stepped
    outside and uphill): engine and reference end inside the bounds, no worse than the start."""
    P, n = 120, 6
    p, i = np.arange(P)[:, None], np.arange(n)[None, :]
    X = np.sin(0.37 * ((i + 1) * p) + i)
    cols = [0, 2, 4]
    y = 5.0 + X.sum(1) + np.cos(np.arange(P))
    on = y > 0
    assert (~on).sum() == 5
    Xs = np.hstack([X[:, cols], np.ones((P, 1))])
    start_error = np.linalg.norm(y[on])
    u, _, _ = constrained_lsq(Xs[on], y[on], Xs[~on], np.zeros(5), np.zeros(4), max_iter=100)
    assert np.max(Xs[~on] @ u) <= 1e-8 and np.linalg.norm(Xs[on] @ u - y[on]) <= start_error
    support = np.zeros((n, 1))
    support[cols] = 1
    weights, bias, _, _ = _core.refit_support(np.ascontiguousarray(X), np.ascontiguousarray(np.maximum(y, 0)[:, None]),
                                              support, np.zeros((n, 1)), np.zeros(1), np.zeros((0, 1)), True)
    Z = X @ weights[:, 0] + bias[0]
    assert np.max(Z[~on]) <= 1e-8 and np.linalg.norm(Z[on] - y[on]) <= start_error


def test_constrained_lsq_stopped_early_is_feasible_and_no_worse_than_its_start():
    rng = np.random.default_rng(4)
    A, y = rng.standard_normal((200, 30)), rng.standard_normal(200)
    B, v = rng.standard_normal((600, 30)), np.abs(rng.standard_normal(600))
    start_error = np.linalg.norm(y)
    errors = []
    for limit in (1, 3, 10):
        u, iterations, converged = constrained_lsq(A, y, B, v, np.zeros(30), max_iter=limit)
        assert iterations == limit and not converged
        assert np.max(B @ u - v) <= 1e-8
        errors.append(np.linalg.norm(A @ u - y))
    assert errors[0] < start_error and errors == sorted(errors, reverse=True)


def test_nettrim_refit_errs_no_more_than_the_l1_solution_and_keeps_its_support(digits_mlp):
    """finish(): the bounded re-fit from the solution lowers the error on Omega (here by more
    than 10%), keeps the support and the inactive outputs inactive, so the eps guarantee holds;
    the relu re-fit (the default) lowers the layer's output error below both, within eps too."""
    from nettrim.methods.nettrim import NetTrim
    from nettrim.problem import layer_problems
    clf, Xtr, _, _, _ = digits_mlp
    problem = layer_problems(from_sklearn(clf).layers[0], Xtr.astype(np.float32))[0]
    bounded = NetTrim(refit="bounded")
    solution = bounded.solver(problem).solve(eps=problem.eps(0.3))
    weights, bias = bounded.finish(problem, solution)
    omega = problem.omega
    X = problem.X.astype(np.float64)

    def error(w, b):
        return np.linalg.norm(np.where(omega, X @ w + b - problem.Y, 0))

    def output_error(w, b):
        return np.linalg.norm(np.maximum(X @ w + b, 0) - problem.Y)

    eps = 1.001 * np.linalg.norm(solution.eps)
    assert np.all((weights != 0) <= (solution.weight != 0))
    assert error(weights, bias) < 0.9 * error(solution.weight, solution.bias) <= 0.9 * eps
    Z = X @ weights + bias
    assert np.max(np.where(omega, -np.inf, Z)) <= 1e-4 * np.abs(problem.Y).max()

    relu_w, relu_b = NetTrim().finish(problem, solution)
    assert np.all((relu_w != 0) <= (solution.weight != 0))
    assert output_error(relu_w, relu_b) < 0.95 * output_error(weights, bias)
    assert output_error(relu_w, relu_b) <= output_error(solution.weight, solution.bias) <= eps
    assert np.max(np.where(omega, -np.inf, X @ relu_w + relu_b)) > 0   # some inactive output moved up


def test_relu_refit_takes_the_reference_steps_and_finds_clarabels_minimiser():
    """refit_support(inactive="relu") against the numpy reference (same Newton steps, same
    weights), with the bias fitted and kept fixed, and both against Clarabel's minimiser of
    ||A u - y||^2 + ||max(0, B u)||^2; a start far off is no obstacle (no bounds to meet)."""
    import cvxpy as cp
    from nettrim.reference import relu_lsq
    rng = np.random.default_rng(6)
    P, n, M = 300, 15, 6
    X = rng.standard_normal((P, n))
    Y = np.maximum(X @ rng.standard_normal((n, M)) - 0.3, 0)
    mask = rng.random((n, M)) < 0.6
    start_w = np.where(mask, rng.standard_normal((n, M)), 0)
    V = np.full((P, M), -5.0)   # not used by the relu re-fit
    for fit_bias, start_b in ((True, np.full(M, 1.0)), (False, np.full(M, 0.2))):
        weights, bias, steps, unconverged = _core.refit_support(X, Y, mask.astype(float), start_w, start_b, V,
                                                                fit_bias, inactive="relu")
        assert unconverged == 0 and min(steps) > 1
        for j in range(M):
            cols, A, u0, fixed, on = _one_output(X, Y, mask, start_w, start_b, fit_bias, j)
            u, iterations, converged = relu_lsq(A[on], Y[on, j] - fixed, A[~on], np.full((~on).sum(), -fixed), u0)
            assert converged and iterations == steps[j], (j, iterations, steps[j])
            _assert_engine_output(weights, bias, mask, cols, u, j, fit_bias, start_b)
            x = cp.Variable(len(u))
            cp.Problem(cp.Minimize(cp.sum_squares(A[on] @ x - (Y[on, j] - fixed))
                                   + cp.sum_squares(cp.pos(A[~on] @ x + fixed)))).solve(solver=cp.CLARABEL)
            np.testing.assert_allclose(u, x.value, rtol=1e-5, atol=1e-6)


def test_relu_refit_stopped_early_is_no_worse_than_its_start():
    from nettrim.reference import relu_lsq
    rng = np.random.default_rng(7)
    A, y = rng.standard_normal((200, 30)), rng.standard_normal(200)
    B = rng.standard_normal((600, 30))
    u0 = rng.standard_normal(30)

    def f(u):
        return np.sum((A @ u - y) ** 2) + np.sum(np.maximum(B @ u, 0) ** 2)

    u_end, needed, converged = relu_lsq(A, y, B, np.zeros(600), u0)
    assert converged and needed >= 3
    values = [f(u0)]
    for limit in range(1, needed):
        u, iterations, converged = relu_lsq(A, y, B, np.zeros(600), u0, max_iter=limit)
        assert iterations == limit and not converged
        values.append(f(u))
    values.append(f(u_end))
    assert values == sorted(values, reverse=True) and values[-1] < values[0]


def _planted_mlp(seed=0, dead=(1, 4, 6)):
    rng = np.random.default_rng(seed)
    W1, b1 = rng.standard_normal((10, 8)), np.abs(rng.standard_normal(8))
    b1[list(dead)] = -100.0               # never fire
    W2, b2 = rng.standard_normal((8, 6)), rng.standard_normal(6)
    W3, b3 = rng.standard_normal((6, 3)), rng.standard_normal(3)
    return nettrim.from_arrays([W1, W2, W3], [b1, b2, b3]), rng.standard_normal((500, 10)).astype(np.float32)


def test_apoz_removes_the_planted_dead_neurons_first():
    net, X = _planted_mlp()
    pruned = apoz(net, X, sparsity=0.25)
    gone = np.flatnonzero(~np.any(pruned.layers[0].weight, axis=0))
    assert set(gone) == {1, 4, 6}
    assert np.all(pruned.layers[1].weight[[1, 4, 6]] == 0)
    np.testing.assert_allclose(pruned.forward(X), net.forward(X), atol=1e-5)   # dead neurons: same function


def test_shrink_gives_a_smaller_network_with_the_same_outputs(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    masked, _ = nettrim.prune_network(net, Xtr, method="apoz", sparsity=0.3)
    small, removed = shrink(masked)
    assert sum(removed) > 0
    assert small.layers[0].weight.shape[1] == 128 - removed[0] and small.layers[1].weight.shape == (128 - removed[0],
                                                                                           64 - removed[1])
    np.testing.assert_allclose(small.forward(Xte), masked.forward(Xte), rtol=1e-5, atol=1e-5)


def test_structured_nettrim_removes_whole_neurons(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        masked, _ = nettrim.prune_network(net, Xtr, scheme="parallel", eps_rel=0.1, structured=True)
    zero_rows = [int((~np.any(layer.weight, axis=1)).sum()) for layer in masked.layers]
    assert zero_rows[1] >= 10 and zero_rows[2] >= 5      # measured 41 and 22
    small, removed = shrink(masked)
    assert removed[0] >= zero_rows[1] and removed[1] >= zero_rows[2]
    np.testing.assert_allclose(small.forward(Xte), masked.forward(Xte), rtol=1e-5, atol=1e-5)
    assert np.mean(small.predict(Xte) == yte) >= 0.90


def test_structured_shrink_through_conv_pool_flatten():
    rng = np.random.default_rng(0)
    conv = nettrim.Conv2d(rng.standard_normal((6, 1, 3, 3)), rng.standard_normal(6), relu=True)
    conv.weight[[2, 5]] = 0
    conv.bias[[2, 5]] = -1.0                  # channels 2 and 5 are always zero
    dense = nettrim.Dense(rng.standard_normal((6 * 2 * 2, 4)), rng.standard_normal(4), relu=False)
    net = nettrim.Network([conv, nettrim.MaxPool2d(2), nettrim.Flatten(), dense], input_shape=(1, 6, 6))
    X = rng.standard_normal((20, 1, 6, 6)).astype(np.float32)
    small, removed = shrink(net)
    assert removed == [2, 0] and small.layers[0].weight.shape[0] == 4 and small.layers[1].weight.shape == (16, 4)
    np.testing.assert_allclose(small.forward(X), net.forward(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["magnitude", "wanda", "lobs", "sparsegpt"])
@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_methods_under_prune_network_match_nonzeros(digits_mlp, method, scheme):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    pruned, report = nettrim.prune_network(net, Xtr, scheme=scheme, method=method, sparsity=0.7,
                                           scope="layer")
    shapes = [layer.weight.shape for layer in net.layers]
    if method == "wanda":      # Wanda's comparison group is one output neuron
        expected = [m * most_kept(n, 0.3) for n, m in shapes]
    else:
        expected = [most_kept(n * m, 0.3) for n, m in shapes]
    assert [layer.nnz() for layer in pruned.layers] == expected
    assert report.method == method and [r.nnz for r in report.layers] == [lay.nnz() for lay in pruned.layers]
    # measured (parallel / cascade): magnitude 0.927 / 0.927, Wanda 0.702 / 0.476 (no weight
    # update: its last layer keeps 19 of 64 inputs per class), L-OBS 0.969 / 0.980, SparseGPT 0.980 / 0.982
    floor = {"magnitude": 0.88, "wanda": 0.4, "lobs": 0.93, "sparsegpt": 0.93}[method]
    assert np.mean(pruned.predict(Xte) == yte) >= floor


def test_global_magnitude_and_per_layer_lists(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    pruned, _ = nettrim.prune_network(net, Xtr, method="magnitude", sparsity=0.8)
    assert pruned.nnz() == most_kept(net.size(), 0.2)
    threshold = min(np.abs(layer.weight[layer.weight != 0]).min() for layer in pruned.layers)
    assert all(np.all(np.abs(orig.weight[lay.weight == 0]) <= threshold) for orig, lay in zip(net.layers, pruned.layers))
    pruned, _ = nettrim.prune_network(net, Xtr, method="wanda", sparsity=[0.5, 0.9, 0.0])
    assert [layer.nnz() for layer in pruned.layers[:2]] == [128 * 32, 64 * 12]   # (64 inputs, 6.4 per output)
    # The last layer keeps every weight, re-fitted to the pruned signals (cascade): only the
    # weights of inputs that the pruned layers silenced come out zero.
    features = Xtr.astype(np.float32)
    for step in pruned.steps[:-1]:
        features = step(features)
    silent = ~features.any(axis=0)
    assert np.all(pruned.layers[2].weight[~silent] != 0) and np.all(pruned.layers[2].weight[silent] == 0)


def test_nettrim_n_of_m_and_refit(digits_mlp):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    base = np.mean(net.predict(Xte) == yte)
    pruned, report = nettrim.prune_network(net, Xtr, scheme="cascade", nm="2:4")
    for layer in pruned.layers:
        counts = (layer.weight.reshape(-1, 4, layer.weight.shape[1]) != 0).sum(axis=1)
        assert counts.max() <= 2
    # measured 0.930 (trained 0.933); Wanda 2:4 gets 0.886, magnitude 0.844
    assert np.mean(pruned.predict(Xte) == yte) >= base - 0.02
    # the re-fit undoes the l1 shrinkage without leaving the eps ball
    kw = dict(scheme="cascade", sparsity=0.9, allocation="shared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.TargetWarning)
        plain, _ = nettrim.prune_network(net, Xtr, refit=False, **kw)
        refit, report = nettrim.prune_network(net, Xtr, **kw)
    assert all(r.omega_violation <= 2e-3 for r in report.layers)
    acc_plain, acc_refit = (np.mean(n.predict(Xte) == yte) for n in (plain, refit))
    # measured with one shared eps at 90% removed: 0.878 -> 0.904 (0.585 -> 0.826 with the papers' cascade
    # floor, floor="trained", whose later layers fit worse and gain more): 12 of 450 test images, of which
    # this asks for none (a figure measured on one machine's model is no property)
    assert acc_refit >= acc_plain


def test_methods_on_a_cnn(digits_cnn):
    from nettrim.adapters.torch import from_torch
    model, Xtr, ytr, Xte, yte = digits_cnn
    net = from_torch(model, (1, 8, 8))
    accuracy = {}
    for method in ("sparsegpt", "wanda", "lobs"):
        pruned, _ = nettrim.prune_network(net, Xtr, scheme="cascade", method=method, sparsity=0.5,
                                          scope="layer", max_samples=3000)
        assert 0.49 * net.size() <= pruned.nnz() <= most_kept(net.size(), 0.5)
        accuracy[method] = np.mean(pruned.predict(Xte) == yte)
    # measured: SparseGPT 0.989, L-OBS 0.982, Wanda 0.882 (trained 0.991)
    assert accuracy["sparsegpt"] >= 0.95 and accuracy["lobs"] >= 0.95 and accuracy["wanda"] >= 0.8
    pruned, _ = nettrim.prune_network(net, Xtr, method="sparsegpt", nm="2:4", max_samples=3000)
    assert np.mean(pruned.predict(Xte) == yte) >= 0.9


def test_method_argument_errors(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    cases = [(dict(method="obd", sparsity=0.5), "method: expected one of"),
             (dict(method="wanda"), "needs a target sparsity"),
             (dict(method="lobs", nm="2:4"), "no N:M variant"),
             (dict(method="wanda", nm="2:4", sparsity=0.5), "fixes the sparsity"),
             (dict(method="wanda", nm="4:2"), "0 < N < M"),
             (dict(method="wanda", nm="two"), "nm: expected"),
             (dict(method="magnitude", sparsity=[0.5, 0.5]), "one fraction in [0, 1) per pruned layer"),
             (dict(method="wanda", structured=True, sparsity=0.5), "structured: a Net-Trim option"),
             (dict(method="apoz", sparsity=[0.1, 0.1, 0.1]), "APoZ takes one fraction")]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            nettrim.prune_network(net, Xtr, **kw)
