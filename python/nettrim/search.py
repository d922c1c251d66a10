"""Finding the eps whose solution keeps a target fraction of the weights (docs: "Targets").

The number of nonzeros of a Net-Trim solution falls as eps grows, so a bracketing search
on log(eps_rel) finds the eps for a target density.
"""
from __future__ import annotations

import numpy as np

from .problem import Floor
from .report import Note


def search_eps(run, keep, floor_rel=0.0, *, start=0.05, steps=24, close=0.02, factor=4.0, slope=None, smallest=1e-3):
    """The smallest eps whose solution keeps at most ``keep`` of the weights: ``(best, note)``.

    ``run(eps_rel)`` solves and returns an object with ``density`` (nonzeros / weights);
    ``best`` is the chosen one of those, ``note`` None or a :class:`~nettrim.report.Note` for
    the user when the target cannot be reached (returned, not warned: searches run in worker
    threads).
    ``floor_rel``: the smallest eps_rel allowed, a number or a :class:`~nettrim.problem.Floor`
    (computed only if the search goes below its bound).  ``smallest``: the smallest eps_rel
    tried in any case (see allocation.lowest_eps).

    The number of nonzeros falls as eps grows (docs/formulation.rst, "Targets"): bracket on
    log(eps_rel) from ``start`` within [``smallest``, 1] (at eps_rel >= 1, U = 0 is the answer), then
    narrow the bracket, stopping early at a solution that keeps between ``(1 - close) * keep`` and
    ``keep``.  ``factor``: the bracketing step (4 from a guess; a start predicted from a layer's
    curve needs a small one: from such a start on a Fashion-MNIST first layer, a 4x step went
    to eps_rel 1 and its warm start cost the next solve 600 s).  ``slope``: d log(density) /
    d log(eps) near ``start`` when known (from the curve): the first step then aims at the
    window along it, within ``factor``.  ``run`` may warm start each solve from the one before
    (LayerSolver does): measured on the digits layers, warm starts across 4x steps of eps took
    0.5x to 1.5x the iterations of cold ones."""
    def step(res):
        """The ratio of the next eps to this one's while bracketing."""
        if slope is None or slope >= 0 or res.density <= 0:
            return factor if res.density > keep else 1 / factor
        ratio = float(np.exp(np.log((1 - close / 2) * keep / res.density) / slope))
        return min(max(ratio, 1.02), factor) if res.density > keep else \
            max(min(ratio, 1 / 1.02), 1 / factor)

    def good(res):
        return (1 - close) * keep <= res.density <= keep

    def stopped(res):
        return getattr(res, "status", "converged") in ("max_iterations", "time_limit")

    def levels_off(lo, d_lo, hi, d_hi):
        """Whether the density, extrapolated along its last step, reaches the window only
        below the smallest eps allowed.  The density of an l1 solution levels off as eps
        falls: near eps 0 it is the basis pursuit's, at most the active rows per output over
        the inputs (Fashion-MNIST's first layer on 1200 rows: 38.3% at eps_rel 0.005, 38.1% at
        0.007).  Without this stop a search for 39.8% there lowered eps to 1e-3, each solve
        slower than the last (six at 7000-10,000 iterations: 388 s, for nothing)."""
        if d_lo <= d_hi or d_hi <= 0:
            return True
        return out_of_reach(lo, d_lo, np.log(d_lo / d_hi) / np.log(lo / hi))

    def out_of_reach(rel, density, slope):
        """Whether the window lies below the smallest eps allowed along ``slope`` (< 0) from
        ``rel``, where the solution keeps ``density``."""
        return below_smallest(rel * ((1 - close / 2) * keep / density) ** (1 / slope))

    floor = floor_rel if isinstance(floor_rel, Floor) else Floor(floor_rel)

    def levelled_off(res, rel, seen_on=""):
        return res, Note(f"{1 - keep:.3g} removed is not reachable from below: the weights kept level off at "
                         f"{res.density:.3%} (eps_rel {rel:.3g}{seen_on}); {keep:.3%} would need eps_rel below "
                         f"{floor.at_least(smallest):.3g}", "unreachable_from_below")

    # The smallest eps allowed is max(floor, smallest); these ask for the floor itself only when
    # an eps is below its bound (a deferred floor may cost a re-fit, see Floor).
    def above_smallest(x):
        return x > smallest and (x > floor.bound or x > floor.value)

    def below_smallest(x):
        return x < smallest or (x < floor.bound and x < floor.value)

    lo = hi = min(1.0, floor.at_least(start))
    res = run(hi)
    if good(res):
        return res, None
    res_lo = res_hi = res
    if res.density > keep:
        while res_hi.density > keep and hi < 1.0:
            lo, res_lo = hi, res_hi
            hi = min(1.0, hi * step(res_hi))
            res_hi = run(hi)
        if res_hi.density > keep:
            return res_hi, Note(f"{1 - keep:.3g} removed is not reachable; at eps_rel {hi:.3g} "
                                f"{res_hi.density:.3%} of the weights are kept", "unreachable")
    else:
        # Along a curve's slope it shows at once when the window lies below the smallest eps
        # allowed (e.g. a curve's first, allocation.lowest_eps): no step down then.
        if slope is not None and slope < 0 and 0 < res_lo.density <= keep and out_of_reach(lo, res_lo.density, slope):
            return levelled_off(res_lo, lo, ", the layer's curve")
        while res_lo.density <= keep and above_smallest(lo):
            hi, res_hi = lo, res_lo
            lo = floor.at_least(max(lo * step(res_lo), smallest))
            res_lo = run(lo)
            if good(res_lo):
                return res_lo, None
            if res_lo.density <= keep and stopped(res_lo) and not stopped(res_hi):
                # Smaller eps converge ever more slowly (Fashion-MNIST's first layer on 1200
                # rows: 1450 iterations at eps_rel 0.005, over 10,000 at 0.0038 and below):
                # the solve that converged, and no further walk down.
                return res_hi, Note(f"{1 - keep:.3g} removed is not reachable from below: at eps_rel {lo:.3g} the "
                                    f"solve stopped at its iteration limit; returning eps_rel {hi:.3g}, "
                                    f"{res_hi.density:.3%} of the weights kept", "unreachable_from_below")
            if res_lo.density <= keep and res_lo.density <= res_hi.density and slope is not None and hi / lo < 1.25:
                # A short step aimed along the curve's slope can land within the solutions' own
                # scatter (the digits MLP's logits layer on 400 rows: 34.8% at eps_rel 0.0465,
                # 34.5% at 0.0455, then filled): a full step before the density is said to level off.
                slope = None      # (read by step(): the next step is the plain factor)
                continue
            if res_lo.density <= keep and levels_off(lo, res_lo.density, hi, res_hi.density):
                return levelled_off(res_lo, lo)
        if res_lo.density <= keep:   # even the smallest eps allowed keeps fewer
            return res_lo, Note(f"{1 - keep:.3g} removed is not reachable from below: at the smallest eps_rel "
                                f"allowed ({lo:.3g}{', the cascade floor' if floor.computed and lo == floor.value else ''}) "
                                f"{res_lo.density:.3%} of the weights are kept", "unreachable_from_below")
    # Regula falsi (Illinois variant) on density against log(eps), measured near-linear from
    # 50% down to 1% kept on the digits MLP: 3-5 solves land in the window that bisection
    # needed 7-9 for.  When one end has moved twice in a row the curve is stepping away
    # from the line and the next step bisects, so the search never does much worse than
    # bisection.
    aim = (1 - close / 2) * keep
    f_lo, f_hi, moved, run_length = res_lo.density - aim, res_hi.density - aim, None, 0
    for _ in range(steps):
        if hi / lo < 1.01 or good(res_hi):   # (a looser ratio once returned eps_rel 1, all zeros,
            break                          # for a layer whose density fell from 51% to 0 over the last 6%)
        t = 0.5 if run_length >= 2 or f_lo <= f_hi else min(max(f_lo / (f_lo - f_hi), 0.05), 0.95)
        mid = lo * (hi / lo) ** t
        res = run(mid)
        side = "lo" if res.density > keep else "hi"
        run_length = run_length + 1 if side == moved and run_length < 2 else 1
        if side == "lo":
            lo, res_lo, f_lo = mid, res, res.density - aim
            if moved == "lo":
                f_hi /= 2      # Illinois: weigh down the end that stays, so the next point nears it
        else:
            hi, res_hi, f_hi = mid, res, res.density - aim
            if moved == "hi":
                f_lo /= 2
        moved = side
    if res_hi.density < (1 - close) * keep and res_lo.density > keep:
        # The density jumps over the window (in cascade, a layer emptying takes the
        # layers after it along): keep the nearer side, the denser one when the sparser is
        # empty, rather than hand back a network with no weights.
        nearer = res_lo if res_hi.density == 0 or keep / res_hi.density > res_lo.density / keep else res_hi
        if abs(nearer.density / keep - 1) <= 2 * close:    # a small jump: nearly on target, nothing to say
            return nearer, None
        return nearer, Note(f"{1 - keep:.3g} removed is not reachable; the weights kept jump from "
                            f"{res_lo.density:.3%} to {res_hi.density:.3%}; returning {nearer.density:.3%}",
                            "unreachable")
    return res_hi, None
