"""Sharing a whole-network sparsity target out among the layers (docs: "Whole-network targets").

Net-Trim's default ("curves"):

1. **Curves, computed once.** Every layer's solution path over a grid of eps_rel, on the
   trained network's signals (one factorisation and warm-started solves per layer): for
   each point its nonzeros and its weights (re-fitted as the final layer will be).
2. **A cost for every point.** The pruned network's output discrepancy on held-out
   calibration samples when that layer alone takes that point,
   ``||f'(H) - f(H)||^2 / ||f(H)||^2`` (one forward pass of the layers after it).
3. **The choice.** One point per layer minimising the summed cost under the budget of
   nonzeros: an exact dynamic program over budget buckets (0.05% of the weights), then a
   local refinement that moves pairs of layers one grid step in opposite directions while
   the discrepancy of the whole pruned network, measured, goes down.
4. **Exactly the budget.** The layer whose denser neighbour saves the most cost per weight
   given back takes the remaining budget, so that the total lands within 1% of the target.

The cascade then solves each layer on the pruned network's signals to its allocated
density (a warm-started eps search per layer, starting at the eps its curve chose); the
parallel scheme uses the chosen path points themselves.  "shared" (one eps for every layer,
today's behaviour before curves) and "uniform" (every layer the same density) remain.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .layers import PRUNABLE
from .methods.base import Target
from .network import Network
from .problem import inactive_of, layer_problems, sample_rows
from .result import PrunedLayer

ALLOCATIONS = ("curves", "shared", "uniform")


@dataclass
class LayerCurve:
    """One layer's choices: per point of its solution path the nonzeros, the cost, and the
    solutions of every group (l1 solutions; finished when chosen)."""
    index: int
    name: str
    size: int
    eps_rel: np.ndarray                 # (G,) increasing
    nnz: np.ndarray                     # (G,) nonzeros of the finished weights
    cost: np.ndarray                    # (G,) output discrepancy with this layer alone at the point
    results: List[list]                 # [point][group] -> LayerResult
    quick: List[list]                   # [point][group] -> quickly re-fitted (weights, bias), for costs
    status: List[str] = field(default_factory=list)   # per point, the worst of its groups' statuses
    iterations: int = 0
    solves: int = 0
    seconds: float = 0.0
    solvers: list = field(default_factory=list, repr=False)   # per group, kept for a final search
    rows: int = 0                       # calibration rows the path was solved on
    inactive: str = "bounded"           # the program the path solves (see nettrim.prune_layer)


@dataclass
class Allocation:
    """What the allocation chose: a density per layer (and the curve point behind it)."""
    keep: List[float]                   # per selected layer, the fraction of its weights to keep
    points: List[Optional[int]]         # per selected layer, the chosen point (None: dense)
    curves: List[LayerCurve]
    budget: float                       # nonzeros allowed in the selected layers together
    discrepancy: float                  # measured on the held-out samples, all layers at their points
    seconds: float
    evaluations: int
    target: float = 1.0                 # the fraction of the selected layers' weights to keep

    def replan(self, done_nnz, k):
        """After the cascade pruned the layers before ``k`` (``done_nnz`` nonzeros in the selected
        ones), the density of layer ``k``: the remaining layers' choice under the remaining budget."""
        rest = [c for c in self.curves if c.index >= k]
        budget = self.budget - done_nnz
        if len(rest) == 1:
            return min(1.0, max(0.0, budget / rest[0].size)), None
        chosen = choose(rest, budget)
        if chosen is None:
            chosen = [len(c.nnz) - 1 for c in rest]
        keeps = keeps_for(rest, chosen, budget)
        return keeps[0], (None if chosen[0] == -1 else chosen[0])

    def cascade_target(self, k, done_nnz, close):
        """The cascade's target for layer ``k`` once the layers before it kept ``done_nnz`` of the
        selected weights: the allocation re-planned for the layers left under the budget left
        (a layer may have come out sparser than its curve said), searched from the eps its
        curve puts that density at.  ``close``: the searches' window (see ``Target.close``)."""
        keep_k, _ = self.replan(done_nnz, k)
        i = next(i for i, c in enumerate(self.curves) if c.index == k)
        c = self.curves[i]
        # The re-plan may take from this layer what a layer before took beyond its plan (a
        # layer that kept fewer than its density, a re-plan that moved weights), but never
        # more than half of a layer's planned weights while the budget leaves the layers
        # after it their halves: without that limit the digits CNN at 90% removed gave its
        # logits layer 4 of 640 weights (test accuracy 0.33).  The budget left is a ceiling
        # on every layer (a requested sparsity is a ceiling on what the network keeps).
        left = self.budget - done_nnz
        later = sum(0.5 * kp * c2.size for c2, kp in zip(self.curves, self.keep) if c2.index > k)
        planned = self.keep[i]
        keep_k = max(keep_k, min(0.5 * planned, (left - later) / c.size))
        keep_k = min(keep_k, max(0.0, left) / c.size)
        if keep_k >= 1.0:     # kept dense, re-fitted to the pruned signals (NetTrim.prune)
            return Target(keep=1.0, inactive=c.inactive)
        # The search may stop short of the layer's density by up to 0.5% of the selected
        # weights (at most 10% of its own) when a layer after it is to be pruned: that one is
        # re-planned with what this one left, so the network still lands within 1% of its
        # target, in fewer solves.
        if keep_k > 0 and any(kp < 1 for c2, kp in zip(self.curves, self.keep) if c2.index > k):
            # (keep_k 0: the budget is spent, every weight goes and there is no window to widen)
            close = min(0.1, max(close, 0.005 * self.budget / self.target / (keep_k * c.size)))
        eps_rel, slope = eps_at(c, (1 - close / 2) * keep_k * c.size)
        return Target(keep=keep_k, eps_rel=eps_rel, close=close, slope=slope, inactive=c.inactive,
                      lowest=lowest_eps(c))


class HeldOut:
    """Forward passes of the network on held-out samples with one or more layers replaced.

    A chain (:class:`~nettrim.network.Network`) keeps every layer's input on the held-out
    samples and runs from the first layer replaced; a graph model
    (:class:`~nettrim.graph.GraphModel`) is run whole by its framework (``forward_with``)."""

    def __init__(self, net, H):
        self.net = net
        self.positions = [i for i, s in enumerate(net.steps) if isinstance(s, PRUNABLE)]
        self.inputs = {}              # prunable index -> the trained network's input to it, on H
        h = np.asarray(H, np.float32)
        k = 0
        for i, step in enumerate(net.steps):
            if isinstance(step, PRUNABLE):
                self.inputs[k] = h
                k += 1
            h = step(h)
        self.reference = h
        self.norm2 = float(np.sum(np.asarray(h, np.float64) ** 2)) or 1.0
        self.evaluations = 0

    def rebase(self, replaced):
        """A hint that the next evaluations differ from ``replaced`` in a layer or two (what a
        graph model's passes start from; a chain's start at the first layer replaced anyway)."""

    def discrepancy(self, replaced, changed=None):
        """``||f'(H) - f(H)||^2 / ||f(H)||^2`` with layers ``replaced`` ({index: layer object});
        ``changed``: the indices in which ``replaced`` differs from the last :meth:`rebase`."""
        self.evaluations += 1
        first = min(replaced)
        h = self.inputs[first]
        k = first
        for step in self.net.steps[self.positions[first]:]:
            if isinstance(step, PRUNABLE):
                h = replaced.get(k, step)(h)
                k += 1
            else:
                h = step(h)
        d = np.asarray(h, np.float64) - self.reference
        return float(np.sum(d * d)) / self.norm2


class GraphHeldOut(HeldOut):
    """:class:`HeldOut` of a graph model: every evaluation is one pass of the whole model."""

    def __init__(self, net, H):
        self.net, self.H = net, np.asarray(H, np.float32)
        h = net.forward(self.H)
        self.reference = h.astype(np.float64)
        self.norm2 = float(np.sum(self.reference ** 2)) or 1.0
        self.evaluations = 0
        # Every value of the trained model on H, where it fits in a quarter of the memory
        # available: a pass then starts at the first layer replaced.
        self.values = self.trained = net.cache(self.H)

    def rebase(self, replaced):
        """Keep the values of the model with ``replaced`` (refine's current allocation): a trial
        that moves one or two layers from it then computes only what those feed."""
        if self.trained is not None:
            self.values = self.net.cache(self.H, replaced)

    def discrepancy(self, replaced, changed=None):
        self.evaluations += 1
        values, changed = (self.trained, None) if changed is None else (self.values, changed)
        d = np.asarray(self.net.forward_with(replaced, self.H, values, changed), np.float64) - self.reference
        return float(np.sum(d * d)) / self.norm2


def held_out(net, H):
    """The held-out forward passes of ``net``: :class:`HeldOut` of a chain, :class:`GraphHeldOut`
    of a graph model."""
    return HeldOut(net, H) if isinstance(net, Network) else GraphHeldOut(net, H)


def with_weights(layer, groups):
    """A copy of ``layer`` carrying the per-group ``(weights, bias)``."""
    out = copy.copy(layer)
    out.set_groups([np.asarray(w, np.float32) for w, _ in groups],
                   [np.zeros(w.shape[1], np.float32) if b is None else np.asarray(b, np.float32) for w, b in groups])
    return out


def _in_layer(problem, solution):
    """A solution's ``(weights, bias)`` as the layer holds them (see ``LayerProblem.layer_bias``)."""
    weights, bias = solution
    return weights, (bias if problem.shift is None else problem.layer_bias(bias))


def curve_sample(X, max_rows, seed=0):
    """At most ``max_rows`` rows of ``X`` (see :func:`sample_rows`) for a layer's curve."""
    rows = sample_rows(len(X), max_rows, seed)
    return X if rows is None else X[rows]


def layer_curve(k, layer, X_original, method, held_out, stop_density=0.0, keep_solvers=False, max_rows=None,
                inactive=None):
    """Layer ``k``'s solution path (trained network's signals, see ``NetTrim.curve``) and the
    cost of each point, measured with the quickly re-fitted weights.  ``max_rows``: the path
    is solved on at most that many calibration rows (see :data:`CURVE_ROWS`).  ``inactive``:
    the program solved (default: the method's)."""
    t0 = time.perf_counter()
    X_original = curve_sample(X_original, max_rows)
    inactive = inactive or inactive_of(method)
    problems = layer_problems(layer, X_original, inactive=inactive)
    solvers = [method.solver(p) for p in problems]
    with method.loose(solvers):
        # The groups of a grouped convolution share the first group's eps_rel values.
        first = method.curve(problems[0], solvers[0], stop_density=stop_density)
        grid = [rel for rel, _ in first]
        per_group = [[r for _, r in first]]
        for p, solver in zip(problems[1:], solvers[1:]):
            def solve(rel, p=p, solver=solver):
                return solver.solve(eps=p.eps(rel, method.per_neuron, solver.floor), warn=False, keep_state=False)
            path = [solve(grid[0])]
            with method.along_path(solver):
                path += [solve(rel) for rel in grid[1:]]
            per_group.append(path)
    results = [[per_group[g][j] for g in range(len(problems))] for j in range(len(grid))]
    finished = [[_in_layer(p, method.finish(p, r, quick=True)) for p, r in zip(problems, point)] for point in results]
    nnz = np.array([sum(int(np.count_nonzero(w)) for w, _ in point) for point in finished])
    cost = np.array([held_out.discrepancy({k: with_weights(layer, point)}) for point in finished])
    status = [next((r.status for r in point if r.status != "converged"), "converged") for point in results]
    iterations = sum(r.iterations for point in results for r in point)
    return LayerCurve(k, layer.name, layer.size, np.array(grid), nnz, cost, results, finished, status, iterations,
                      len(grid) * len(problems), time.perf_counter() - t0, solvers if keep_solvers else [],
                      len(X_original), inactive)


def choose(curves, budget, buckets=2000):
    """One option per layer (a point, or -1 for dense) minimising the summed cost with at most
    ``budget`` nonzeros in total: a dynamic program over ``buckets`` units of weights, exact for
    costs that add up (nonzeros rounded up, so the choice always fits).  None when nothing fits."""
    total = sum(c.size for c in curves)
    unit = max(1, math.ceil(total / buckets))
    cap = int(budget // unit)
    if cap < 0:
        return None
    best = np.full(cap + 1, math.inf)
    best[0] = 0.0
    picks = []
    for c in curves:
        options = [(-1, c.size, 0.0)] + [(j, int(c.nnz[j]), float(c.cost[j])) for j in range(len(c.nnz))]
        new = np.full(cap + 1, math.inf)
        pick = np.full(cap + 1, -2, dtype=int)
        for j, nnz, cost in options:
            u = math.ceil(nnz / unit)
            if u > cap:
                continue
            cand = best[:cap + 1 - u] + cost
            better = cand < new[u:]
            new[u:][better] = cand[better]
            pick[u:][better] = j
        best = new
        picks.append(pick)
    if not np.isfinite(best).any():
        return None
    b = int(np.argmin(best))
    chosen = []
    for c, pick in zip(reversed(curves), reversed(picks)):
        j = int(pick[b])
        chosen.append(j)
        b -= math.ceil((c.size if j == -1 else int(c.nnz[j])) / unit)
    return list(reversed(chosen))


def eps_at(curve, nnz):
    """``(eps_rel, slope)``: the eps_rel at which ``curve`` would keep ``nnz`` weights,
    interpolated linearly in log eps against log nonzeros between its points around it (its
    end point outside them), and that segment's slope d log(nonzeros) / d log(eps)."""
    nonzero = curve.nnz > 0
    if nonzero.sum() < 2:
        return float(curve.eps_rel[-1]), None
    x = np.log(curve.nnz[nonzero].astype(float))[::-1]       # increasing (the nonzeros fall with eps)
    y = np.log(curve.eps_rel[nonzero])[::-1]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    at = np.log(max(nnz, 1.0))
    i = int(np.clip(np.searchsorted(x, at), 1, len(x) - 1))
    slope = (x[i] - x[i - 1]) / (y[i] - y[i - 1]) if y[i] != y[i - 1] else None
    return float(np.exp(np.interp(at, x, y))), slope


def lowest_eps(curve):
    """The smallest eps_rel a search for a density of ``curve``'s layer tries: the curve's
    first.  Below it an l1 solution's density levels off (near eps 0 it keeps at most the
    active rows per output over the inputs) while the solves slow down, so a layer given more
    than its densest point (``keeps_for``) is filled from there (NetTrim.prune).  Measured on
    the Fashion MLP at 50% removed, whose first layer was given 43.4% against a curve starting
    at 40.1% (eps_rel 0.005): its search stepped down to 0.0038 (38.4% -> 38.6%, stopped at its
    limit of 4640 iterations) before the fill: 80 -> 41 s (parallel) and 92 -> 46 s (cascade), test
    accuracy 0.890 -> 0.889 and 0.889 (10,000 samples)."""
    return float(curve.eps_rel[0])


def nnz_of(curves, chosen):
    return sum(c.size if j == -1 else int(c.nnz[j]) for c, j in zip(curves, chosen))


def measured(net, curves, chosen, held_out, changed=None, rebase=False):
    """The held-out discrepancy with every layer at its chosen point (quickly re-fitted).
    ``changed``: the curves' positions whose points differ from the last ``rebase=True`` call's."""
    replaced = {c.index: with_weights(net.layers[c.index], c.quick[j]) for c, j in zip(curves, chosen) if j != -1}
    if rebase:
        held_out.rebase(replaced)
    changed = None if changed is None else [curves[i].index for i in changed]
    return held_out.discrepancy(replaced, changed) if replaced else 0.0


def refine(net, curves, chosen, budget, held_out, rounds=3, screen_above=8, screened=4):
    """Moves of one point, a layer denser and another sparser, while the whole pruned
    network's measured discrepancy goes down and the budget holds.

    Every pair of layers is tried when there are at most ``screen_above``; with more (a
    ResNet's 22), each move is first measured alone, and only the pairs among the
    ``screened`` best of each kind are tried: 2 L + screened^2 evaluations a round instead of
    L^2, each a pass of the whole model for a graph (ResNet-20, 22 layers: the refinement
    alone took over 7 minutes of a 90% run)."""
    current = measured(net, curves, chosen, held_out, rebase=True)
    for _ in range(rounds):
        best_move, best_value = None, current
        to_denser = to_sparser = range(len(curves))
        if len(curves) > screen_above:
            to_denser, to_sparser = _screened_moves(net, curves, chosen, held_out, screened)
        for a in to_denser:
            for b in to_sparser:
                if a == b or chosen[a] == -1 or chosen[b] + 1 >= len(curves[b].nnz):
                    continue
                trial = list(chosen)
                trial[a] = chosen[a] - 1 if chosen[a] > 0 else -1
                trial[b] = chosen[b] + 1
                if nnz_of(curves, trial) > budget:
                    continue
                value = measured(net, curves, trial, held_out, changed=(a, b))
                if value < best_value:
                    best_move, best_value = trial, value
        if best_move is None:
            break
        chosen, current = best_move, best_value
        measured(net, curves, chosen, held_out, rebase=True)
    return chosen, current


def _screened_moves(net, curves, chosen, held_out, count):
    """``(to_denser, to_sparser)``: the ``count`` layers whose move to their denser neighbour
    (``chosen - 1``, or dense) measures the least discrepancy alone, and the ``count`` whose move
    to their sparser one (``chosen + 1``) does: the candidates of :func:`refine`'s pairs."""
    def alone(k, step):
        trial = list(chosen)
        trial[k] = step
        return measured(net, curves, trial, held_out, changed=(k,))
    up = [(alone(a, chosen[a] - 1 if chosen[a] > 0 else -1), a) for a in range(len(curves)) if chosen[a] != -1]
    down = [(alone(b, chosen[b] + 1), b) for b in range(len(curves)) if chosen[b] + 1 < len(curves[b].nnz)]
    return [a for _, a in sorted(up)[:count]], [b for _, b in sorted(down)[:count]]


def keeps_for(curves, chosen, budget):
    """Densities of the chosen points, the layers whose cost rises least per weight toward their
    denser neighbours taking what is left of the budget (so the total lands on it)."""
    keeps = [1.0 if j == -1 else c.nnz[j] / c.size for c, j in zip(curves, chosen)]
    slack = budget - nnz_of(curves, chosen)
    if slack < 0:
        # Not even the sparsest points fit (choose() found nothing): every layer gives up the
        # same share, since the budget is a ceiling (each layer's search is then trimmed to it).
        return [kp * budget / nnz_of(curves, chosen) for kp in keeps]

    def denser(c, j):      # (nonzeros, cost) of the next denser option: a point, or dense
        return (c.nnz[j - 1], c.cost[j - 1]) if j > 0 else (c.size, 0.0)
    slopes = [((c.cost[j] - denser(c, j)[1]) / max(1, denser(c, j)[0] - c.nnz[j]), i)
              for i, (c, j) in enumerate(zip(curves, chosen)) if j >= 0 and denser(c, j)[0] > c.nnz[j]]
    # The largest cost saved per weight given back first, each layer up to its next option,
    # until the slack is spent.  Past a curve's densest point the layer is filled beyond its
    # l1 solution (NetTrim.prune: the l1 solutions level off near eps 0, e.g. at 38% on
    # Fashion-MNIST's first layer on 1200 rows).
    for _, i in sorted(slopes, reverse=True):
        if slack <= 0:
            break
        c, j = curves[i], chosen[i]
        take = min(denser(c, j)[0] - c.nnz[j], slack)
        keeps[i] = (c.nnz[j] + take) / c.size
        slack -= take
    return keeps


# The curves only rank each layer's points (nonzeros against output discrepancy); solved on a
# seeded subset of at most this many calibration rows, their cost does not grow with the
# calibration set.  The chosen densities are searched on the same rows (NetTrim.search_rows),
# and each support found is re-fitted on every row.  Measured with 10,000 calibration samples
# (Fashion MLP, 90% removed, cascade / parallel): searches on all 9000 rows 167 / 188 s, test
# accuracy 0.856 / 0.856; on the 2000 curve rows 74 / 84 s, 0.857 / 0.859; on 1200 rows
# 49 / 47 s, 0.855 / 0.858.  With 2000 samples (1600 solve rows), 1200 against all 1600: test
# accuracy within -0.012..+0.038 at 90-98% removed on the Fashion MLP and CNN (CNN parallel
# 95%: 0.799 -> 0.812), 3-34% less time.
CURVE_ROWS = 1200


def allocate(net, X_original, selected, keep, method, held_out, keep_solvers=False, executor=None,
             curve_rows=None, inactive=None):
    """Densities for the ``selected`` layers so that together they keep ``keep`` of their weights.

    ``X_original``: {index: the layer's unfolded inputs on the trained network}.  ``executor``
    (another process or machine): the layers' curves are computed there, one job per layer.
    ``curve_rows``: the most rows each curve is solved on (default :data:`CURVE_ROWS`).
    ``inactive``: the program the curves solve (default: the method's)."""
    t0 = time.perf_counter()
    curve_rows = CURVE_ROWS if curve_rows is None else curve_rows
    # The sparsest layer an allocation chose was at keep / 1.15 to keep / 2 on the Fashion MLP
    # and CNN at 80-98% removed: the curve need not go much below keep.  It stops at its first
    # point below keep / 2.5 (it was keep / 3): the points below that cost the most iterations
    # (the sparse end of a curve runs to its limit), and no Fashion run measured chose them.
    # The same network and 6-12% less time: Fashion MLP at 90% removed 64.6 -> 60.2 s (cascade),
    # 64.4 -> 56.2 s (parallel), at 98% 109.1 -> 101.7 s; Fashion CNN at 90% 77.5 -> 73.6 s;
    # the digits MLP and CNN at 95 / 98% unchanged but for the CNN's cascade at 98%, whose dense
    # layer (at keep / 3.3 before) no longer reaches 0.6%: it keeps 0.8% and the logits 7.7%
    # instead of 9.7% (test accuracy 0.444 -> 0.540).
    stop = keep / 2.5
    if executor is None:
        curves = [layer_curve(k, net.layers[k], X_original[k], method, held_out, stop_density=stop,
                              keep_solvers=keep_solvers, max_rows=curve_rows, inactive=inactive) for k in selected]
    else:
        share = getattr(executor, "share", None)
        futures = [executor.submit(layer_curve, k, net.layers[k], share(X_original[k]) if share else X_original[k],
                                   method, held_out, stop, False, curve_rows, inactive) for k in selected]
        curves = [f.result() for f in futures]
    budget = keep * sum(c.size for c in curves)
    chosen = choose(curves, budget)
    if chosen is None:    # not even the sparsest points fit: take them
        chosen = [len(c.nnz) - 1 for c in curves]
    chosen, discrepancy = refine(net, curves, chosen, budget, held_out)
    return Allocation(keeps_for(curves, chosen, budget), [None if j == -1 else j for j in chosen], curves,
                      budget, discrepancy, time.perf_counter() - t0, held_out.evaluations, keep)


class FromCurves:
    """The parallel scheme's method after an allocation: each layer's chosen path point,
    finished (re-fitted), and for the layer that takes the remaining budget an eps search
    between two points on the solver its curve left set up (warm, no refactorisation)."""
    name = "nettrim"

    def __init__(self, method, allocation: Allocation, problems):
        self.method, self.allocation = method, allocation
        self.where = {}
        for c, j, keep in zip(allocation.curves, allocation.points, allocation.keep):
            for g, p in enumerate(problems[c.index]):
                self.where[p.name] = (c, j, keep, g)

    def prune(self, problem, target):
        c, j, keep, g = self.where[problem.name]
        if j is None:
            return PrunedLayer(weight=problem.W, bias=problem.b, method=self.name)
        # The curve's points were solved to loose tolerances: search to the chosen density at
        # the full ones, from the chosen point (or, between two points, the denser one's
        # solution, at the eps interpolated between them, with the curve's slope there, as the
        # cascade does).  Measured on the Fashion MLP at 90% removed (10,000 samples): its
        # first layer's search took 3-4 solves (5-6 s) from the denser point's eps.
        between = abs(keep * c.size - c.nnz[j]) >= 0.5
        start = j - 1 if between and j > 0 else j
        if between:
            eps_rel, slope = eps_at(c, (1 - self.method.close / 2) * keep * c.size)
        else:     # (at the full tolerances the point's density moves a little: the slope aims the next step)
            eps_rel, slope = float(c.eps_rel[start]), eps_at(c, c.nnz[start])[1]
        searched = self.method.search_problem(problem)
        same_rows = c.solvers and c.rows == len(searched.X)
        solver = c.solvers[g] if same_rows else self.method.solver(searched)
        solver.warm_start(c.results[start][g].U)    # (from a subset's solution: the same unknowns)
        return self.method.prune(problem, Target(keep=keep, eps_rel=eps_rel, slope=slope, lowest=lowest_eps(c)),
                                 solver=solver)
