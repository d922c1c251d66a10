"""One layer's program solved by every solver at hand, side by side (``nettrim bench``).

The solvers: nettrim's engine in float32 and float64, and in float64 with a certified gap
(``gap_tol``); its numpy reference iteration (:mod:`nettrim.reference`); and cvxpy with each
reference solver installed, Clarabel, SCS, ECOS, OSQP, where the program's form allows (OSQP
takes quadratic programs only: the regularized form).  Every returned matrix is judged alike,
from the matrix and the data in float64 (:mod:`nettrim.metrics`): objective, violations,
nonzeros.  With ``methods=True`` the other pruning methods prune the same layer to the same
nonzeros as nettrim, and their output errors are compared.

    report = nettrim.benchmark.bench_layer(X, W=W, b=b, eps_rel=0.05)
    print(report.table())
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import numpy as np

from . import reference, standard_forms
from .errors import ConvergenceWarning, InvalidArgument, NumericalWarning
from .methods import METHODS, NetTrim, Target
from .metrics import constraint_violations, objective
from .network import check_inputs
from .options import check_layer_selection
from .problem import LayerProblem, layer_problems
from .reporting import format_table
from .solver import LayerSolver

ENGINE = ("nettrim float32", "nettrim float64", "nettrim certified")
CVXPY_SOLVERS = ("CLARABEL", "SCS", "ECOS", "OSQP")
SOLVERS = ENGINE + ("reference",) + CVXPY_SOLVERS
"""Every solver ``bench_layer`` knows, in the order it runs them."""

CVXPY_MAX_NONZEROS = 30_000_000
"""cvxpy solvers are skipped above this many nonzero coefficients in the program (an estimate
from the shapes): cvxpy's canonicalisation alone then takes minutes and gigabytes."""

CERTIFIED_GAP = 1e-3
"""The relative gap the certified engine run stops at (``gap_tol``)."""


@dataclass
class BenchRow:
    """One solver's result on the layer, judged from its returned matrix."""
    solver: str
    status: str
    seconds: float = math.nan
    iterations: Optional[int] = None
    objective: float = math.nan
    gap_to_best: float = math.nan          # (objective - best) / best over the rows that meet the constraints
    certified_gap: Optional[float] = None  # the solver's own bound, where it has one
    omega_violation: float = math.nan      # relative to eps
    complement_violation: float = math.nan  # relative to the RMS of Y on Omega
    nnz: int = 0                           # entries above 1e-6 of the largest
    note: str = ""
    trace: List[tuple] = field(default_factory=list, repr=False)   # (seconds, objective, violation)
    matrix: Optional[np.ndarray] = field(default=None, repr=False)   # the engine's U (for the methods)

    @property
    def feasible(self):
        return max(self.omega_violation, self.complement_violation) <= 1e-3


@dataclass
class MethodRow:
    """A pruning method on the same layer at the same nonzeros: its output error."""
    method: str
    nnz: int
    relative_error: float
    seconds: float


@dataclass
class LayerBench:
    """What :func:`bench_layer` measured: a row per solver, the skipped ones with why."""
    layer: str
    shape: tuple                 # (P, N, M): samples, inputs with the bias, outputs
    eps_rel: float
    eps: float
    program: str                 # "relu, inactive=bounded, joint" or the like
    rows: List[BenchRow] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    methods: List[MethodRow] = field(default_factory=list)
    interrupted: bool = False

    def table(self) -> str:
        P, N, M = self.shape
        head = (f"{self.layer}: {N} inputs (bias included) x {P} samples x {M} outputs, {self.program}, "
                f"eps_rel {self.eps_rel:g} (eps {self.eps:.6g})")
        rows = [("solver", "status", "time s", "iters", "objective", "gap to best", "certified", "Omega viol.",
                 "Omega^c viol.", "nonzeros")]
        for r in self.rows:
            rows.append((r.solver, r.status, f"{r.seconds:.3f}", "" if r.iterations is None else str(r.iterations),
                         f"{r.objective:.6g}", f"{r.gap_to_best:.1e}" if math.isfinite(r.gap_to_best) else "",
                         "" if r.certified_gap is None else f"{r.certified_gap:.1e}", f"{r.omega_violation:.1e}",
                         f"{r.complement_violation:.1e}", str(r.nnz)))
        text = head + "\n" + format_table(rows)
        if self.methods:
            methods = [("method", "nonzeros", "rel. output error", "time s")]
            methods += [(m.method, str(m.nnz), f"{m.relative_error:.4f}", f"{m.seconds:.3f}") for m in self.methods]
            text += "\n\nThe same layer pruned to nettrim's nonzeros by each method:\n" + format_table(methods)
        for line in self.skipped:
            text += f"\nskipped: {line}"
        if self.interrupted:
            text += "\ninterrupted: the rows above are the solvers that finished"
        return text

    __str__ = table

    def to_dict(self):
        d = asdict(self)
        for r in d["rows"]:
            r.pop("trace")
            r.pop("matrix")
        return d

    def plot(self, path):
        """The objective and the constraint violation against time, a line per solver (a point for
        the interior-point solvers, which give no iterates), as a PNG."""
        try:
            import matplotlib
        except ImportError:
            raise ImportError("the plot needs matplotlib: pip install \"nettrim[bench]\"") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        best = min((r.objective for r in self.rows if r.feasible), default=None)
        for r in self.rows:
            trace = r.trace or ([(r.seconds, r.objective, max(r.omega_violation, r.complement_violation))]
                                if math.isfinite(r.objective) else [])
            if not trace:
                continue
            t, obj, viol = (np.array(v, dtype=float) for v in zip(*trace))
            style = "-o" if len(t) > 1 else "o"
            ax1.plot(t, obj if best is None else np.abs(obj - best) / best + 1e-12, style, ms=3, label=r.solver)
            ax2.plot(t, np.maximum(viol, 1e-12), style, ms=3, label=r.solver)
        ax1.set(xscale="log", yscale="log", xlabel="seconds",
                ylabel="objective" if best is None else "|objective - best| / best", title=self.layer)
        ax2.set(xscale="log", yscale="log", xlabel="seconds", ylabel="largest violation (relative)")
        ax2.axhline(1e-3, color="grey", lw=0.8, ls="--")
        ax1.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def bench_layer(X, Y=None, W=None, b=None, *, name: str = "layer", eps_rel: float = 0.05, mode: str = "relu",
                constraint: str = "joint", inactive: str = "bounded", V=None, solvers=None,
                time_limit: float = 60.0, threads: int = 0, trace: bool = False, methods: bool = False,
                progress: Optional[Callable[[str], None]] = None) -> LayerBench:
    """The layer's program (as :func:`nettrim.prune_layer` takes it) solved by each of ``solvers``
    (default: all of :data:`SOLVERS`), each within ``time_limit`` seconds; a :class:`LayerBench`.

    ``trace``: also each iterative solver's objective and violation against time, for
    :meth:`LayerBench.plot` (the engine solved again at growing iteration limits, the reference
    recorded at its checks).  ``methods``: also magnitude, Wanda, L-OBS and SparseGPT at
    nettrim's nonzeros (needs ``W``).  ``progress(message)`` hears each solver start.  Ctrl-C
    stops the solver under way and returns the rows so far (``interrupted``)."""
    wanted = list(SOLVERS if solvers is None else solvers)
    unknown = [s for s in wanted if s not in SOLVERS]
    if unknown:
        raise InvalidArgument(f"solvers: {unknown[0]!r} is not one of {', '.join(SOLVERS)}")
    if methods and W is None:
        raise InvalidArgument("methods: comparing the pruning methods needs the trained weights W")
    say = progress or (lambda message: None)
    base = LayerSolver(X, Y, W, b, V=V, mode=mode, constraint=constraint, inactive=inactive, dtype="float64",
                       threads=threads)
    Xs, Yd = base.Xs, base.Ys
    relu = mode == "relu"
    e = base.eps_for(eps_rel)
    program = f"{mode}" + (f", inactive={inactive}" if relu else "") + f", {constraint}"
    bench = LayerBench(name, base.shape, float(eps_rel), float(np.linalg.norm(e)), program)
    judge = _Judge(Xs, Yd, base.V if relu else None, e, constraint, inactive, relu)
    try:
        for solver in wanted:
            say(f"{solver}: solving")
            row = _run(solver, base, X, Y, W, b, V, Xs, Yd, e, dict(mode=mode, constraint=constraint,
                       inactive=inactive), time_limit, threads, trace, judge, bench.skipped)
            if row is not None:
                bench.rows.append(row)
                say(f"{solver}: {row.status} in {row.seconds:.2f} s")
    except KeyboardInterrupt:
        bench.interrupted = True
    feasible = [r.objective for r in bench.rows if r.feasible and math.isfinite(r.objective)]
    if feasible:
        best = min(feasible)
        for r in bench.rows:
            r.gap_to_best = (r.objective - best) / best if best > 0 else r.objective - best
    if methods and not bench.interrupted:
        bench.methods = _methods(bench, X, Y if Y is not None else None, W, b, relu)
    return bench


def bench_network_layer(net, X, layer, *, max_samples: Optional[int] = 8000, seed: int = 0, **options) -> LayerBench:
    """:func:`bench_layer` on the prunable layer ``layer`` (name or index) of ``net``, with its inputs
    and outputs in the trained network on the calibration inputs ``X`` (a convolution's rows:
    ``max_samples`` positions, seeded).  A grouped convolution's first group is the one measured."""
    X = check_inputs(net, X)
    try:
        k = check_layer_selection(net, [layer])[0]
    except InvalidArgument as e:          # (one layer here: the argument is ``layer``)
        raise InvalidArgument(str(e).replace("layers:", "layer:", 1)) from None
    plan = net.sample_positions(len(X), max_samples, seed)
    inputs = net.layer_inputs(X, plan, [k])[k]
    problems = layer_problems(net.layers[k], inputs)
    p = problems[0]
    name = p.name + (f" (group 0 of {len(problems)})" if len(problems) > 1 else "")
    return bench_layer(p.X, W=p.W, b=p.b, name=name, mode="relu" if p.relu else "linear", **options)


class _Judge:
    """Every returned matrix's figures from the matrix and the data, in float64."""

    def __init__(self, Xs, Y, V, eps, constraint, inactive, relu):
        self.Xs, self.Y, self.eps, self.constraint, self.inactive = Xs.astype(np.float64), Y, eps, constraint, inactive
        self.omega = Y > 0 if relu else np.ones(Y.shape, bool)
        self.V = (np.zeros(Y.shape) if V is None else V) if relu else None

    def __call__(self, U):
        U = np.asarray(U, np.float64)
        A = self.Xs @ U
        eps = self.eps[0] if self.constraint == "joint" else self.eps
        vo, vc = constraint_violations(A, self.Y, self.omega, self.V, eps, self.constraint, inactive=self.inactive)
        big = float(np.abs(U).max(initial=0.0))
        return objective(U), vo, vc, int(np.count_nonzero(np.abs(U) > 1e-6 * big)) if big > 0 else 0


def _run(solver, base, X, Y, W, b, V, Xs, Yd, e, program, time_limit, threads, trace, judge, skipped):
    if solver in ENGINE:
        return _engine(solver, X, Y, W, b, V, e, program, time_limit, threads, trace, judge)
    if solver == "reference":
        return _reference(Xs, Yd, base, e, program, time_limit, trace, judge)
    return _cvxpy(solver, Xs, Yd, base, e, program, time_limit, judge, skipped)


def _engine(solver, X, Y, W, b, V, e, program, time_limit, threads, trace, judge):
    dtype = "float32" if solver == "nettrim float32" else "float64"
    extra = dict(gap_tol=CERTIFIED_GAP) if solver == "nettrim certified" else {}
    s = LayerSolver(X, Y, W, b, V=V, dtype=dtype, threads=threads, time_limit=time_limit, **program, **extra)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = s.solve(eps=e)
    seconds = time.perf_counter() - t + s.setup_seconds
    obj, vo, vc, nnz = judge(r.U)
    row = BenchRow(solver, r.status, seconds, r.iterations, obj, certified_gap=r.gap if math.isfinite(r.gap) else None,
                   omega_violation=vo, complement_violation=vc, nnz=nnz, matrix=r.U)
    if trace:
        k = 10
        while k < r.iterations:
            s.update_settings(max_iter=k)
            s.warm_start("zero")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                partial = s.solve(eps=e, keep_state=False)
            o, a, c, _ = judge(partial.U)
            row.trace.append((s.setup_seconds + partial.solve_seconds, o, max(a, c)))
            k *= 2
        row.trace.append((seconds, obj, max(vo, vc)))
    return row


def _reference(Xs, Yd, base, e, program, time_limit, trace, judge):
    points = []
    t0 = time.perf_counter()

    def record(state):
        if trace:
            o, a, c, _ = judge(state["Z2"])
            points.append((time.perf_counter() - t0, o, max(a, c)))

    bias_row = base.N - 1 if base.fit_bias else None
    r = reference.solve(Xs.astype(np.float64), Yd.astype(np.float64), e, V=base.V, bias_row=bias_row,
                        time_limit=time_limit, callback=record, **program)
    seconds = time.perf_counter() - t0
    obj, vo, vc, nnz = judge(r.U)
    row = BenchRow("reference", r.status, seconds, r.iterations, obj, omega_violation=vo, complement_violation=vc,
                   nnz=nnz, note="numpy, float64")
    row.trace = points + ([(seconds, obj, max(vo, vc))] if trace else [])
    return row


def _cvxpy(solver, Xs, Yd, base, e, program, time_limit, judge, skipped):
    try:
        import cvxpy as cp
    except ImportError:
        skipped.append(f"{solver}: cvxpy is not installed (pip install \"nettrim[bench]\")")
        return None
    if solver not in cp.installed_solvers():
        skipped.append(f"{solver}: not installed")
        return None
    if solver == "OSQP":
        skipped.append("OSQP: the program has a second-order cone (the eps ball), which OSQP does not take")
        return None
    nonzeros = standard_forms.cbf_nonzeros(Xs, Yd, relu=program["mode"] == "relu")
    if nonzeros > CVXPY_MAX_NONZEROS:
        skipped.append(f"{solver}: about {nonzeros:,} nonzero coefficients, above the {CVXPY_MAX_NONZEROS:,} "
                       f"cvxpy is given (fewer samples would fit)")
        return None
    problem, U = standard_forms.to_cvxpy(Xs, Yd, e, relu=program["mode"] == "relu", constraint=program["constraint"],
                                         inactive=program["inactive"], V=base.V)
    limits = {"CLARABEL": dict(time_limit=time_limit), "SCS": dict(time_limit_secs=time_limit, eps_abs=1e-6,
                                                                    eps_rel=1e-6, max_iters=100000)}.get(solver, {})
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # (cvxpy's notes on solver accuracy)
            problem.solve(solver=getattr(cp, solver), **limits)
    except cp.error.SolverError as err:
        return BenchRow(solver, "failed", time.perf_counter() - t, note=str(err).splitlines()[0])
    seconds = time.perf_counter() - t
    if U.value is None:
        return BenchRow(solver, str(problem.status), seconds)
    obj, vo, vc, nnz = judge(U.value)
    stats = problem.solver_stats
    return BenchRow(solver, str(problem.status), seconds, getattr(stats, "num_iters", None), obj, omega_violation=vo,
                    complement_violation=vc, nnz=nnz)


def _methods(bench, X, Y, W, b, relu):
    """Each layer-wise pruning method at the nonzeros of nettrim's float64 weights."""
    ours = next((r for r in bench.rows if r.solver == "nettrim float64"), None) or \
        next((r for r in bench.rows if r.matrix is not None), None)
    if ours is None:
        return []
    Xd, Wd = np.asarray(X, np.float64), np.asarray(W, np.float64)
    bd = np.zeros(Wd.shape[1]) if b is None else np.asarray(b, np.float64)
    target = (Xd @ Wd + bd) if Y is None else np.asarray(Y, np.float64)
    target = np.maximum(target, 0) if relu and Y is None else target
    n_in = Wd.shape[0]
    weight, bias = ours.matrix[:n_in], (ours.matrix[n_in] if ours.matrix.shape[0] > n_in else None)
    keep = min(1.0, np.count_nonzero(weight) / Wd.size)

    def error(weight, bias):
        A = Xd @ np.asarray(weight, np.float64) + (0 if bias is None else np.asarray(bias, np.float64))
        out = np.maximum(A, 0) if relu else A
        return float(np.linalg.norm(out - target) / max(np.linalg.norm(target), 1e-300))

    # Net-Trim as a pruning method at that density: its search and the re-fit of the support
    # (what prune_network does), beside the l1 solution itself.
    t = time.perf_counter()
    problem = LayerProblem(bench.layer, Xd, target, Wd, bd if b is not None else None, relu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # (a search's notes)
        refitted = NetTrim(dtype="float64").prune(problem, Target(keep=keep))
    rows = [MethodRow("nettrim (l1 solution)", int(np.count_nonzero(weight)), error(weight, bias), ours.seconds),
            MethodRow("nettrim", refitted.nnz, error(refitted.weight, refitted.bias), time.perf_counter() - t)]
    for method in METHODS.values():
        if method.layerwise is None:
            continue
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)
            pruned = method.layerwise(Xd, Wd, bd if b is not None else None, sparsity=1.0 - keep)
        rows.append(MethodRow(method.name, pruned.nnz, error(pruned.weight, pruned.bias), time.perf_counter() - t))
    return rows
