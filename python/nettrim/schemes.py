"""The parallel and cascade schemes: which signals each layer is pruned on, and in what order.

- parallel: every layer on the trained network's own signals; the layers are independent
  jobs, run by an executor (any ``concurrent.futures``-style one: ``submit`` returning
  futures), ``workers`` threads by default;
- cascade: in order, each layer on the signals of the layers already pruned.

A layer's job (:class:`LayerJob`) is a plain, picklable object: the layer, the method and
its target.  Checkpoints are read and written here, in the calling process.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from .errors import InvalidArgument
from .methods.base import Target
from .metrics import constraint_violations, relative_error
from .problem import layer_problems
from .report import LayerReport
from .result import PrunedLayer

SCHEMES = ("parallel", "cascade")


@dataclass
class LayerJob:
    """Prune one layer (every group of it) with ``method`` to ``target``."""
    index: int
    layer: object
    method: object
    target: Target
    gamma: float = 1.0
    floor: str = "trained"

    def __call__(self, X_original, X_pruned=None):
        """``(matrices, biases, report, notes)`` of the pruned layer."""
        t0 = time.perf_counter()
        problems = layer_problems(self.layer, X_original, X_pruned, self.gamma, self.floor)
        outcomes = [self.method.prune(p, self.target) for p in problems]
        report = layer_report(self.layer, problems, outcomes, time.perf_counter() - t0, len(X_original))
        notes = [n for o in outcomes for n in o.notes]
        return ([np.asarray(o.weight, np.float32) for o in outcomes],
                [np.zeros(p.W.shape[1], np.float32) if o.bias is None else np.asarray(o.bias, np.float32)
                 for p, o in zip(problems, outcomes)], report, notes)


def run(net, X, plan, scheme, jobs, *, executor=None, workers=1, on_layer: Optional[Callable] = None,
        store=None, key=""):
    """Prune the layers of ``net`` that have a job (None: left as they are).

    ``jobs``: one :class:`LayerJob` (or None) per prunable layer; in the cascade also a
    function ``(k, reports so far) -> LayerJob or None``, called just before layer ``k``, so
    that a layer's target may follow from how the layers before it came out.  ``key``: the
    checkpoint key, or a function of the layer's index.
    Returns ``(pruned_net, reports, notes)``; ``reports`` has one entry per prunable layer."""
    pruned = net.copy()
    layers = pruned.layers
    reports: List[Optional[LayerReport]] = [None] * len(layers)
    notes: List[str] = []
    originals = net.layer_inputs(X, plan, range(len(layers)))   # every layer's inputs, trained network
    key_of = key if callable(key) else (lambda k: key)
    lazy = callable(jobs)
    if lazy and scheme != "cascade":
        raise InvalidArgument("jobs: a function of the layers done needs the cascade scheme")

    def finish(k, result):
        matrices, biases, report, layer_notes = result
        layers[k].set_groups(matrices, biases)
        reports[k] = report
        notes.extend(layer_notes)
        if on_layer:
            on_layer(k, report)

    def done(k, result):
        if store:
            store.put(key_of(k), k, *result[:3])
        finish(k, result)

    def start(k, job):
        """True when layer k still has work; a dense or checkpointed layer is finished here."""
        if job is None:
            reports[k] = dense_report(layers[k], len(originals[k]))
            return False
        saved = store.get(key_of(k), k) if store else None
        if saved is not None:
            finish(k, (*saved, []))
            return False
        return True

    if scheme == "parallel":
        todo = [k for k in range(len(layers)) if start(k, jobs[k])]
        own = executor is None
        pool = ThreadPoolExecutor(max_workers=max(1, int(workers))) if own else executor
        try:
            futures = {pool.submit(jobs[k], originals[k], None): k for k in todo}
            for future in as_completed(futures):
                done(futures[future], future.result())
        finally:
            if own:
                pool.shutdown(wait=True, cancel_futures=True)
    else:
        for k in range(len(layers)):
            job = jobs(k, reports) if lazy else jobs[k]
            if not start(k, job):
                continue
            # The pruned prefix (layers before k) gives this layer's inputs.
            X_pruned = None if k == 0 else pruned.layer_inputs(X, plan, [k])[k]
            done(k, job(originals[k], X_pruned))
    return pruned, reports, notes


def dense_report(layer, samples):
    """The report of a layer left as it is."""
    return LayerReport(name=layer.name, shape=tuple(layer.shape), nnz_before=layer.nnz(), nnz=layer.nnz(),
                       eps=0.0, eps_rel=0.0, relative_error=0.0, omega_violation=0.0, complement_violation=0.0,
                       iterations=0, solves=0, status="dense", seconds=0.0, samples=samples, pruned=False)


def layer_report(layer, problems, outcomes: List[PrunedLayer], seconds, samples) -> LayerReport:
    """One layer's report, its error and violations recomputed from the returned weights
    (for every method alike; the eps of a method without one is the error it reached)."""
    eps2 = omega2 = err2 = target2 = 0.0
    v_omega = v_comp = 0.0
    for p, o in zip(problems, outcomes):
        A = p.X @ o.weight + (0 if o.bias is None else o.bias)
        omega = p.omega
        eps = float(np.linalg.norm(np.where(omega, A - p.Y, 0))) if o.eps is None else o.eps
        bound = p.V if p.V is not None or not p.relu else np.zeros_like(A)
        vo, vc = constraint_violations(A, p.Y, omega, bound, eps)
        v_omega, v_comp = max(v_omega, vo), max(v_comp, vc if p.relu else 0.0)
        t2 = float(np.linalg.norm(p.Y)) ** 2
        err2 += relative_error(A, p.Y, "relu" if p.relu else "linear") ** 2 * t2
        target2 += t2
        eps2 += eps ** 2
        omega2 += float(np.linalg.norm(p.Y[omega])) ** 2
    eps = math.sqrt(eps2)
    statuses = [o.status for o in outcomes]
    return LayerReport(
        name=layer.name, shape=tuple(layer.shape), nnz_before=layer.nnz(),
        nnz=int(sum(np.count_nonzero(o.weight) for o in outcomes)), eps=eps,
        eps_rel=eps / (math.sqrt(omega2) or 1.0),
        relative_error=math.sqrt(err2 / target2) if target2 > 0 else 0.0,
        omega_violation=v_omega, complement_violation=v_comp,
        iterations=sum(o.iterations for o in outcomes), solves=sum(o.solves for o in outcomes),
        status=next((s for s in statuses if s not in ("converged", "done")), statuses[0]),
        seconds=seconds, samples=samples, search_seconds=sum(o.search_seconds for o in outcomes),
        final_seconds=sum(o.final_seconds for o in outcomes))
