"""The pruning problem of one layer (one group of it), as every method sees it.

A layer's problem is built from two signals (docs: "Whole networks"):

- ``X_original``: the layer's inputs on the trained network, which give the target
  ``Y = act(X_original W + b)`` and the active set ``Omega = {Y > 0}``;
- ``X_pruned``: the inputs the pruned layer will see, the pruned network's (cascade) or
  the same ``X_original`` (parallel, and the first layer of the cascade).

In the cascade some weights must stay feasible on the pruned signals: inactive outputs are
bounded by ``V = X_pruned W + b`` instead of 0, and the tolerance may not fall below
``eps_floor = gamma ||(X_pruned U0 + b0 - Y)_Omega||`` for a feasible ``U0``: the trained
weights (``floor="trained"``, the papers' choice), or the trained weights re-fitted by least
squares to the pruned signals (``floor="refit"``), which meet the same bound and may err much
less when the layers before were pruned hard, so that the layer may keep more weights.
Where that bound keeps more weights than a target allows, the search relaxes it to
``max(V, 0)`` (see ``NetTrim.prune``).

With ``inactive="relu"`` the inactive outputs have no bound (``V`` is None): their ReLU
outputs count in the error, and so in the floor, with those of Omega.

The re-fitted floor is computed only when an eps below the trained weights' error asks for it
(:class:`Floor`): that error bounds it from above, and most searches stay above it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from .errors import InvalidArgument


class Floor:
    """The smallest eps a layer may be given (the cascade's ``eps_floor``), computed when first
    needed.  ``bound`` is at least the floor and cheap (the trained weights' error on the pruned
    signals); ``compute()``, when given, returns the floor itself, which may cost a re-fit of
    every weight (``floor="refit"``: 3.4 s bounded, 2.5 s counted, on the Fashion MLP's second
    layer with 10,000 samples).  An eps at or above ``bound`` never needs it: of the two
    re-fits in a cascade at 90% removed there, the search for one stayed above its bound.
    The values are those computed eagerly, bit for bit."""

    def __init__(self, bound: float = 0.0, compute: Optional[Callable[[], float]] = None):
        self.bound = float(bound)
        self._compute = compute
        self._value = None if compute is not None else self.bound

    @property
    def computed(self) -> bool:
        return self._value is not None

    @property
    def value(self) -> float:
        if self._value is None:
            self._value = float(self._compute())
            self._compute = None
        return self._value

    def at_least(self, x: float) -> float:
        """``max(x, floor)``, the floor computed only when ``x`` is below its bound (exact: the
        floor never exceeds its bound, rounding included, since both are the same expression
        of a smaller and a larger error)."""
        return x if x >= self.bound else max(x, self.value)

    def scaled(self, numerator: float, denominator: float) -> "Floor":
        """This floor times ``numerator / denominator``, still deferred: a share of it (a subset
        of the rows, a block of outputs), or, with numerator 1, it relative to a scale (eps_rel)."""
        if self.computed:
            return Floor(self.value * numerator / denominator if self.value else 0.0)
        return Floor(self.bound * numerator / denominator if self.bound else 0.0,
                     lambda: self.value * numerator / denominator if self.value else 0.0)


@dataclass
class LayerProblem:
    name: str                 # the layer's name, with "/g" for a group of a grouped convolution
    X: np.ndarray             # (P, n_in) inputs the pruned weights act on
    Y: np.ndarray             # (P, M) target: the trained layer's response to its original inputs
    W: np.ndarray             # (n_in, M) trained weights
    b: Optional[np.ndarray]   # (M,) trained bias, or None for a layer without one
    relu: bool
    V: Optional[np.ndarray] = None   # (P, M) bound on inactive outputs (cascade); None: 0
    floor: Floor = field(default_factory=Floor)   # smallest eps that keeps the trained weights feasible
    on_pruned_signals: bool = False   # X is the pruned network's (cascade), not the trained one's
    inactive: str = "bounded"   # Omega^c kept below V (0), or its ReLU outputs counted in the error
                                # (the program asked for; a linear layer has no Omega^c)
    shift: Optional[np.ndarray] = None   # (M,) the residual program's shift (see _residual_problem):
                                         # Y, V and b are the layer's plus it; None: no shift
    skip: Optional[np.ndarray] = None    # (P, M) the residual program's skip signal on these rows

    @property
    def eps_floor(self) -> float:
        """The floor's value (computing it if it was deferred)."""
        return self.floor.value

    @property
    def omega(self):
        return self.Y > 0 if self.relu else np.ones(self.Y.shape, bool)

    @property
    def counted(self):
        """Whether the inactive outputs' ReLU outputs count in the error (``inactive="relu"``)."""
        return self.relu and self.inactive == "relu"

    def error(self, A):
        """The error that eps bounds, of pre-activations ``A``: on Omega, and (``counted``) the
        inactive outputs' ReLU outputs."""
        return float(np.linalg.norm(np.where(self.omega, A - self.Y, np.maximum(A, 0) if self.counted else 0)))

    @property
    def has_bias(self):
        return self.b is not None

    @property
    def scale(self):
        """||Y_Omega||: what eps_rel is relative to (1 when the outputs are all zero)."""
        # (summed in float64: a float32 norm can fall below the engine's, so that eps_rel 1
        # would miss the ball that makes U = 0 the answer)
        return float(np.linalg.norm(self._target_on_omega())) or 1.0

    def _target_on_omega(self):
        """The target on Omega, 0 elsewhere, in float64, without the residual program's shift."""
        Y = self.Y.astype(np.float64)
        return np.where(self.omega, Y if self.shift is None else Y - self.shift, 0)

    @property
    def size(self):
        return self.W.size

    def restricted(self, start, stop):
        """The problem of output neurons ``start:stop`` only (a block, see
        :class:`nettrim.schemes.BlockJob`); the floor is shared in proportion to the outputs' norm."""
        cols = slice(start, stop)
        block = LayerProblem(f"{self.name}[{start}:{stop}]", self.X, self.Y[:, cols], self.W[:, cols],
                             None if self.b is None else self.b[cols], self.relu,
                             None if self.V is None else self.V[:, cols], on_pruned_signals=self.on_pruned_signals,
                             inactive=self.inactive, shift=None if self.shift is None else self.shift[cols],
                             skip=None if self.skip is None else self.skip[:, cols])
        block.floor = self.floor.scaled(block.scale, self.scale)
        return block

    def rows(self, rows):
        """The problem on calibration rows ``rows`` only (a search on a subset, see
        ``NetTrim.search_rows``); the floor is shared in proportion to the outputs' norm."""
        subset = LayerProblem(self.name, self.X[rows], self.Y[rows], self.W, self.b, self.relu,
                              None if self.V is None else self.V[rows], on_pruned_signals=self.on_pruned_signals,
                              inactive=self.inactive, shift=self.shift,
                              skip=None if self.skip is None else self.skip[rows])
        subset.floor = self.floor.scaled(subset.scale, self.scale)
        return subset

    def eps(self, eps_rel, per_neuron=False, floors=None):
        """The absolute tolerance for ``eps_rel``, never below the floor; ``per_neuron``: one
        per output, relative to that output's norm on Omega (the floor shared likewise), and
        never below that output's own least-squares floor where ``floors`` gives them (a
        compressed solver's ``floor``; zeros where unknown)."""
        if not per_neuron:
            return self.floor.at_least(float(eps_rel) * self.scale)
        norms = np.linalg.norm(self._target_on_omega(), axis=0)
        # (with a margin, so that skipping the floor cannot change a rounding of the maximum)
        floor = self.floor.value if float(eps_rel) * self.scale <= self.floor.bound * (1 + 1e-9) else 0.0
        eps = np.maximum(float(eps_rel) * norms, floor * norms / self.scale)
        # The floor shared out by the outputs' norms may be below an output's own: no solution there.
        return eps if floors is None else np.maximum(eps, np.asarray(floors) * (1 + 1e-6))

    def outputs(self, A):
        """``(responses, target)`` of the layer's output before its activation for pre-activations
        ``A`` (for measuring errors): ``A`` and ``Y`` themselves, or for the residual program the
        sums with the skip, the shift taken out (the target 0 where the trained sum is not active)."""
        if self.shift is None:
            return A, self.Y
        return A - self.shift + self.skip, np.where(self.omega, self.Y - self.shift + self.skip, 0)

    def layer_bias(self, bias):
        """The layer's bias (float32, zeros for a layer without one) from a solution's ``bias``
        for this problem: the residual program's shift taken out again."""
        out = np.zeros(self.W.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32)
        return out if self.shift is None else (out - self.shift).astype(np.float32)


FLOORS = ("trained", "refit")
INACTIVE = ("bounded", "relu")


def sample_rows(n_rows, max_rows, seed=0):
    """The indices of at most ``max_rows`` of ``n_rows`` rows (a seeded subset, in order), or
    None for all of them: the rows a layer's curve is solved on, and its searches after
    (:meth:`LayerProblem.rows` takes them)."""
    if max_rows is None or n_rows <= max_rows:
        return None
    return np.sort(np.random.default_rng([seed, 11]).choice(n_rows, max_rows, replace=False))


def layer_problems(layer, X_original, X_pruned=None, gamma=1.0, floor="trained",
                   inactive="bounded", refit=None) -> List[LayerProblem]:
    """One problem per group of ``layer`` (Dense or Conv2d) from its unfolded inputs.

    ``X_pruned`` None means the same as ``X_original`` (parallel scheme, first cascade layer).
    ``inactive``: Net-Trim's treatment of the inactive outputs ("bounded" or "relu", see
    :func:`nettrim.prune_layer`); it decides the bound and the floor.  ``refit``: with
    ``floor="refit"``, the re-fit of every weight to the pruned signals that the floor
    measures, ``refit(problem) -> (weights, bias)`` (:func:`nettrim.methods.refit.kept_dense`;
    the scheme passes it in: a problem is data, and knows no method)."""
    if X_pruned is not None and floor == "refit" and refit is None:
        raise InvalidArgument("refit: floor='refit' needs the re-fit that it measures (methods.refit.kept_dense)")
    problems = []
    counted = inactive == "relu" and bool(layer.relu)
    for g in range(layer.groups):
        cols = layer.input_columns(g)
        W, b = layer.group_matrix(g)
        Xg = np.ascontiguousarray(X_original[:, cols])
        Z = Xg @ W + b
        if layer.residual:
            skip = _skip_columns(layer, g)
            problems.append(_residual_problem(
                f"{layer.name}/{g}" if layer.groups > 1 else layer.name, Xg, Z, W, b, X_original[:, skip],
                None if X_pruned is None else (np.ascontiguousarray(X_pruned[:, cols]), X_pruned[:, skip]),
                gamma, floor, refit))
            continue
        Y = np.maximum(Z, 0) if layer.relu else Z
        name = layer.name if layer.groups == 1 else f"{layer.name}/{g}"
        problem = LayerProblem(name, Xg, Y, W, b if layer.has_bias else None, bool(layer.relu), inactive=inactive)
        if X_pruned is not None and counted:
            # No bound: the trained weights' error on the pruned signals, their inactive
            # outputs' ReLU outputs included, is the floor.
            Xs = np.ascontiguousarray(X_pruned[:, cols])
            problem.X = Xs
            problem.on_pruned_signals = True
            error = problem.error((Xs @ W + b).astype(np.float64))
            problem.floor = Floor(gamma * error, _refit_floor(problem, gamma, error, refit) if floor == "refit" else None)
        elif X_pruned is not None:
            Xs = np.ascontiguousarray(X_pruned[:, cols])
            V = Xs @ W + b
            problem.X = Xs
            problem.on_pruned_signals = True
            if layer.relu:
                # An output that never fires on the calibration data is 0 after the ReLU
                # whatever its pre-activations below 0: bounded by 0 rather than by the trained
                # weights' (negative) ones, it needs no weights (the relu re-fit zeroes them,
                # so that a search counting them landed short: digits CNN at 50% removed,
                # cascade, 46% kept).
                dead = ~problem.omega.any(axis=0)
                V[:, dead] = np.maximum(V[:, dead], 0)
            problem.V = V if layer.relu else None
            error = float(np.linalg.norm(np.where(problem.omega, V - Y, 0)))
            problem.floor = Floor(gamma * error, _refit_floor(problem, gamma, error, refit) if floor == "refit" else None)
        problems.append(problem)
    return problems


def _skip_columns(layer, g):
    """The columns of a residual layer's unfolded inputs that hold group ``g``'s skip signal:
    after every group's inputs (see :meth:`nettrim.graph.GraphModel.layer_inputs`)."""
    start = layer.matrix.shape[0] * layer.groups
    M = layer.matrix.shape[1] // layer.groups
    return slice(start + g * M, start + (g + 1) * M)


def _residual_problem(name, X, Z, W, b, S, pruned, gamma, floor, refit):
    """The problem of a layer whose output is added to a skip signal before its ReLU:
    ``relu(X U + c + S)`` should stay within eps of the trained ``relu(Z + S)``, ``Z = X W + b``
    (docs/formulation.rst, "Residual layers").

    On the calibration data ``S`` is fixed, so this is Net-Trim's ReLU program for ``X U + c``
    with the active set ``Omega = {Z + S > 0}``, the target ``Z + S - S_now`` there and the
    bound ``-S_now`` elsewhere (``S_now``: the skip as the layer sees it, the pruned network's
    in the cascade, where the bound is the trained weights' response so that they stay
    feasible, as for every layer).  The engine reads Omega from its target (``Y > 0``), and
    that target may be negative on Omega; so every output m is shifted by a constant
    ``shift_m`` that makes it positive there: target ``Y + shift``, bound ``V + shift``, bias
    ``b + shift``.  The fitted bias absorbs the constant (it is free and not penalised), so
    the program, its weights and its l1 norm are unchanged; :meth:`LayerProblem.layer_bias`
    takes the shift out of the solution's bias.  The inactive outputs stay bounded (their
    ReLU outputs, counted, would be those of the shifted sum)."""
    Omega = (Z + S) > 0
    if pruned is None:
        X_now, S_now = X, S
        V = -S
    else:
        X_now, S_now = pruned
        V = X_now @ W + b
        dead = ~Omega.any(axis=0)
        V[:, dead] = np.maximum(V[:, dead], -S_now[:, dead])     # (never active: the skip's bound is enough)
    T = Z + S - S_now
    low = np.where(Omega, T, np.inf).min(axis=0, initial=np.inf)
    count = np.maximum(Omega.sum(axis=0), 1)
    rms = np.sqrt(np.where(Omega, T.astype(np.float64) ** 2, 0).sum(axis=0) / count)
    shift = np.where(np.isfinite(low), np.maximum(-low, 0) + 0.01 * np.maximum(rms, 1e-6), 0).astype(np.float32)
    Y = np.where(Omega, T + shift, 0).astype(np.float32)
    problem = LayerProblem(name, X_now, Y, W, (b + shift).astype(np.float32), True, V=(V + shift).astype(np.float32),
                           on_pruned_signals=pruned is not None, inactive="bounded", shift=shift, skip=S_now)
    if pruned is not None:
        error = float(np.linalg.norm(np.where(Omega, X_now @ W + b - T, 0).astype(np.float64)))
        problem.floor = Floor(gamma * error, _refit_floor(problem, gamma, error, refit) if floor == "refit" else None)
    return problem


def _refit_floor(problem, gamma, error, refit):
    """``floor="refit"``: the trained weights' ``error``, or that of every weight re-fitted to the
    pruned signals by ``refit`` (``kept_dense``: under the bound V, or with the inactive outputs
    counted) when it errs less; computed when asked (see :class:`Floor`).  It keeps the
    problem's arrays, not the problem (which would then hold itself through its floor)."""
    name, X, Y, W, b, relu, V, inactive = (problem.name, problem.X, problem.Y, problem.W, problem.b, problem.relu,
                                           problem.V, problem.inactive)

    def compute():
        p = LayerProblem(name, X, Y, W, b, relu, V=V, on_pruned_signals=True, inactive=inactive)
        w, bias = refit(p)
        A = X @ w + (0 if bias is None else bias)
        # (the counted error in float64, as the trained weights' is measured above)
        return gamma * min(error, p.error(A.astype(np.float64) if p.counted else A))
    return compute


def inactive_of(method, target=None):
    """The inactive outputs' treatment the problems for ``method`` are built with: the target's
    (an allocation's per-layer choice), else Net-Trim's own (``NetTrim.inactive``; "auto",
    which only an allocation resolves, is "bounded" elsewhere), "bounded" for every other method."""
    if target is not None and target.inactive is not None:
        return target.inactive
    value = getattr(method, "inactive", "bounded")
    return "bounded" if value == "auto" else value

