"""Pruning a whole network: :func:`prune_network` (docs: "Whole networks").

It checks every argument, builds the method (Net-Trim or another, all behind the same
protocol, :mod:`nettrim.methods.base`), decides each selected layer's target (a tolerance,
a density, N:M; for a whole-network sparsity, :mod:`nettrim.allocation` shares it out),
and runs the scheme (:mod:`nettrim.schemes`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import allocation as alloc
from . import distributed, schemes
from ._threads import blas_threads
from .checkpoint import Checkpoint
from .errors import ConvergenceWarning, InvalidArgument, InvalidArgumentType, TargetWarning
from .methods import METHODS, Given, Layerwise, NetTrim, Target, apoz
from .methods.masks import keep_count
from .network import Network
from .options import PruneOptions, solves_relu
from .problem import INACTIVE, LayerProblem, layer_problems
from .reconstruction import reconstruct
from .report import LayerReport, Note, PruneReport, StageReport
from .search import search_eps


def prune_network(net: Network, calibration_inputs, *, scheme: str = "cascade", eps_rel: float = 0.05,
                  gamma: float = math.sqrt(1.1), floor: str = "refit", sparsity=None, scope: str = "network",
                  allocation: str = "curves", layers=None, method: str = "nettrim", nm=None,
                  structured: bool = False, refit=True, inactive: Optional[str] = None,
                  max_samples: Optional[int] = 8000, seed: int = 0,
                  holdout: float = 0.2, final_refit: bool = True, reconstruct=False, stages: int = 1,
                  threads: int = 0, workers: int = 1, executor=None,
                  block_outputs: Optional[int] = None, memory_budget=None, dtype="float32",
                  checkpoint: Optional[str] = None, on_layer: Optional[Callable[[int, LayerReport], None]] = None,
                  on_trial: Optional[Callable] = None, options: Optional[PruneOptions] = None, **solver_options):
    """Prune the layers of ``net`` (Net-Trim, or another method); returns ``(pruned_net, PruneReport)``.

    Parameters
    ----------
    net : Network
    calibration_inputs : array (P, ...) of the model's input shape (or flattened)
        Inputs on which the layers' responses are kept.
    scheme : {"parallel", "cascade"}
        parallel: every layer on the original network's signals (independent solves, run by
        ``executor`` or ``workers`` threads).  cascade: in order, each layer on the pruned
        network's signals, with the upper bound ``V = W^T Xhat`` on inactive outputs and
        ``eps = max(gamma * ||(W^T Xhat - X)_Omega||, eps_rel * ||X_Omega||)``, so that the
        trained weights stay feasible and ``eps_rel`` still sets the error budget.
    floor : {"refit", "trained"}
        Cascade: the tolerance floor is ``gamma`` times the error on the pruned signals of the
        trained weights re-fitted by least squares to those signals ("refit", default), or of
        the trained weights themselves ("trained", the papers').  Both stay feasible; the
        re-fitted ones err less after hard pruning upstream, so later layers may keep the
        weights their allocation gives them: digits MLP (cascade, curves), test accuracy at
        90% / 95% removed 0.944 / 0.929 with "refit" against 0.931 / 0.844 with "trained".
    eps_rel : float
        Relative tolerance per layer (ignored when ``sparsity`` is given).
    sparsity : float in (0, 1), or one per selected layer, optional
        Fraction of the (selected layers') weights to remove.
    scope : {"network", "layer"}
        "network": the fraction is for the selected layers together, shared out by
        ``allocation`` (Net-Trim), one global threshold (magnitude), one ranking of neurons
        (APoZ), or the same fraction per layer (Wanda, L-OBS and SparseGPT, which have no
        criterion comparable across layers, as their papers do).  "layer": every layer
        keeps ``1 - sparsity`` of its own weights.
    allocation : {"curves", "shared", "uniform"}
        Net-Trim, whole-network sparsity: "curves" (default) computes each layer's solution
        path once and chooses one point per layer for the least output discrepancy on
        held-out calibration samples (see :mod:`nettrim.allocation`); "shared" searches one
        eps_rel for every layer (re-running the scheme per trial); "uniform" prunes every
        layer by the same fraction.
    layers : list of names or indices, optional
        The layers to prune (default: all); the others stay dense and are reported as such.
        E.g. the fully connected layers of a CNN only.
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
    refit : {"relu", "bounded", "none"} or bool
        Net-Trim: re-fit the nonzeros by least squares on their support, from the l1 solution,
        which undoes its shrinkage (:func:`nettrim.methods.refit_on_support`). ``"relu"``
        (default, ``True``): the inactive outputs' ReLU error counts, so the re-fit minimises a
        bound of the layer's output error, which stays within eps; ``"bounded"``: they stay
        inactive (Net-Trim's program on the support); ``"none"`` (``False``): the l1 solution.
        Measured on the Fashion MLP with 10,000 calibration samples, 95% removed: test accuracy
        0.825 with "relu", 0.781 with "bounded" (cascade); 0.817 / 0.763 (parallel).
    inactive : {"auto", "relu", "bounded"}
        Net-Trim: the outputs each layer's ReLU sets to 0 on the calibration data.  "relu":
        their ReLU outputs are counted in the error with the active outputs' (the ball then
        bounds the layer's own output error); "bounded": each is held at or below 0 (or the
        cascade's bound V), the papers' program (see :func:`nettrim.prune_layer` and the docs,
        "Inactive outputs").  "auto" (default): a whole-network ``sparsity`` with
        ``allocation="curves"`` is met with each program and the network whose outputs err less
        on the held-out samples is kept (about twice the time; ``report.inactive_choice`` says
        which and why); elsewhere "bounded".  Neither wins everywhere: at 95% removed, test
        accuracy with "relu" / "bounded": digits CNN 0.902 / 0.687 (parallel), 0.958 / 0.931
        (cascade); digits MLP 0.849 / 0.902, 0.918 / 0.944; Fashion MLP 0.840 / 0.832 (cascade).
    max_samples : int or None
        Rows per convolution problem: a seeded random subset of (sample, output pixel)
        positions when there are more.  Dense layers use every calibration sample.
    seed : int
        Seed of that subset and of the held-out samples.
    holdout : float in [0, 0.5]
        With allocation "curves": the fraction of the calibration samples (at most 1000) set
        aside to measure output discrepancies; the layers are solved on the rest.
    final_refit : bool
        Parallel scheme: once every layer is pruned, the last layer (when it is linear, the
        logits) keeps its support and is re-fitted by least squares to the trained network's
        outputs on the pruned network's signals (one forward pass), so that it makes up for the
        errors of the layers before it, as in the cascade.  Any method.  Fashion MLP, 90%
        removed: test accuracy 0.788 without, 0.846 with.
    reconstruct : bool, or {"mse", "kl"}
        Once the layers are pruned, re-fit every kept weight and bias at once, without labels,
        so that the pruned network's outputs match the trained network's on the calibration
        inputs (masked gradient steps, the best epoch on held-out samples kept; see
        :func:`nettrim.reconstruct`; needs PyTorch, except for a chain of dense layers, and is
        asked for before anything is pruned).  The discrepancy lowered: the outputs'
        squared error ("mse", or True), or, for a classifier whose outputs are logits, the
        divergence of its class probabilities ("kl"; the better one there: at 95% removed,
        Fashion CNN 0.860 against 0.848).  ``report.reconstruction``
        says the held-out discrepancy before and after; the per-layer figures are the
        layer-wise pruning's.  With ``stages``, after every stage.
    stages : int
        Reach a ``sparsity`` in this many whole-network targets, each pruning the network the
        last one left, on its signals, with its own allocation: the fraction removed after stage
        t of k is ``sparsity * (1 - (1 - t/k)^3)`` (the cubic schedule of gradual pruning: most
        weights go while the network is dense, the last ones a few at a time).  With
        ``reconstruct``, each stage's network is re-fitted to the trained network's outputs
        before the next stage prunes it.  ``report.stages`` says what each stage did; the
        per-layer figures are the last stage's, with every stage's solves and time.  1 (default):
        one-shot.
    threads : int
        Engine threads per solve (0: automatic, following the machine's load).  The count does
        not change Net-Trim's result: on the same machine (the same processors available) a
        run repeats bit for bit with any number, 0 included (README, "Threads").
    workers, executor
        Parallel scheme: layers solved at a time by a thread pool of ``workers``, or by an
        ``executor``: any ``concurrent.futures``-style one (``submit`` returning futures; a
        ``ProcessPoolExecutor``), or a ``dask.distributed.Client``, whose workers get each
        layer's inputs once (see :mod:`nettrim.distributed`).  With ``allocation="curves"`` the
        layers' solution paths run on the executor too.  The cascade is sequential and ignores it.
    block_outputs : int, optional
        Parallel scheme: a layer with more output neurons is solved in blocks of this many, each
        a job of its own (for layers too large for one worker).  One constraint per neuron:
        the same program.  The joint constraint: each block within ``eps_rel`` of its own
        outputs, a feasible and slightly tighter program (see :class:`nettrim.schemes.BlockJob`).
    memory_budget : bytes (int) or a string such as "2GiB", optional
        Choose the calibration rows of every layer (a seeded subset, dense layers included) so
        that the estimated memory stays within the budget; the report's ``samples`` per layer
        and a note say what was chosen.
    dtype : {"float32", "float64"}
    checkpoint : path, optional
        A directory where every finished layer is saved; rerunning the same call resumes
        after the last finished layer with the same result.
    on_layer : callable(index, LayerReport), optional
        Called as each layer finishes (progress), on the calling thread.
    on_trial : callable(layer_name, kind, number, eps_rel, density), optional
        Net-Trim: called as each solve of an eps search ("search trial") or of a layer's
        solution path ("curve point") ends, from the thread solving it.
    options : PruneOptions, optional
        All of the options above at once, already checked (:meth:`PruneOptions.checked`, as
        the ``nettrim`` command builds them before reading the model); the keyword arguments
        are then ignored.
    solver_options : further keyword arguments for :class:`nettrim.LayerSolver`
        (``tol``, ``max_iter``, ``progress`` ...), or for the chosen method (``damp`` ...).
    """
    if "sparsity_scope" in solver_options:         # the name before version 0.2
        warnings.warn("prune_network: sparsity_scope is now called scope", DeprecationWarning, stacklevel=2)
        scope = solver_options.pop("sparsity_scope")
    if options is None:
        options = PruneOptions.checked(
            scheme=scheme, eps_rel=eps_rel, gamma=gamma, floor=floor, sparsity=sparsity, scope=scope,
            allocation=allocation, layers=layers, method=method, nm=nm, structured=structured, refit=refit,
            inactive=inactive, max_samples=max_samples, seed=seed, holdout=holdout, final_refit=final_refit,
            reconstruct=reconstruct, stages=stages,
            threads=threads, workers=workers, executor=executor, block_outputs=block_outputs,
            memory_budget=memory_budget, dtype=dtype, checkpoint=checkpoint, on_layer=on_layer, on_trial=on_trial,
            solver_options=solver_options)
    elif not isinstance(options, PruneOptions):
        raise InvalidArgumentType(f"options: expected a nettrim.PruneOptions (PruneOptions.checked(...)), got "
                                  f"{type(options).__name__}")
    elif solver_options:
        raise InvalidArgumentType(f"{next(iter(solver_options))}: with options=, every option goes in the "
                                  "PruneOptions (its solver_options)")
    options, X = options.for_network(net, calibration_inputs)
    return _prune(net, X, options)


def stage_sparsities(sparsity, stages):
    """The targets of a staged run: after stage t of k, ``sparsity * (1 - (1 - t/k)^3)`` of the
    weights removed (per layer when ``sparsity`` is one fraction per layer); the last is
    ``sparsity`` itself."""
    def at(t):
        share = 1.0 - (1.0 - t / stages) ** 3
        return tuple(s * share for s in sparsity) if isinstance(sparsity, tuple) else sparsity * share
    return [at(t) for t in range(1, stages)] + [sparsity]


def _prune(net, X, o: PruneOptions):
    """``prune_network`` with its options checked: in one stage, or in several."""
    if o.stages == 1:
        pruned, report = _prune_once(net, X, o)
        _warn(report)
        return pruned, report
    t0 = time.perf_counter()
    # Each stage prunes the network the last stage left, against that network's signals.  Against
    # the trained network's signals instead, every stage would solve the one-shot run's programs
    # (Net-Trim's program depends on the signals, not on the weights it starts from), and the
    # stages would only cost time.  Reconstruction pulls each stage's network back to the trained
    # network's outputs, so that the stages' errors do not add up.
    current, stages, runs = net, [], []
    sizes = {k: net.layers[k].size for k in o.layers}
    total = sum(sizes.values())
    targets = stage_sparsities(o.sparsity, o.stages)
    for t, sparsity in enumerate(targets, 1):
        begin = time.perf_counter()
        pruned, report = _prune_once(current, X, dataclasses.replace(o, sparsity=sparsity, stages=1,
                                                                     reconstruct=False))
        if t < len(targets):
            report.notes = [Note(f"stage {t} of {len(targets)}: {n}", getattr(n, "kind", "other"),
                                 getattr(n, "layer", None)) for n in report.notes]
            _warn(report, stage=t)
        rebuilt = None
        if o.reconstruct:
            pruned, rebuilt = reconstruct(pruned, net, X, loss=o.reconstruct, seed=o.seed)
        asked = sparsity if isinstance(sparsity, float) else sum(s * sizes[k] for k, s in zip(o.layers, sparsity)) / total
        removed = 1.0 - sum(pruned.layers[k].nnz() for k in o.layers) / max(1, total)
        stages.append(StageReport(t, asked, removed, time.perf_counter() - begin, rebuilt))
        runs.append(report)
        current = pruned
    report = runs[-1]
    _warn(report)                                   # (the earlier stages' notes were warned as they came)
    for k, layer in enumerate(report.layers):      # the trained network's counts, every stage's work
        layer.nnz_before = net.layers[k].nnz()
        for earlier in runs[:-1]:
            done = earlier.layers[k]
            layer.iterations += done.iterations
            layer.solves += done.solves
            layer.search_seconds += done.search_seconds
            layer.final_seconds += done.final_seconds
            layer.seconds += done.seconds
    report.seconds = time.perf_counter() - t0
    report.stages = stages
    report.reconstruction = stages[-1].reconstruction
    report.notes = [n for r in runs[:-1] for n in r.notes] + list(report.notes)
    return current, report


def _prune_once(net, X, o: PruneOptions):
    """``prune_network`` in one stage."""
    solver_options = dict(o.solver_options)
    backend = solver_options.get("backend", "cpu")
    inactive = o.inactive
    bounded_only = inactive == "auto" and not solves_relu(backend)
    if bounded_only:     # (said before anything runs, not by the first layer's solve)
        inactive = "bounded"
    selected = list(o.layers)
    sparsity = list(o.sparsity) if isinstance(o.sparsity, tuple) else o.sparsity
    max_samples, threads, on_trial = o.max_samples, o.threads, o.on_trial
    max_rows = None
    budget_note = None
    if o.memory_budget is not None:
        max_rows, budget_note = _rows_for_budget(net, len(X), o)
        if max_rows is not None:
            max_samples = max_rows if max_samples is None else min(max_samples, max_rows)
    adapted = distributed.as_executor(o.executor)
    remote = o.executor is not None and not isinstance(o.executor, ThreadPoolExecutor)
    if remote:                   # callbacks of this process: they would run (or fail to pickle) elsewhere
        on_trial = None
        solver_options = {k: v for k, v in solver_options.items() if k != "progress"}
    t0 = time.perf_counter()
    if o.workers > 1 and threads == 0 and o.executor is None:   # the engine's threads shared among the workers
        threads = max(1, (os.cpu_count() or 1) // o.workers)
    method = METHODS[o.method]
    # Net-Trim's heavy work runs in the engine, on its own threads; numpy's BLAS (forward passes,
    # the curves' quick fits) then runs on one.  Measured (Fashion MLP, 90% removed, 10,000
    # samples, threads=2, 2 cores): 43.4 s -> 35.4 s cascade, 41.4 s -> 36.0 s parallel, numpy's
    # threads beside the engine's costing more than they gave; and numpy's products round
    # differently with their thread count (X^T X at 1347 x 257: 1e-4), which followed the
    # machine's load.  The other methods' work is numpy's: it keeps the idle cores.
    with blas_threads(1 if method.name == "nettrim" else None):
        run = _Run(net, X, o, max_samples=max_samples, max_rows=max_rows, executor=adapted, remote=remote)
        if o.checkpoint is not None:
            # Every option that decides a layer's result (not the callbacks, the executor, the
            # thread counts: the result does not depend on them, README "Threads").
            run.store = Checkpoint(o.checkpoint, net, X, dict(
                scheme=o.scheme, eps_rel=o.eps_rel, gamma=o.gamma, floor=o.floor, sparsity=o.sparsity, scope=o.scope,
                allocation=o.allocation, layers=selected, method=o.method, nm=o.nm, structured=o.structured,
                refit=o.refit, inactive=inactive, max_samples=max_samples, max_rows=max_rows, seed=o.seed,
                holdout=o.holdout, final_refit=o.final_refit, block_outputs=o.block_outputs, dtype=str(o.dtype),
                options=sorted((k, repr(v)) for k, v in solver_options.items() if k not in ("progress", "threads"))))
        if bounded_only:
            run.notes.append(Note(f"inactive='auto' ran the bounded program only: the {backend!r} backend has no "
                                  "'relu'", kind="network"))
        network_wide = o.network_wide
        if method.network == "allocation":       # Net-Trim
            options = dict(solver_options, inactive=inactive, **({"penalty": "group"} if o.structured else {}))
            if on_trial is not None:
                options["on_trial"] = on_trial
            nettrim = NetTrim(refit=o.refit, dtype=o.dtype, threads=threads, options=options)
            if network_wide and o.allocation == "curves":
                pruned, reports = _by_curves(run, nettrim, 1.0 - sparsity, o.holdout)
            elif network_wide and o.allocation == "shared":
                pruned, reports = _shared_eps(run, nettrim, 1.0 - sparsity)
            else:
                pruned, reports = run.all(nettrim, _targets(selected, o.eps_rel, sparsity, o.nm))
        elif method.network == "neurons":        # APoZ: whole neurons, ranked for the network at once
            given = apoz(net, X, sparsity=sparsity, scope=o.scope)
            chosen = Given({p.name: (p.W, p.b) for k in selected for p in _problems_of(given.layers[k])})
            pruned, reports = run.all(chosen, {k: Target() for k in selected})
        else:
            layerwise = Layerwise(method.name, method.layerwise, _method_options(solver_options))
            if network_wide and method.network == "global":
                sparsity = _global_magnitude(net, selected, sparsity)
            pruned, reports = run.all(layerwise, _targets(selected, o.eps_rel, sparsity, o.nm))
    if adapted is not o.executor:
        adapted.shutdown()                   # releases the data scattered to the cluster
    reconstruction = None
    if o.reconstruct:
        pruned, reconstruction = reconstruct(pruned, net, X, loss=o.reconstruct, seed=o.seed)
    report = PruneReport(o.scheme, reports, run.samples, time.perf_counter() - t0, o.method,
                         o.allocation if network_wide and method.name == "nettrim" else None, run.notes,
                         rows=max_rows, memory=budget_note, inactive_choice=run.inactive_choice,
                         held_out=run.held_out, reconstruction=reconstruction)
    return pruned, report


class _Run:
    """One network, its calibration data and the scheme's settings: runs the scheme for given
    per-layer targets (``all``), as often as an allocation needs."""

    def __init__(self, net, X, options: PruneOptions, *, max_samples, max_rows=None, executor=None, remote=False):
        """``options``: the run's (layers resolved); ``max_samples`` and ``max_rows``: the rows
        per convolution and per dense layer after a memory budget; ``executor``: the one jobs
        go to (an adapted Dask client), ``remote`` when it is another process or machine."""
        self.net, self.X = net, X
        self.scheme, self.gamma, self.floor, self.selected = options.scheme, options.gamma, options.floor, \
            list(options.layers)
        self.max_samples, self.seed, self.max_rows = max_samples, options.seed, max_rows
        self.executor, self.workers, self.on_layer = executor, options.workers, options.on_layer
        self.block_outputs, self.remote, self.final_refit = options.block_outputs, remote, options.final_refit
        self.store, self.notes = None, []
        self.held_out = 0               # samples set aside by hold_out
        self.inactive_choice = None     # inactive="auto": which program, and why
        self.plan = net.sample_positions(len(X), max_samples, self.seed, max_dense=max_rows)
        self.samples = len(X)

    def hold_out(self, fraction):
        """Set aside ``fraction`` of the samples (at most 1000, seeded) for measuring; returns them."""
        n = min(1000, int(round(fraction * len(self.X))))
        if n < 1 or len(self.X) - n < 1:
            return self.X
        order = np.random.default_rng([self.seed, 7]).permutation(len(self.X))
        held, kept = np.sort(order[:n]), np.sort(order[n:])
        H = self.X[held]
        self.held_out = len(H)
        self.X = self.X[kept]
        self.samples = len(self.X)
        self.plan = self.net.sample_positions(len(self.X), self.max_samples, self.seed, max_dense=self.max_rows)
        return H

    def all(self, method, targets, *, notify=True, key=None, in_process=False):
        """The scheme with ``targets``: {index: Target}, or (cascade) a function
        ``(k, reports so far) -> Target or None`` for the selected layers."""
        lazy = callable(targets)
        chosen = {}

        def job(k, reports=None):
            target = (targets(k, reports) if k in self.selected else None) if lazy else targets.get(k)
            chosen[k] = target
            return None if target is None else schemes.LayerJob(k, self.net.layers[k], method, target, self.gamma,
                                                                      self.floor)

        jobs = job if lazy else [job(k) for k in range(len(self.net.layers))]
        key = key or (lambda k: f"{method.name}-{chosen[k]!r}")
        executor = None if in_process and self.remote else self.executor
        pruned, reports, notes = schemes.run(self.net, self.X, self.plan, self.scheme, jobs, executor=executor,
                                             workers=self.workers, on_layer=self.on_layer if notify else None,
                                             store=self.store, key=key, block_outputs=self.block_outputs,
                                             final_refit=self.final_refit)
        self.notes.extend(notes)
        return pruned, reports


def _rows_for_budget(net, n_samples, o):
    """The most calibration rows per layer whose estimated memory fits ``o.memory_budget``
    (estimated from the shapes, before anything is allocated), and a note saying so."""
    budget = o.memory_budget

    def need(rows):
        return o.estimate(net, n_samples, max_samples=rows, max_dense=rows)["total"]

    most = max(r["P"] for r in net.memory_estimate(n_samples, scheme=o.scheme)["layers"])
    if need(most) <= budget:
        return None, None
    low, high = 0, most                    # need(low) fits (or low is 0), need(high) does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if need(mid) <= budget else (low, mid)
    if low < 1:
        raise InvalidArgument(f"memory_budget: {budget >> 20} MiB is not enough for even one calibration row "
                              f"(the calibration data and the layers' weights need about {need(1) >> 20} MiB)")
    return low, (f"memory_budget {budget / 2**20:.4g} MiB: each layer's problem uses at most {low} rows (a seeded "
                 f"subset of the calibration rows; estimated {need(low) / 2**20:.4g} MiB)")


def _targets(selected, eps_rel, sparsity, nm):
    if nm is not None:
        return {k: Target(nm=nm) for k in selected}
    if sparsity is None:
        return {k: Target(eps_rel=eps_rel) for k in selected}
    per = sparsity if isinstance(sparsity, list) else [sparsity] * len(selected)
    return {k: Target(keep=1.0 - s) for k, s in zip(selected, per)}


def _by_curves(run, nettrim, keep, holdout):
    """Whole-network sparsity by per-layer curves (nettrim.allocation); with
    ``inactive="auto"`` once per program, keeping the network that errs less on the held-out
    samples."""
    H = run.hold_out(holdout)
    held_out = alloc.held_out(run.net, H)
    originals = run.net.layer_inputs(run.X, run.plan, run.selected)
    if nettrim.inactive != "auto":
        return _by_curves_with(run, nettrim, keep, held_out, originals, nettrim.inactive)
    # Neither program wins everywhere, and nothing cheaper than the finished networks told them
    # apart: at 95% removed the counted form (relu) beat the bound on the digits CNN (test
    # accuracy 0.902 / 0.958 against 0.687 / 0.931, parallel / cascade) and lost on the digits
    # MLP (0.849 / 0.918 against 0.902 / 0.944), while the allocations' own discrepancies (quick
    # fits, one layer at a time) ranked the CNN's the wrong way; the finished networks'
    # held-out discrepancies ranked all four right.
    runs = []
    total = sum(run.net.layers[k].size for k in run.selected)
    for program in INACTIVE:
        before = len(run.notes)
        pruned, reports = _by_curves_with(run, nettrim, keep, held_out, originals, program, notify=False)
        runs.append(_ProgramRun(program, pruned, reports, run.notes[before:], run.allocation,
                                held_out.discrepancy({k: pruned.layers[k] for k in run.selected})))
        del run.notes[before:]

    def rank(r):
        # A network that missed its budget (a cascade capped by its floors) errs less for being
        # denser: it is kept only if both missed; a non-finite discrepancy never wins.
        missed = abs(sum(r.reports[k].nnz for k in run.selected) - r.allocation.budget) > 0.01 * total
        return missed, r.discrepancy if np.isfinite(r.discrepancy) else math.inf
    kept = min(runs, key=rank)
    other = next(r for r in runs if r is not kept)
    run.notes.extend(kept.notes)
    run.allocation = kept.allocation
    run.inactive_choice = (f"inactive outputs {'counted (relu)' if kept.program == 'relu' else 'bounded'}, chosen "
                           f"by inactive='auto': held-out output discrepancy {kept.discrepancy:.3g} against "
                           f"{other.discrepancy:.3g} {'bounded' if kept.program == 'relu' else 'counted'}")
    for r, o in zip(kept.reports, other.reports):      # (the other program's time is this run's too)
        if r is not None and o is not None:
            _charge(r, o)
    if run.on_layer:                         # (progress: the kept network's layers, once)
        for k in run.selected:
            run.on_layer(k, kept.reports[k])
    return kept.pruned, kept.reports


@dataclass
class _ProgramRun:
    """One program's run of an ``inactive="auto"`` target (see ``_by_curves``)."""
    program: str
    pruned: Network
    reports: list
    notes: list
    allocation: object
    discrepancy: float      # the pruned network's, on the held-out samples


def _by_curves_with(run, nettrim, keep, held_out, originals, inactive, notify=True):
    """``_by_curves`` with the layers' program ``inactive`` ("bounded" or "relu"); ``notify``:
    report each layer as it is done (``on_layer``)."""
    parallel = run.scheme == "parallel"
    # On another process or machine the curves are computed there (one job per layer), and the
    # chosen points are finished here: their solutions are here already, and cheap to finish.
    choice = alloc.allocate(run.net, originals, run.selected, keep, nettrim, held_out,
                            keep_solvers=parallel and not run.remote, executor=run.executor if run.remote else None,
                            inactive=inactive)
    run.allocation = choice
    # The searches below land within 1% of their layer's allocation, on the rows the curves were
    # solved on; each support is then re-fitted on every row.
    searcher = nettrim.searching(close=0.01, rows=alloc.CURVE_ROWS)
    if parallel:   # the chosen path points themselves; the fill layer searches between two points
        chosen = alloc.FromCurves(searcher, choice, {c.index: layer_problems(run.net.layers[c.index],
                                                                             originals[c.index], inactive=c.inactive)
                                                     for c in choice.curves})
        targets = {c.index: Target(keep=kp, inactive=c.inactive) for c, kp in zip(choice.curves, choice.keep)}
        pruned, reports = run.all(chosen, targets, key=lambda k: f"curves-{targets[k]!r}", in_process=True,
                                  notify=notify)
        for c in choice.curves:
            c.solvers = []       # (their factorisations: the memory goes now, not with the allocation)
    else:          # each layer on the pruned prefix, searched to its density: the allocation again
        def target(k, reports):   # for the layers left, under the budget left
            done = sum(reports[j].nnz for j in run.selected if j < k)
            return choice.cascade_target(k, done, searcher.close)

        before = len(run.notes)
        pruned, reports = run.all(searcher, target, notify=notify)
        # A layer of the cascade may be unable to keep what the re-plan gave it (its floor on
        # the pruned signals caps its density); what counts is the network's total, said once.
        names = {run.net.layers[k].name for k in run.selected}
        run.notes[before:] = [n for n in run.notes[before:]
                              if not (n.of_layer(names) and n.kind in ("unreachable", "unreachable_from_below"))]
        kept = sum(reports[k].nnz for k in run.selected)
        total = sum(run.net.layers[k].size for k in run.selected)
        if abs(kept - choice.budget) > 0.01 * total:      # more than 1% of the weights off
            run.notes.append(Note(f"{1 - choice.budget / total:.3g} removed: the cascade removed "
                                  f"{1 - kept / total:.3g} (the pruned signals' floors capped some layers)", "network"))
    for c, r in zip(choice.curves, (reports[k] for k in run.selected)):
        _charge(r, c)
    return pruned, reports


def _charge(report, work):
    """Adds ``work``'s solves (a curve's, or another program's layer) to a layer's report: they
    were spent searching for it."""
    report.iterations += work.iterations
    report.solves += work.solves
    report.search_seconds += work.seconds
    report.seconds += work.seconds


def _shared_eps(run, nettrim, keep):
    """One eps_rel for every selected layer, searched by re-running the scheme per trial."""
    total = sum(run.net.layers[k].size for k in run.selected)
    tried = {}

    class Trial:
        def __init__(self, rel):
            self.rel = rel
            pruned, reports = run.all(nettrim, {k: Target(eps_rel=rel) for k in run.selected}, notify=False)
            tried[rel] = (pruned, reports)
            self.density = sum(reports[k].nnz for k in run.selected) / total

    best, note = search_eps(Trial, keep)
    if note:
        run.notes.append(note)
    rel = best.rel
    if best.density > keep:
        # (the density jumped over the search's window): the densest trial within the target,
        # since a requested sparsity is a ceiling on what is kept
        rel = min((r for r, (_, reports) in tried.items() if sum(reports[k].nnz for k in run.selected) <= keep * total),
                  default=max(tried))
    pruned, reports = tried[rel]
    for i, r in enumerate(reports):
        r.iterations = sum(rep[i].iterations for _, rep in tried.values())
        r.solves = sum(rep[i].solves for _, rep in tried.values())
        if run.on_layer:
            run.on_layer(i, r)
    return pruned, reports


def _problems_of(layer):
    out = []
    for g in range(layer.groups):
        W, b = layer.group_matrix(g)
        name = layer.name if layer.groups == 1 else f"{layer.name}/{g}"
        out.append(LayerProblem(name, None, None, W, b if layer.has_bias else None, layer.relu))
    return out


def _method_options(options):
    """The options meant for another method: all but the engine's progress callback."""
    return {k: v for k, v in options.items() if k != "progress"}


def _global_magnitude(net, selected, sparsity):
    """Per-layer sparsities that one global threshold on |w| gives (Han et al. 2015)."""
    magnitudes = np.concatenate([np.abs(net.layers[k].matrix).ravel() for k in selected])
    keep = keep_count(magnitudes.size, sparsity)
    order = np.argsort(-magnitudes, kind="stable")
    kept = np.zeros(magnitudes.size, bool)
    kept[order[:keep]] = True
    out, start = [], 0
    for k in selected:
        size = net.layers[k].size
        out.append(1.0 - kept[start:start + size].mean())
        start += size
    return out


def _warn(report, stage=None):
    """What the user must know, warned once on the calling thread; ``stage``: of which stage of a
    staged run, when not the last (its notes already say so)."""
    for note in report.notes:
        # (how the target was met or missed: the solves themselves converged)
        warnings.warn(f"sparsity: {note}", TargetWarning, stacklevel=4)     # (the caller of prune_network)
    limited = [r.name for r in report.layers if r.status in ("max_iterations", "time_limit")]
    if limited:
        warnings.warn(f"{'' if stage is None else f'stage {stage}: '}{', '.join(limited)}: the solve stopped at its iteration or time limit; raise max_iter "
                      f"or time_limit (--max-iter, --time-limit on the command line; the reported violations are "
                      f"those of the returned weights)",
                      ConvergenceWarning, stacklevel=4)
