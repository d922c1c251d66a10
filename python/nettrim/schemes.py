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

from .layer import ConvergenceWarning, prune_layer
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

    @property
    def nnz_before(self):
        return sum(r.nnz_before for r in self.layers)

    @property
    def nnz_after(self):
        return sum(r.nnz_after for r in self.layers)

    def to_dict(self):
        return {"scheme": self.scheme, "calibration_samples": self.calibration_samples,
                "seconds": self.seconds, "nnz_before": self.nnz_before, "nnz_after": self.nnz_after,
                "layers": [asdict(r) for r in self.layers]}

    @classmethod
    def from_dict(cls, d):
        layers = [LayerReport(**{**r, "shape": tuple(r["shape"])}) for r in d["layers"]]
        return cls(d["scheme"], layers, d["calibration_samples"], d["seconds"])


def prune_network(net: Network, calibration_inputs, *, scheme: str = "cascade", eps_rel: float = 0.05,
                  gamma: float = math.sqrt(1.1), sparsity: Optional[float] = None,
                  sparsity_scope: str = "network", max_samples: Optional[int] = 8000, seed: int = 0,
                  threads: int = 0, workers: int = 1, dtype="float32", checkpoint: Optional[str] = None,
                  on_layer: Optional[Callable[[int, LayerReport], None]] = None,
                  **solver_options):
    """Prune every layer of ``net`` with Net-Trim; returns ``(pruned_net, PruneReport)``.

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
    sparsity : float in (0, 1), optional
        Fraction of the weights to remove, found by a bisection on log(eps_rel).
    sparsity_scope : {"network", "layer"}
        "network": one eps_rel shared by all layers, chosen so that the whole network
        keeps ``1 - sparsity`` of its weights (layers with more redundancy give up more);
        "layer": every layer keeps ``1 - sparsity`` of its own weights.
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
        (``tol``, ``max_iter``, ``progress`` ...).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net: expected a nettrim.Network (see nettrim.adapters for models), got {type(net).__name__}")
    if scheme not in ("parallel", "cascade"):
        raise ValueError(f"scheme: expected 'parallel' or 'cascade', got {scheme!r}")
    if sparsity is not None and not (0 < float(sparsity) < 1):
        raise ValueError(f"sparsity: expected a fraction in (0, 1) of weights to remove, got {sparsity!r}")
    if not (gamma >= 1):
        raise ValueError(f"gamma: expected a value >= 1 (so the trained weights stay feasible), got {gamma!r}")
    if sparsity_scope not in ("network", "layer"):
        raise ValueError(f"sparsity_scope: expected 'network' or 'layer', got {sparsity_scope!r}")
    if max_samples is not None and int(max_samples) < 1:
        raise ValueError(f"max_samples: expected a positive number of rows or None, got {max_samples!r}")
    X = check_inputs(net, calibration_inputs, "calibration_inputs")
    t0 = time.perf_counter()
    job = _Job(net, X, scheme, gamma, threads, workers, dtype, solver_options,
               net.sample_positions(len(X), max_samples, seed))
    if checkpoint is not None:
        from .checkpoint import Checkpoint
        job.store = Checkpoint(checkpoint, net, X, dict(scheme=scheme, gamma=gamma, max_samples=max_samples,
                                                        seed=seed, dtype=str(dtype), threads=threads,
                                                        options=sorted((k, repr(v)) for k, v in solver_options.items()
                                                                       if k != "progress")))
    if sparsity is not None and sparsity_scope == "network":
        keep, total, tried = 1.0 - float(sparsity), net.size(), {}

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
    return pruned, PruneReport(scheme, reports, len(X), time.perf_counter() - t0)


@dataclass
class _Density:
    density: float
    rel: float


class _Job:
    """One network, its calibration data and settings; ``run`` does one pass of the scheme."""

    def __init__(self, net, X, scheme, gamma, threads, workers, dtype, options, plan):
        self.net, self.X, self.scheme, self.gamma = net, X, scheme, gamma
        self.threads, self.workers, self.dtype, self.options, self.plan = threads, workers, dtype, options, plan
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

        def finish(k, matrices, biases, report):
            layers[k].set_groups(matrices, biases)
            reports[k] = report
            if on_layer:
                on_layer(k, report)

        def solve(k, Xhat, threads):
            saved = self.store.get(key, k) if self.store else None
            if saved is not None:
                return finish(k, *saved)
            matrices, biases, report = _solve_layer(net.layers[k], self.original_inputs(k), Xhat, eps_rel,
                                                    sparsity, self.gamma, threads, self.dtype, self.options)
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


def _solve_layer(layer, Xin, Xhat, eps_rel, sparsity, gamma, threads, dtype, options):
    """One layer (every group of it): returns per-group weights and biases, and the report.

    ``Xhat`` is None for the parallel scheme and the first cascade layer; otherwise the
    pruned network's inputs, the responses to keep being those of ``Xin``."""
    t0 = time.perf_counter()
    mode = "relu" if layer.relu else "linear"
    matrices, biases, results, eps_used, target_norm2, omega_norm2, err2 = [], [], [], [], 0.0, 0.0, 0.0
    iterations = solves = 0
    for g in range(layer.groups):
        cols = layer.input_columns(g)
        W, b = layer.group_matrix(g)
        Xg = np.ascontiguousarray(Xin[:, cols])
        Z = Xg @ W + b
        target = np.maximum(Z, 0) if layer.relu else Z
        omega = target > 0 if layer.relu else np.ones(target.shape, bool)
        scale = float(np.linalg.norm(target[omega]))
        omega_norm2 += scale ** 2
        scale = scale or 1.0
        V, floor, Xs = None, 0.0, Xg
        if Xhat is not None:
            Xs = np.ascontiguousarray(Xhat[:, cols])
            Vfull = Xs @ W + b
            floor = gamma * float(np.linalg.norm((Vfull - target)[omega]))
            V = Vfull if layer.relu else None
        kw = dict(W=W, b=b if layer.has_bias else None, fit_bias=layer.has_bias, mode=mode, V=V, dtype=dtype,
                  threads=threads, **options)
        tried = []

        def run(rel, _warm):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                res = prune_layer(Xs, target, eps=max(rel * scale, floor), **kw)
            tried.append(res)
            return res

        best = run(eps_rel, None) if sparsity is None else _bisect_eps(run, 1.0 - float(sparsity), floor / scale)
        if best.status != "converged":
            warnings.warn(f"{layer.name}: {best.status} after {best.iterations} iterations", ConvergenceWarning)
        matrices.append(best.weights)
        biases.append(best.bias if best.bias is not None else np.zeros(W.shape[1], np.float32))
        results.append(best)
        eps_used.append(float(best.eps[0]))
        iterations += sum(r.iterations for r in tried)
        solves += len(tried)
        norm2 = float(np.linalg.norm(target)) ** 2
        target_norm2 += norm2
        err2 += best.relative_error ** 2 * norm2
    eps = math.sqrt(sum(e * e for e in eps_used))
    report = LayerReport(
        name=layer.name, shape=tuple(layer.shape), nnz_before=layer.nnz(),
        nnz_after=int(sum(np.count_nonzero(m) for m in matrices)), eps=eps,
        eps_rel=eps / (math.sqrt(omega_norm2) or 1.0),
        relative_error=math.sqrt(err2 / target_norm2) if target_norm2 > 0 else 0.0,
        omega_violation=max(r.omega_violation for r in results),
        complement_violation=max(r.complement_violation for r in results),
        iterations=iterations, solves=solves, status=_worst_status(results),
        seconds=time.perf_counter() - t0, samples=len(Xin))
    return matrices, biases, report


def _worst_status(results):
    statuses = [r.status for r in results]
    return next((s for s in statuses if s != "converged"), "converged")


def _bisect_eps(run, keep, floor_rel, steps=12, close=0.02):
    """The smallest eps whose solution keeps at most ``keep`` of the weights.

    The number of nonzeros falls as eps grows (formulation.md, section 4): bracket on
    log(eps_rel) from 0.05 within [1e-3, 1] (at eps_rel >= 1, U = 0 is the answer), then
    bisect, stopping early at a solution that keeps between ``(1 - close) * keep`` and
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
    for _ in range(steps):
        if hi / lo < 1.1 or good(res_hi):
            break
        mid = math.sqrt(lo * hi)
        res = run(mid, None)
        if res.density > keep:
            lo = mid
        else:
            hi, res_hi = mid, res
    return res_hi
