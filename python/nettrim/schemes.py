"""Whole networks: the parallel and cascade schemes (formulation.md, sections 3 and 4)."""
from __future__ import annotations

import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional

import numpy as np

from .errors import ConvergenceWarning
from .solver import LayerSolver
from .methods import LAYERWISE, METHODS, NM_CAPABLE, check_nm, n_of_m, refit_on_support
from .methods.refit import within_ball
from .metrics import constraint_violations, relative_error
from .network import Network, check_inputs


@dataclass
class LayerReport:
    name: str
    shape: tuple
    nnz_before: int
    nnz_after: int
    eps: float                 # absolute eps the layer was solved with (root sum of squares over groups)
    eps_rel: float             # eps / ||target on Omega||
    relative_error: float      # ||act(U^T Xin) - Y|| / ||Y|| on the calibration rows
    omega_violation: float
    complement_violation: float
    iterations: int            # summed over groups and the solves of an eps search
    solves: int
    status: str
    seconds: float
    samples: int = 0           # rows of the layer's problem (samples, or sampled patch positions)

    @property
    def density(self):
        return self.nnz_after / max(1, int(np.prod(self.shape)))


@dataclass
class PruneReport:
    scheme: str
    layers: List[LayerReport]
    calibration_samples: int
    seconds: float
    method: str = "nettrim"

    @property
    def nnz_before(self):
        return sum(r.nnz_before for r in self.layers)

    @property
    def nnz_after(self):
        return sum(r.nnz_after for r in self.layers)

    def to_dict(self):
        return {"scheme": self.scheme, "method": self.method, "calibration_samples": self.calibration_samples,
                "seconds": self.seconds, "nnz_before": self.nnz_before, "nnz_after": self.nnz_after,
                "layers": [asdict(r) for r in self.layers]}

    def summary(self) -> str:
        """A line of totals and the per-layer table (as the command line prints it)."""
        from .reporting import report_summary
        return report_summary(self)

    __str__ = summary

    @classmethod
    def from_dict(cls, d):
        layers = [LayerReport(**{**r, "shape": tuple(r["shape"])}) for r in d["layers"]]
        return cls(d["scheme"], layers, d["calibration_samples"], d["seconds"], d.get("method", "nettrim"))


def prune_network(net: Network, calibration_inputs, *, scheme: str = "cascade", eps_rel: float = 0.05,
                  gamma: float = math.sqrt(1.1), sparsity=None, sparsity_scope: str = "network",
                  method: str = "nettrim", nm=None, structured: bool = False, refit: bool = True,
                  max_samples: Optional[int] = 8000, seed: int = 0, threads: int = 0, workers: int = 1,
                  dtype="float32", checkpoint: Optional[str] = None,
                  on_layer: Optional[Callable[[int, LayerReport], None]] = None,
                  **solver_options):
    """Prune every layer of ``net`` (Net-Trim, or another method); returns ``(pruned_net, PruneReport)``.

    Parameters
    ----------
    net : Network
    calibration_inputs : array (P, ...) of the model's input shape (or flattened)
        Inputs on which the layers' responses are kept.
    scheme : {"parallel", "cascade"}
        parallel: every layer on the original network's signals (independent solves,
        ``workers`` of them at a time).  cascade: in order, each layer on the pruned
        network's signals, with the upper bound ``V = W^T Xhat`` on inactive outputs and
        ``eps = max(gamma * ||(W^T Xhat - X)_Omega||, eps_rel * ||X_Omega||)``, so that the
        trained weights stay feasible and ``eps_rel`` still sets the error budget.
    eps_rel : float
        Relative tolerance per layer (ignored when ``sparsity`` is given).
    sparsity : float in (0, 1), or one per layer, optional
        Fraction of the weights to remove.  For Net-Trim, found by a bisection on log(eps_rel).
    sparsity_scope : {"network", "layer"}
        "network": Net-Trim shares one eps_rel between all layers, chosen so that the whole
        network keeps ``1 - sparsity`` of its weights (layers with more redundancy give up
        more); magnitude pruning uses one global threshold; APoZ one ranking of neurons;
        Wanda, L-OBS and SparseGPT, which have no criterion comparable across layers, prune
        every layer by the same fraction (as their papers do).  "layer": every layer keeps
        ``1 - sparsity`` of its own weights.
    method : {"nettrim", "magnitude", "wanda", "lobs", "sparsegpt", "apoz"}
        The pruning method (see :mod:`nettrim.methods`); the others need ``sparsity`` or ``nm``.
        Every method sees the scheme's signals: in cascade, the pruned network's.
    nm : (N, M) or "N:M", optional
        N nonzeros in every M consecutive inputs of each output (e.g. "2:4"); fixes the
        sparsity at ``1 - N/M``.  Net-Trim solves at ``eps_rel``, keeps the N:M pattern
        of its solution's largest ``|u| ||x||`` and re-fits the kept weights.
    structured : bool
        Net-Trim with the group penalty: whole input neurons (rows) go; see
        :func:`nettrim.structured.shrink` for the smaller network.  APoZ is always structured.
    refit : bool
        Net-Trim: re-fit the nonzeros by least squares on their support, which undoes the
        l1 shrinkage (:func:`nettrim.methods.refit_on_support`).  On by default: on the
        digits MLP at 90% removed (cascade) it lifts test accuracy from 0.59 to 0.84.
    max_samples : int or None
        Rows per convolution problem: a seeded random subset of (sample, output pixel)
        positions when there are more.  Dense layers use every calibration sample.
    seed : int
        Seed of that subset.
    threads : int
        Engine threads per solve (0: all cores, divided among ``workers``).
    checkpoint : path, optional
        A directory where every finished layer is saved; rerunning the same call resumes
        after the last finished layer with the same result.
    on_layer : callable(index, LayerReport), optional
        Called as each layer finishes (progress).
    solver_options : further keyword arguments for :func:`nettrim.prune_layer`
        (``tol``, ``max_iter``, ``progress`` ...), or for the chosen method (``damp`` ...).
    """
    from ._validate import check_prune_network_arguments
    args = check_prune_network_arguments(
        net, calibration_inputs, scheme=scheme, eps_rel=eps_rel, gamma=gamma, sparsity=sparsity,
        sparsity_scope=sparsity_scope, method=method, nm=nm, structured=structured, refit=refit,
        max_samples=max_samples, seed=seed, threads=threads, workers=workers, dtype=dtype, checkpoint=checkpoint,
        on_layer=on_layer, solver_options=solver_options)
    eps_rel, gamma, sparsity, nm, structured = (args[k] for k in ("eps_rel", "gamma", "sparsity", "nm", "structured"))
    max_samples, seed, threads, workers = (args[k] for k in ("max_samples", "seed", "threads", "workers"))
    refit = args["refit"] and method == "nettrim"
    if structured:
        solver_options["penalty"] = "group"
    X = check_inputs(net, calibration_inputs, "calibration_inputs")
    t0 = time.perf_counter()
    job = _Job(net, X, scheme, gamma, threads, workers, dtype, solver_options,
               net.sample_positions(len(X), max_samples, seed), method, nm, refit)
    if checkpoint is not None:
        from .checkpoint import Checkpoint
        job.store = Checkpoint(checkpoint, net, X, dict(scheme=scheme, gamma=gamma, max_samples=max_samples,
                                                        seed=seed, dtype=str(dtype), threads=threads,
                                                        method=method, nm=nm, refit=refit,
                                                        options=sorted((k, repr(v)) for k, v in solver_options.items()
                                                                       if k != "progress")))
    network_wide = isinstance(sparsity, float) and sparsity_scope == "network"
    if method == "apoz":
        from .methods import apoz
        if not isinstance(sparsity, float):
            raise ValueError("sparsity: APoZ takes one fraction (neurons are ranked across layers or within each)")
        job.given = apoz(net, X, sparsity=sparsity, scope=sparsity_scope)
        pruned, reports = job.run(eps_rel, sparsity, on_layer)
    elif network_wide and method == "magnitude":
        pruned, reports = job.run(eps_rel, _global_magnitude(net, sparsity), on_layer)
    elif network_wide and method == "nettrim":
        keep, total, tried = 1.0 - sparsity, net.size(), {}

        def run(rel, _warm):
            tried[rel] = job.run(rel, None, None)
            return _Density(tried[rel][0].nnz() / total, rel)

        best = _bisect_eps(run, keep, 0.0)
        pruned, reports = tried[best.rel]
        for i, r in enumerate(reports):
            r.iterations = sum(rep[i].iterations for _, rep in tried.values())
            r.solves = len(tried)
            if on_layer:
                on_layer(i, r)
    else:
        pruned, reports = job.run(eps_rel, sparsity, on_layer)
    return pruned, PruneReport(scheme, reports, len(X), time.perf_counter() - t0, method)


def _check_sparsity(sparsity, n_layers):
    """None, a float in (0, 1), or a list with one fraction in [0, 1) per layer."""
    if sparsity is None:
        return None
    if np.ndim(sparsity) == 0:
        try:
            value = float(sparsity)
        except (TypeError, ValueError):
            value = float("nan")
        if not 0 < value < 1:
            raise ValueError(f"sparsity: expected a fraction in (0, 1) of weights to remove, got {sparsity!r}")
        return value
    values = [float(v) for v in np.ravel(sparsity)]
    if len(values) != n_layers or not all(0 <= v < 1 for v in values):
        raise ValueError(f"sparsity: expected one fraction in [0, 1) per layer ({n_layers} of them), got {sparsity!r}")
    return values


def _global_magnitude(net, sparsity):
    """Per-layer sparsities that one global threshold on |w| gives (Han et al. 2015)."""
    from .methods.masks import keep_count
    magnitudes = np.concatenate([np.abs(layer.matrix).ravel() for layer in net.layers])
    keep = keep_count(magnitudes.size, sparsity)
    order = np.argsort(-magnitudes, kind="stable")
    kept = np.zeros(magnitudes.size, bool)
    kept[order[:keep]] = True
    out, start = [], 0
    for layer in net.layers:
        out.append(1.0 - kept[start:start + layer.size].mean())
        start += layer.size
    return out


@dataclass
class _Density:
    density: float
    rel: float


class _Job:
    """One network, its calibration data and settings; ``run`` does one pass of the scheme."""

    def __init__(self, net, X, scheme, gamma, threads, workers, dtype, options, plan, method="nettrim", nm=None,
                 refit=False):
        self.net, self.X, self.scheme, self.gamma = net, X, scheme, gamma
        self.threads, self.workers, self.dtype, self.options, self.plan = threads, workers, dtype, options, plan
        self.method, self.nm, self.refit = method, nm, refit
        self.given = None      # a network whose weights are the answer (APoZ masks); its layers are reported
        self.store = None
        self._original_inputs = None

    def original_inputs(self, k):
        if self._original_inputs is None:   # every layer's input on the trained network, in one pass
            self._original_inputs = self.net.layer_inputs(self.X, self.plan, range(len(self.net.layers)))
        return self._original_inputs[k]

    def run(self, eps_rel, sparsity, on_layer):
        net = self.net
        pruned = net.copy()
        layers = pruned.layers
        reports: List[Optional[LayerReport]] = [None] * len(layers)
        key = f"eps{eps_rel!r}" if sparsity is None else f"sparsity{sparsity!r}"
        per_layer = sparsity if isinstance(sparsity, list) else [sparsity] * len(layers)

        def finish(k, matrices, biases, report):
            layers[k].set_groups(matrices, biases)
            reports[k] = report
            if on_layer:
                on_layer(k, report)

        def solve(k, Xhat, threads):
            saved = self.store.get(key, k) if self.store else None
            if saved is not None:
                return finish(k, *saved)
            method = _given(self.given.layers[k]) if self.given is not None else self.method
            matrices, biases, report = _solve_layer(net.layers[k], self.original_inputs(k), Xhat, eps_rel,
                                                    per_layer[k], self.gamma, threads, self.dtype, self.options,
                                                    method, self.nm, self.refit)
            if self.store:
                self.store.put(key, k, matrices, biases, report)
            finish(k, matrices, biases, report)

        if self.scheme == "parallel":
            n = max(1, int(self.workers))
            per = self.threads or (max(1, (os.cpu_count() or 1) // n) if n > 1 else 0)
            with ThreadPoolExecutor(max_workers=n) as pool:
                list(pool.map(lambda k: solve(k, None, per), range(len(layers))))
        else:
            for k in range(len(layers)):
                # The pruned prefix (layers before k) gives this layer's inputs.
                Xhat = None if k == 0 else pruned.layer_inputs(self.X, self.plan, [k])[k]
                solve(k, Xhat, self.threads)
        return pruned, reports


def _solve_layer(layer, Xin, Xhat, eps_rel, sparsity, gamma, threads, dtype, options, method="nettrim",
                 nm=None, refit=False):
    """One layer (every group of it): returns per-group weights and biases, and the report.

    ``Xhat`` is None for the parallel scheme and the first cascade layer; otherwise the
    pruned network's inputs, the responses to keep being those of ``Xin``.  ``method`` is
    Net-Trim or one of :data:`nettrim.methods.LAYERWISE` (given the same signals)."""
    t0 = time.perf_counter()
    matrices, biases, stats = [], [], []
    for g in range(layer.groups):
        cols = layer.input_columns(g)
        W, b = layer.group_matrix(g)
        Xg = np.ascontiguousarray(Xin[:, cols])
        Z = Xg @ W + b
        target = np.maximum(Z, 0) if layer.relu else Z
        omega = target > 0 if layer.relu else np.ones(target.shape, bool)
        V, floor, Xs = None, 0.0, Xg
        if Xhat is not None:
            Xs = np.ascontiguousarray(Xhat[:, cols])
            Vfull = Xs @ W + b
            floor = gamma * float(np.linalg.norm((Vfull - target)[omega]))
            V = Vfull if layer.relu else None
        if method == "nettrim" and not (sparsity == 0 and nm is None):
            weights, bias, st = _nettrim_group(layer, Xs, W, b, target, omega, V, floor, eps_rel, sparsity, nm,
                                               refit, threads, dtype, options)
        else:
            if sparsity == 0 and nm is None:
                prune = _keep_all
            else:
                prune = method if callable(method) else LAYERWISE[method]
            weights, bias = prune(Xs, W, b if layer.has_bias else None, sparsity=sparsity,
                                  **({"nm": nm} if nm else {}), **({} if callable(method) else _method_options(options)))
            st = _checked(Xs, weights, bias, target, omega, V, layer.relu, None, 0, 1, "done")
        matrices.append(np.asarray(weights, np.float32))
        biases.append(np.zeros(W.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32))
        stats.append(st)
    omega_norm2 = sum(st["omega_norm2"] for st in stats)
    target_norm2 = sum(st["target_norm2"] for st in stats)
    eps = math.sqrt(sum(st["eps"] ** 2 for st in stats))
    report = LayerReport(
        name=layer.name, shape=tuple(layer.shape), nnz_before=layer.nnz(),
        nnz_after=int(sum(np.count_nonzero(m) for m in matrices)), eps=eps,
        eps_rel=eps / (math.sqrt(omega_norm2) or 1.0),
        relative_error=(math.sqrt(sum(st["err2"] for st in stats) / target_norm2) if target_norm2 > 0 else 0.0),
        omega_violation=max(st["omega_violation"] for st in stats),
        complement_violation=max(st["complement_violation"] for st in stats),
        iterations=sum(st["iterations"] for st in stats), solves=sum(st["solves"] for st in stats),
        status=next((st["status"] for st in stats if st["status"] != "converged"), stats[0]["status"]),
        seconds=time.perf_counter() - t0, samples=len(Xin))
    return matrices, biases, report


def _method_options(options):
    """The options meant for another method: all but the engine's progress callback."""
    return {k: v for k, v in options.items() if k != "progress"}


def _keep_all(Xs, W, b, **_):
    return W, b


def _given(layer):
    """A method that returns ``layer``'s group matrices in turn (for weights decided network-wide)."""
    groups = iter(range(layer.groups))

    def given(Xs, W, b, **_):
        return layer.group_matrix(next(groups))
    return given


def _nettrim_group(layer, Xs, W, b, target, omega, V, floor, eps_rel, sparsity, nm, refit, threads, dtype,
                   options):
    """Net-Trim on one group: a solve at ``eps_rel`` or an eps search for ``sparsity``; with
    ``nm``, an N:M mask from that solution and a re-fit on it; with ``refit``, a re-fit on
    the solution's own support."""
    scale = float(np.linalg.norm(target[omega])) or 1.0
    # One solver per group: X^T X is factorised once for every eps the search tries, and
    # each solve is warm started from the one before.
    solver = LayerSolver(Xs, target, W=W, b=b if layer.has_bias else None, fit_bias=layer.has_bias,
                         mode="relu" if layer.relu else "linear", V=V, dtype=dtype, threads=threads, **options)
    tried = []

    def run(rel, _warm):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = solver.solve(eps=max(rel * scale, floor))
        tried.append(res)
        return res

    best = run(eps_rel, None) if sparsity is None else _bisect_eps(run, 1.0 - float(sparsity), floor / scale)
    if best.status != "converged":
        warnings.warn(f"{layer.name}: {best.status} after {best.iterations} iterations", ConvergenceWarning)
    iterations, solves = sum(r.iterations for r in tried), len(tried)
    eps = float(best.eps[0])
    if not (nm or refit):
        return best.weights, best.bias, _group_stats(target, omega, eps, best.relative_error, best.omega_violation,
                                                     best.complement_violation, iterations, solves, best.status)
    if nm:
        # Net-Trim's nonzeros rank first (by |u| ||x||), the rest by the trained weights' Wanda score.
        from .methods import wanda_scores
        trained = wanda_scores(Xs, W)
        mask = n_of_m(np.where(best.weights != 0, wanda_scores(Xs, best.weights) + trained.max() + 1, trained), *nm)
    else:
        mask = best.weights != 0
    weights, bias = refit_on_support(Xs, target, mask, relu=layer.relu, V=V, fit_bias=layer.has_bias,
                                     bias=b if layer.has_bias else None)
    if not nm:   # keep Net-Trim's guarantee: no further than eps from the outputs on Omega
        weights, bias = within_ball(Xs, target, omega, (best.weights, best.bias), (weights, bias), eps)
    return weights, bias, _checked(Xs, weights, bias, target, omega, V, layer.relu, eps, iterations, solves,
                                   best.status)


def _checked(Xs, weights, bias, target, omega, V, relu, eps, iterations, solves, status):
    """Report entries recomputed from the returned weights (for re-fits and the other methods,
    whose eps is the error they reach on Omega)."""
    A = Xs @ weights + (0 if bias is None else bias)
    omega_err = float(np.linalg.norm(np.where(omega, A - target, 0)))
    eps = omega_err if eps is None else eps
    v_omega, v_comp = constraint_violations(A, target, omega, V if V is not None or not relu else np.zeros_like(A),
                                            eps)
    return _group_stats(target, omega, eps, relative_error(A, target, "relu" if relu else "linear"), v_omega,
                        v_comp if relu else 0.0, iterations, solves, status)


def _group_stats(target, omega, eps, rel_error, v_omega, v_comp, iterations, solves, status):
    """One group's entries of the layer report (norms squared, so groups add up)."""
    target_norm2 = float(np.linalg.norm(target)) ** 2
    return {"eps": eps, "omega_norm2": float(np.linalg.norm(target[omega])) ** 2, "target_norm2": target_norm2,
            "err2": rel_error ** 2 * target_norm2, "omega_violation": v_omega, "complement_violation": v_comp,
            "iterations": iterations, "solves": solves, "status": status}


def _bisect_eps(run, keep, floor_rel, steps=24, close=0.02):
    """The smallest eps whose solution keeps at most ``keep`` of the weights.

    The number of nonzeros falls as eps grows (formulation.md, section 4): bracket on
    log(eps_rel) from 0.05 within [1e-3, 1] (at eps_rel >= 1, U = 0 is the answer), then
    narrow the bracket, stopping early at a solution that keeps between ``(1 - close) * keep`` and
    ``keep``.  Solves are cold: warm starts from the bracket's ends measured 10x slower
    (3700-6700 iterations against about 300) on the digits MLP."""
    def good(res):
        return (1 - close) * keep <= res.density <= keep

    lo = hi = max(floor_rel, 0.05)
    res = run(hi, None)
    if good(res):
        return res
    res_lo = res_hi = res
    if res.density > keep:
        while res_hi.density > keep and hi < 1.0:
            lo, res_lo = hi, res_hi
            hi = min(1.0, hi * 4)
            res_hi = run(hi, None)
        if res_hi.density > keep:
            warnings.warn(f"sparsity: {1 - keep:.3g} removed is not reachable; at eps_rel {hi:.3g} "
                          f"{res_hi.density:.3%} of the weights are kept", ConvergenceWarning, stacklevel=3)
            return res_hi
    else:
        while res_lo.density <= keep and lo > max(floor_rel, 1e-3):
            hi, res_hi = lo, res_lo
            lo = max(lo / 4, floor_rel, 1e-3)
            res_lo = run(lo, None)
            if good(res_lo):
                return res_lo
        if res_lo.density <= keep:
            return res_lo
    # Regula falsi (Illinois variant) on density against log(eps), measured near-linear from
    # 50% down to 1% kept on the digits MLP: 3-5 solves land in the window that bisection
    # needed 7-9 for.  When one end has moved three times in a row the curve is stepping
    # away from the line and the next step bisects, so the search never does worse than
    # bisection by more than a factor of three.
    aim = (1 - close / 2) * keep
    f_lo, f_hi, moved, run_length = res_lo.density - aim, res_hi.density - aim, None, 0
    for _ in range(steps):
        if hi / lo < 1.01 or good(res_hi):   # (a looser ratio once returned eps_rel 1, all zeros,
            break                          # for a layer whose density fell from 51% to 0 over the last 6%)
        t = 0.5 if run_length >= 2 or f_lo <= f_hi else min(max(f_lo / (f_lo - f_hi), 0.05), 0.95)
        mid = lo * (hi / lo) ** t
        res = run(mid, None)
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
        warnings.warn(f"sparsity: {1 - keep:.3g} removed is not reachable; the weights kept jump from "
                      f"{res_lo.density:.3%} to {res_hi.density:.3%}; returning {nearer.density:.3%}",
                      ConvergenceWarning, stacklevel=3)
        return nearer
    return res_hi
