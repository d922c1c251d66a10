"""The whole-network allocation (nettrim.allocation) on synthetic curves whose optimum is
known by enumeration, and a layer asked for more weights than its l1 solutions keep."""
import itertools

import numpy as np
import pytest
from nettrim.adapters.sklearn import from_sklearn
from nettrim.allocation import LayerCurve, choose, keeps_for, nnz_of
from nettrim.methods.masks import most_kept


def synthetic_curve(index, size, nnz, cost):
    nnz = np.asarray(nnz)
    return LayerCurve(index, f"layer{index}", size, np.geomspace(0.01, 0.5, len(nnz)), nnz, np.asarray(cost, float),
                      [], [])


def random_curves(rng, layers):
    """Curves as measured: nonzeros falling and cost rising along eps, with noise (not convex)."""
    curves = []
    for k in range(layers):
        size = int(rng.integers(200, 600))
        points = int(rng.integers(3, 7))
        nnz = np.sort(rng.choice(np.arange(1, size), points, replace=False))[::-1]
        cost = np.sort(rng.uniform(0, 1, points)) * rng.uniform(0.5, 3)
        curves.append(synthetic_curve(k, size, nnz, cost))
    return curves


def enumerated_optimum(curves, budget):
    """The least summed cost over every choice of one option per layer (-1: dense, cost 0)."""
    best = (np.inf, None)
    for choice in itertools.product(*[[-1] + list(range(len(c.nnz))) for c in curves]):
        if nnz_of(curves, choice) <= budget:
            cost = sum(0.0 if j == -1 else c.cost[j] for c, j in zip(curves, choice))
            best = min(best, (cost, choice), key=lambda t: t[0])
    return best


@pytest.mark.parametrize("seed", range(8))
def test_the_dynamic_program_finds_the_enumerated_optimum(seed):
    rng = np.random.default_rng(seed)
    curves = random_curves(rng, int(rng.integers(2, 5)))
    total = sum(c.size for c in curves)
    for fraction in (0.1, 0.3, 0.6):
        budget = fraction * total
        want, _ = enumerated_optimum(curves, budget)
        chosen = choose(curves, budget, buckets=total)       # one weight per bucket: exact
        if not np.isfinite(want):
            assert chosen is None
            continue
        got = sum(0.0 if j == -1 else c.cost[j] for c, j in zip(curves, chosen))
        assert nnz_of(curves, chosen) <= budget
        assert got == pytest.approx(want, abs=1e-12), (chosen, want)


def test_coarse_buckets_always_fit_the_budget():
    """With fewer buckets than weights the nonzeros are rounded up: the choice still fits, and
    costs no more than the exact optimum of a budget smaller by one bucket per layer."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        curves = random_curves(rng, 3)
        total = sum(c.size for c in curves)
        budget = 0.4 * total
        chosen = choose(curves, budget, buckets=50)
        if chosen is None:
            continue
        assert nnz_of(curves, chosen) <= budget
        unit = -(-total // 50)
        smaller, _ = enumerated_optimum(curves, budget - 3 * unit)
        got = sum(0.0 if j == -1 else c.cost[j] for c, j in zip(curves, chosen))
        assert got <= smaller + 1e-12


def test_the_slack_goes_to_one_layer_and_the_total_lands_on_the_budget():
    a = synthetic_curve(0, 1000, [400, 200, 100], [0.0, 0.1, 0.5])     # 0.4 / 100 weights toward 200
    b = synthetic_curve(1, 1000, [300, 150, 50], [0.0, 0.2, 0.3])      # 0.2 / 150 toward 150
    keeps = keeps_for([a, b], [2, 1], budget=300)
    assert keeps == [pytest.approx(0.15), pytest.approx(0.15)]     # a, the steeper, takes the 50 left
    keeps = keeps_for([a, b], [2, 1], budget=450)      # 200 left: a takes 100 (to its next point), b 100
    assert keeps == [pytest.approx(0.2), pytest.approx(0.25)]
    # A layer at its densest point takes the slack toward dense (its layer then filled beyond
    # its l1 solution by NetTrim.prune): the total still lands on the budget.
    keeps = keeps_for([a, b], [0, 0], budget=1000)
    assert sum(k * c.size for k, c in zip(keeps, [a, b])) == pytest.approx(1000)
    assert max(keeps) <= 1.0


def test_a_layer_asked_for_more_than_its_l1_solutions_keep_is_filled(digits_mlp, monkeypatch):
    """A density search on 40 of the rows (as whole-network targets search on a subset, see
    NetTrim.search_rows): there the first layer's l1 solutions keep at most about (active
    rows per output) / inputs of its weights, whatever eps.  A search for 75% says so after
    two solves (no walk down to eps_rel 1e-3), and the layer is filled to its target with the
    trained weights of largest |w| ||x||, re-fitted on every row: no further from the outputs
    than the l1 support re-fitted alone."""
    from nettrim.methods import nettrim as nt
    from nettrim.methods.base import Target
    from nettrim.problem import layer_problems
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    problem = layer_problems(net.layers[0], Xtr.astype(np.float32))[0]
    trials = []

    def prune():
        method = nt.NetTrim(search_rows=40, options={"on_trial": lambda *a: trials.append(a)})
        return method.prune(problem, Target(keep=0.75))

    outcome = prune()
    assert min(t[3] for t in trials) > 1e-3, trials       # no walk down to the smallest eps
    assert 0.74 * outcome.weight.size <= np.count_nonzero(outcome.weight) <= most_kept(outcome.weight.size, 0.75)
    assert len(outcome.notes) == 1 and "Net-Trim's solutions keep at most" in outcome.notes[0]
    assert outcome.notes[0].kind == "filled" and outcome.notes[0].layer == problem.name
    reached = float(outcome.notes[0].split("at most ")[1].split("%")[0]) / 100
    assert reached < 0.65
    monkeypatch.setattr(nt, "_filled", lambda problem, support, keep: support)
    alone = prune()
    assert np.count_nonzero(alone.weight) / alone.weight.size == pytest.approx(reached, abs=0.005)

    def error(o):
        A = problem.X.astype(np.float64) @ o.weight + o.bias
        return np.linalg.norm(np.maximum(A, 0) - problem.Y)
    assert error(outcome) <= error(alone) * (1 + 1e-9)
    assert error(outcome) < 0.9 * error(alone)      # measured: 0.7x


def test_the_parallel_search_starts_where_the_curve_puts_the_density():
    """The parallel scheme finishes each layer from its chosen point (FromCurves): between two
    points its search starts at the eps interpolated between them, aimed by the curve's slope
    there, from the denser point's solution; on a point, at that point's eps, with the slope
    too (at the full tolerances the point's density moves a little)."""
    from types import SimpleNamespace

    from nettrim.allocation import Allocation, FromCurves, eps_at
    from nettrim.problem import LayerProblem

    class Recording:
        close = 0.02

        def __init__(self):
            self.targets, self.starts = [], []

        def search_problem(self, problem):
            return problem

        def solver(self, problem):
            return SimpleNamespace(warm_start=self.starts.append)

        def prune(self, problem, target, solver=None):
            self.targets.append(target)
            return target

    curve = synthetic_curve(0, 1000, [400, 200, 100, 50], [0.01, 0.02, 0.05, 0.2])
    curve.results = [[SimpleNamespace(U=f"U{j}")] for j in range(4)]
    problem = LayerProblem("layer0", np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32),
                           np.zeros((2, 2), np.float32), None, True)
    for keep, start in ((0.15, 1), (0.1, 2)):
        method = Recording()
        FromCurves(method, Allocation([keep], [2], [curve], 0, 0, 0, 0), {0: [problem]}).prune(problem, None)
        target = method.targets[0]
        assert method.starts == [f"U{start}"] and target.keep == keep
        assert target.lowest == curve.eps_rel[0]        # (see allocation.lowest_eps)
        if keep == 0.15:     # between points 1 and 2
            assert curve.eps_rel[1] < target.eps_rel < curve.eps_rel[2]
            assert (target.eps_rel, target.slope) == eps_at(curve, (1 - 0.01) * 150)
        else:
            assert target.eps_rel == curve.eps_rel[2] and target.slope == eps_at(curve, 100)[1] < 0


@pytest.mark.parametrize("options", [{}, {"adapt_bias": 5.0}])
def test_a_curve_balances_its_warm_started_points_less_toward_the_primal(digits_mlp, options):
    """A curve's first (cold) solve keeps the solver's bias toward the primal residual; its
    warm-started points use NetTrim.PATH_BIAS, unless the method was given an adapt_bias.
    Afterwards the kept solvers are back at the method's own settings (the final searches
    run on them)."""
    from nettrim.allocation import HeldOut, layer_curve
    from nettrim.methods import nettrim as nt
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    biases, made = [], []
    method = nt.NetTrim(options={**options, "on_trial": lambda *a: biases.append(made[-1].settings.adapt_bias)})
    make = method.solver
    method.solver = lambda problem: made.append(make(problem)) or made[-1]
    hidden = np.maximum(Xtr @ clf.coefs_[0] + clf.intercepts_[0], 0).astype(np.float32)
    curve = layer_curve(1, net.layers[1], hidden, method, HeldOut(net, Xte), stop_density=0.1, keep_solvers=True)
    own = options.get("adapt_bias", 10.0)
    assert len(biases) == len(curve.nnz) >= 4
    assert biases == [own] + [options.get("adapt_bias", nt.NetTrim.PATH_BIAS)] * (len(biases) - 1)
    assert nt.NetTrim.PATH_BIAS != 10.0
    settings = curve.solvers[0].settings
    assert (settings.adapt_bias, settings.tol, settings.dual_tol, settings.max_iter) == (own, 1e-3, 1e-2, 10000)
    # NetTrim.curve on a solver of one's own (outside layer_curve) leaves its bias as it was
    from nettrim.problem import layer_problems
    problem = layer_problems(net.layers[1], hidden)[0]
    solver = method.solver(problem)
    solver.update_settings(adapt_bias=7.0, max_iter=50)
    biases.clear()
    method.curve(problem, solver, stop_density=0.3)
    assert len(biases) >= 2 and biases == [7.0] + [7.0 if options else nt.NetTrim.PATH_BIAS] * (len(biases) - 1)
    assert solver.settings.adapt_bias == 7.0
