"""Net-Trim as a method among the others: one layer problem and a target in, an outcome out.

A target tolerance is one solve; a target density is an eps search on one
:class:`~nettrim.LayerSolver` (one factorisation, warm-started solves); N:M keeps the N:M
pattern of the solution's largest ``|u| ||x||`` and re-fits the kept weights; ``refit``
re-fits the solution's own support: the constrained least squares solved from the solution,
which never errs more than it (so stays inside the eps ball).
For whole-network targets, :meth:`NetTrim.curve` gives a layer's solution path, and
:meth:`NetTrim.finish` turns one of its points into the layer's weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from types import SimpleNamespace
from typing import Optional

import numpy as np

from ..problem import sample_rows
from ..report import Note
from ..result import PrunedLayer
from ..search import search_eps
from ..solver import DEFAULTS, LayerSolver
from .base import Target
from .masks import largest, most_kept, n_of_m
from .refit import kept_dense, refit_mode, refit_on_support
from .wanda import wanda_scores


def _scaled(problem, best):
    """The solution with each output column (weights and bias) scaled by its least-squares factor on Omega."""
    A = (problem.X @ best.weight + (0 if best.bias is None else best.bias)).astype(np.float64)
    omega = problem.omega
    num = np.sum(np.where(omega, A * problem.Y, 0), axis=0)
    den = np.sum(np.where(omega, A * A, 0), axis=0)
    alpha = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    alpha = np.where(alpha > 0, alpha, 1.0)
    weights = (best.weight * alpha).astype(np.float32)
    bias = None if best.bias is None else (best.bias * alpha).astype(np.float32)
    return weights, bias


def _filled(problem, support, keep):
    """``support`` with the trained weights of largest Wanda score (``|w| ||x||``) outside it
    added, up to ``keep`` of the weights.  For a density the l1 solutions do not reach: near
    eps 0 they level off at about the active rows per output over the inputs (Fashion-MNIST's
    first layer on 1200 rows: 38.3%), and the cascade's floor caps eps from below."""
    want = most_kept(support.size, keep) - int(support.sum())
    scores = wanda_scores(problem.X, problem.W)
    # Not a weight already kept, nor one the re-fit would zero: on an input that is always 0,
    # or of an output that never fires on the calibration data (its re-fit is all zeros).
    alive = problem.omega.any(axis=0)
    scores = np.where(support | ~alive[None, :] | ~(scores > 0), -np.inf, scores).ravel()
    want = min(want, int(np.isfinite(scores).sum()))
    if want <= 0:
        return support
    top = np.argpartition(-scores, want - 1)[:want]
    filled = support.copy().ravel()
    filled[top] = True
    return filled.reshape(support.shape)


def _trimmed(problem, weights, limit, whole_rows=False):
    """The support of ``weights`` cut to at most ``limit`` nonzeros: those of largest Wanda
    score (``|u| ||x||``), or, for the group penalty, whole input rows of largest score.  For a
    search that ends above its target density (a jump of the density over the window, a
    floor, a fill): a requested sparsity is a ceiling on what is kept."""
    scores = wanda_scores(problem.X, weights)
    if not whole_rows:
        return largest(np.where(weights != 0, scores, -np.inf), limit) & (weights != 0)
    per_row = np.count_nonzero(weights, axis=1)
    order = np.argsort(-scores.sum(axis=1), kind="stable")
    rows = order[np.cumsum(per_row[order]) <= limit]
    support = np.zeros(weights.shape, bool)
    support[rows] = weights[rows] != 0
    return support


class NetTrim:
    name = "nettrim"

    def __init__(self, *, refit=True, dtype="float32", threads: int = 0, close: float = 0.02,
                 search_rows: Optional[int] = None, options=None):
        # refit: "relu" (True), "bounded" or "none" (False); see finish().
        self.refit, self.dtype, self.threads, self.close = refit_mode(refit), dtype, threads, close
        # Density searches on at most this many calibration rows (None: all), the solution's
        # support then re-fitted on every row: for whole-network targets, whose curves are
        # solved on the same rows (nettrim.allocation.CURVE_ROWS).
        self.search_rows = search_rows
        self._given = dict(options or {})
        options = dict(self._given)
        self.warm_start = options.pop("warm_start", None)
        self.progress = options.pop("progress", None)
        # on_trial(layer, kind, number, eps_rel, density): each solve of a search or curve, as it ends.
        self.on_trial = options.pop("on_trial", None)
        # How the inactive outputs count (see prune_layer): it decides the layer problems' bound
        # and floor too (nettrim.problem.layer_problems), so it is the method's, not a setting.
        self.inactive = options.pop("inactive", DEFAULTS.inactive.name)
        # How each solver holds its samples (see LayerSolver): "auto" compresses the linear
        # program where that measures faster.
        self.form = options.pop("form", "auto")
        self.options = options
        self.per_neuron = options.get("constraint") == "neuron"

    def searching(self, *, close: float, rows: Optional[int]):
        """This method with its density searches landing within ``close`` of their target, on
        at most ``rows`` calibration rows (see ``search_rows``): an allocation's final searches."""
        return NetTrim(refit=self.refit, dtype=self.dtype, threads=self.threads, close=close, search_rows=rows,
                       options=self._given)

    def search_problem(self, problem):
        """The problem a density search runs on: ``problem``, or, with more than
        ``search_rows`` rows, the seeded subset of them that the layer's curve was solved on."""
        rows = sample_rows(len(problem.X), self.search_rows)
        return problem if rows is None else problem.rows(rows)

    def solver(self, problem) -> LayerSolver:
        """A solver set up for ``problem`` (the factorisation is done here, once)."""
        solver = LayerSolver(problem.X, problem.Y, W=problem.W, b=problem.b, fit_bias=problem.has_bias,
                             mode="relu" if problem.relu else "linear", V=problem.V, dtype=self.dtype,
                             threads=self.threads, progress=self.progress, inactive=problem.inactive,
                             form=self.form, **self.options)
        if self.warm_start == "W":   # the first solve from the trained weights ("auto": from zero,
            solver.warm_start("W")   # measured the same on real layers)
        return solver

    def prune(self, problem, target: Target, solver: Optional[LayerSolver] = None) -> PrunedLayer:
        """``target.keep``: an eps search (from ``target.eps_rel`` when given) for a solution
        keeping between ``(1 - close) keep`` and ``keep`` of the weights; otherwise one solve
        at ``target.eps_rel``.  ``solver``: one already set up for ``problem`` (warm)."""
        t0 = time.perf_counter()
        if target.keep is not None and target.keep >= 1.0 and target.nm is None:
            weights, bias = kept_dense(problem)
            return PrunedLayer(weight=weights, bias=bias, method=self.name, seconds=time.perf_counter() - t0,
                               final_seconds=time.perf_counter() - t0)
        searching = target.keep is not None and target.nm is None
        # (on a subset of the rows, see search_rows: the support found is re-fitted on every
        # row by finish(), its start's bias lowered to meet every row's bound first)
        searched = self.search_problem(problem) if searching else problem
        solver = solver or self.solver(searched)
        tried = []
        this_search = []     # (eps_rel, result) of the search under way

        def run(rel):
            limit = self._walk_down_limit(rel, this_search) if searching else None
            max_iter = solver.settings.max_iter
            capped = limit is not None and limit < max_iter
            if capped:
                solver.update_settings(max_iter=limit)
            try:
                res = solver.solve(eps=searched.eps(rel, self.per_neuron, solver.floor), warn=False,
                                   keep_state=False)
            finally:
                if capped:
                    solver.update_settings(max_iter=max_iter)
            tried.append(res)
            this_search.append((rel, res))
            if self.on_trial:
                self.on_trial(problem.name, "search trial" if target.keep is not None else "solve", len(tried),
                              rel, res.density)
            return res

        close = self.close if target.close is None else target.close

        def search(floor_rel):
            return search_eps(run, target.keep, floor_rel, start=target.eps_rel or 0.05, close=close,
                              factor=4.0 if target.eps_rel is None else 1.3, slope=target.slope,
                              smallest=max(1e-3, target.lowest or 0.0))

        notes = []
        if searching:
            best, note = search(searched.floor.scaled(1.0, searched.scale))
            if note:
                notes.append(note.about(problem.name))
            if best.density > target.keep and problem.V is not None and (problem.V < 0).any():
                this_search.clear()
                best, problem, notes = self._relaxed_search(problem, solver, search, best)
        else:
            best = run(0.05 if target.eps_rel is None else target.eps_rel)
        t1 = time.perf_counter()
        support = None
        if searching and notes and self.refit != "none" and best.density < (1 - close) * target.keep:
            # (only where the search says the density is out of its reach from below)
            support = _filled(problem, best.weight != 0, target.keep)
            # (said for a newcomer: it is the most frequent note, and nothing went wrong)
            notes = [n for n in notes if n.kind != "unreachable_from_below"] + [Note(
                f"{problem.name}: asked to keep {target.keep:.1%} of its weights, but Net-Trim's solutions keep at "
                f"most {best.density:.3%} (eps_rel down to {min(rel for rel, _ in this_search):.3g}): this layer "
                f"could lose more. nettrim made up the other {support.mean() - best.density:.3%} with the trained "
                f"weights that matter most to its outputs (largest |w| ||x||), re-fitted with the rest. Nothing "
                f"failed; a higher sparsity (--sparsity) would let it keep fewer", "filled", problem.name)]
        weights, bias = self.finish(problem, best, target.nm, support=support)
        limit = most_kept(weights.size, target.keep) if searching else None
        trimmed = limit is not None and np.count_nonzero(weights) > limit
        if trimmed:
            kept = int(np.count_nonzero(weights))
            support = _trimmed(problem, weights, limit, whole_rows=self.options.get("penalty") == "group")
            start = SimpleNamespace(weight=np.where(support, best.weight, 0), bias=best.bias)
            weights, bias = self.finish(problem, start, support=support)
            weights = np.where(support, weights, 0).astype(weights.dtype)    # (the l1 solution, refit="none")
            notes = [n for n in notes if n.kind != "unreachable"]     # (it was reached, so)
            if kept > (1 + 2 * close) * limit:     # (a small trim is within the search's own window)
                notes.append(Note(f"{problem.name}: the search's solution kept {kept} weights, over the target's "
                                  f"{limit}; those of smallest |w| ||x|| were dropped and the rest re-fitted",
                                  "trimmed", problem.name))
        t2 = time.perf_counter()
        eps = float(np.linalg.norm(best.eps)) * problem.scale / searched.scale   # (the same eps_rel on every row)
        kept_inactive = not (problem.relu and ((target.nm is None and self.refit == "relu")
                                               or problem.inactive == "relu"))
        if searched is not problem or trimmed:
            # The support was found on a subset: on every row the re-fit may err a little more
            # than that eps (measured up to 1.5% more with 1200 of 9000 rows); the eps reported
            # is the one the weights meet on every row (the relu re-fit's: the error on Omega
            # and the inactive outputs' ReLU error together, which bounds the output error).
            # So too for a support trimmed to the target, whose re-fit may err more than eps.
            A = (problem.X @ weights + (0 if bias is None else bias)).astype(np.float64)
            missed = np.where(problem.omega, A - problem.Y, 0 if kept_inactive else np.maximum(A, 0))
            eps = max(eps, float(np.linalg.norm(missed)))
        return PrunedLayer(weight=weights, bias=bias, method=self.name, eps=eps, kept_inactive=kept_inactive,
                           status=best.status, form=solver.form,
                           iterations=sum(r.iterations for r in tried), solves=len(tried), seconds=t2 - t0,
                           search_seconds=t1 - t0, final_seconds=t2 - t1, notes=notes)

    def _relaxed_search(self, problem, solver, search, best):
        """The search again with the cascade's bound on the inactive outputs relaxed from
        ``V`` (the trained weights' pre-activations on the pruned signals) to ``max(V, 0)``: a
        ReLU output of 0 either way, but where ``V < 0`` the bound holds pre-activations below 0
        that only weights can hold there, and no eps lets the layer keep fewer.  Measured on the
        digits CNN (cascade): at 95% removed its second convolution kept 17% (network 8.1%,
        test accuracy 0.736); relaxed there, 4.5% (network 5.0%, 0.918-0.922).  Only where the
        target is out of reach: elsewhere the relaxed bound measured less accurate (digits MLP
        at 90% removed: 0.971 with V, 0.960 with max(V, 0) for every layer).
        ``search(floor_rel)``: the search of ``prune`` on ``solver``.
        Returns ``(best, problem, notes)``, the problem with the relaxed bound."""
        relaxed = dataclasses.replace(problem, V=np.maximum(problem.V, 0))
        relaxed_searched = self.search_problem(relaxed)     # (the same rows as the first search)
        solver.update_bound(relaxed_searched.V)
        again, note = search(relaxed_searched.floor.scaled(1.0, relaxed_searched.scale))
        said = Note(f"{problem.name}: the bound on the inactive outputs (the trained weights' pre-activations on "
                    f"the pruned signals) kept {best.density:.3%} of the weights at best; relaxed to max(V, 0), "
                    f"{again.density:.3%}", "relaxed", problem.name)
        return again, relaxed, [said] + ([note.about(problem.name)] if note else [])

    @staticmethod
    def _walk_down_limit(rel, trials):
        """The iteration limit of a search trial below every eps whose solve converged: 4x the
        most iterations those took (at least 1000).  The engine converges ever more slowly as
        eps nears 0 (Fashion-MNIST's first layer on 1200 rows: 1450 iterations at eps_rel 0.005,
        more than 10,000 at 0.0038 and below, where the density hardly moves: 38.3% -> 38.4%);
        a trial that stops at this limit ends the walk down (search_eps).  None: no limit."""
        done = [(e, r.iterations) for e, r in trials if r.status == "converged"]
        if not done or rel >= min(e for e, _ in done):
            return None
        return max(1000, 4 * max(i for _, i in done))

    def curve(self, problem, solver: Optional[LayerSolver] = None, *, start: float = 0.005,
              stop_density: float = 0.0, max_drop: float = 0.7, factor: float = 1.6, max_points: int = 40):
        """The layer's solution path from eps_rel ``start`` upward: ``[(eps_rel, LayerResult)]``
        sorted by eps_rel, each solve warm started from the one before.

        The steps adapt to the curve: a step that leaves less than ``max_drop`` of the
        nonzeros is followed by its midpoint (warm started from the state before the step),
        so that neighbouring points differ by at most that ratio where it matters; it stops
        at ``stop_density``, at eps_rel 1 (U = 0) or after ``max_points`` solves."""
        solver = solver or self.solver(problem)
        points = {}

        def solve(rel):
            res = solver.solve(eps=problem.eps(rel, self.per_neuron, solver.floor), warn=False, keep_state=False)
            points[rel] = res
            if self.on_trial:
                self.on_trial(problem.name, "curve point", len(points), rel, res.density)
            return res

        rel, res = start, solve(start)
        with self.along_path(solver):
            rejected = None       # (eps_rel, result, state) of the last step found too long
            while res.density > stop_density and rel < 1.0 and len(points) < max_points:
                state = solver.state()
                step = min(1.0, rel * factor)
                if rejected is not None and abs(step / rejected[0] - 1) < 1e-9:
                    # After a midpoint the next step lands on the step that was too long: its
                    # solution is at hand (and valid), so continue from it rather than solve again.
                    step, nres = rejected[0], rejected[1]
                    solver.warm_start(rejected[2])
                    rejected = None
                else:
                    nres = solve(step)
                while nres.density < max_drop * res.density and step / rel > 1.03 and len(points) < max_points:
                    rejected = (step, nres, solver.state())
                    solver.warm_start(state)
                    step = float(np.sqrt(rel * step))
                    nres = solve(step)
                    factor = float(np.sqrt(factor))
                if nres.density > 0.9 * res.density:
                    factor = min(2.5, factor * 1.5)
                rel, res = step, nres
        return sorted(points.items())

    # A curve only has to rank its points (nonzeros against cost), so its solves stop at
    # looser tolerances; the chosen density is then searched at the full ones.  Measured on
    # the Fashion MLP's second layer (1600 samples): 31.9 s -> 14.0 s for the same 19 points,
    # densities within 2-5% of the tight solves.  On its first layer (1600 samples, down to 2%
    # kept) 300 iterations at most instead of 1000: 78.7 s -> 45.1 s; the points below 10%
    # kept stop at the limit with 4-25% more nonzeros, and their cost is measured on what they
    # are, so the ranking stays sound.
    CURVE_SETTINGS = dict(tol=1e-2, dual_tol=5e-2, max_iter=300)
    # Residual balancing's bias toward the primal for a curve's warm-started points (after its
    # first, cold, solve, which keeps the default's 10: at 3 it was still 21% over eps after
    # 300 iterations).  Warm started from a feasible neighbour, those solves are held back by
    # the dual residual instead: at the default bias Fashion-MNIST's first layer (1200 rows)
    # ended its sparse points at the 300-iteration limit with the primal residual at 4e-4,
    # 25x under tol, and objectives up to 5% above bias 3's.  Bias 3 (2 was within 4%):
    # that curve 22.2 -> 10.4 s; the Fashion MLP at 90% removed 60 -> 37 s (parallel), the
    # Fashion CNN 56 -> 50 s.  (At the full tolerances the default's 10 stays: 3 was 2x slower
    # there.)
    PATH_BIAS = 3.0

    @contextlib.contextmanager
    def along_path(self, solver):
        """The solver's residual balancing for the warm-started solves of a path (after its
        first) for the duration of a ``with``; an ``adapt_bias`` of the method's options is kept."""
        own = solver.settings.adapt_bias
        if "adapt_bias" not in self.options:
            solver.update_settings(adapt_bias=self.PATH_BIAS)
        try:
            yield
        finally:
            solver.update_settings(adapt_bias=own)

    @contextlib.contextmanager
    def loose(self, solvers):
        """The solvers at the curve's tolerances for the duration of a ``with``."""
        keep = {k: self.options.get(k, getattr(DEFAULTS, k)) for k in self.CURVE_SETTINGS}
        loose = {k: max(v, keep[k]) if k != "max_iter" else min(v, keep[k]) for k, v in self.CURVE_SETTINGS.items()}
        for s in solvers:
            s.update_settings(**loose)
        try:
            yield
        finally:
            for s in solvers:
                s.update_settings(**keep)

    def finish(self, problem, best, nm=None, quick=False, support=None):
        """The layer's weights from a solution: its N:M pattern re-fitted, or its support re-fitted
        from it (never further from the outputs than it), or (``refit=False``) the l1 solution itself.
        ``support``: a larger support than the solution's to re-fit on, from the solution.

        ``quick``: instead of the re-fit, each output's weights and bias scaled by the one
        factor that fits it best on Omega (one pass over the responses, for ranking many
        solutions; with the bound, the inactive outputs stay inactive since the solution's are
        <= 0)."""
        if not nm and self.refit == "none":
            return best.weight, best.bias
        if quick and not nm and problem.V is None:
            return _scaled(problem, best)
        X, Y = problem.X, problem.Y
        if nm:
            # Net-Trim's nonzeros rank first (by |u| ||x||), the rest by the trained weights' Wanda score.
            trained = wanda_scores(X, problem.W)
            mask = n_of_m(np.where(best.weight != 0, wanda_scores(X, best.weight) + trained.max() + 1, trained), *nm)
            # The bounded heuristic: the relu re-fit's Newton method crawls on such dense
            # supports (2:4 on the Fashion MLP's first layer, 1600 rows: more unknowns than
            # active rows for some outputs, 6 of them at the step limit, 41 s against 1.8 s).
            return refit_on_support(X, Y, mask, relu=problem.relu, V=problem.V, fit_bias=problem.has_bias,
                                    bias=problem.b)
        # From the solution itself, so that the result errs no more than it: the least squares
        # on its support with the inactive outputs' ReLU error counted ("relu": the layer's
        # output error ||ReLU(X w + b) - Y|| stays within eps), or with them kept inactive
        # ("bounded": Net-Trim's program on the support, whose bounds cost accuracy as rows
        # are added; see refit_on_support).
        mask = best.weight != 0 if support is None else support
        # (a residual layer's problem is shifted: its inactive outputs' ReLU outputs are not the
        # layer's, and only the bounded re-fit is its program; see problem._residual_problem)
        return refit_on_support(X, Y, mask, relu=problem.relu, V=problem.V, fit_bias=problem.has_bias,
                                bias=problem.b, start=(best.weight, best.bias),
                                inactive="bounded" if problem.shift is not None else self.refit)
