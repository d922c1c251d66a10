"""What pruning a layer returns: :class:`PrunedLayer` (every method), :class:`LayerResult` (a Net-Trim
solve) and :class:`SolutionPath` (Net-Trim for many eps)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import scipy.sparse as sp


@dataclass(kw_only=True)
class PrunedLayer:
    """What pruning one layer returns, whatever the method.

    ``weight`` (n_in, M) is inputs by outputs, as the ``W`` it came from (``X @ W``);
    ``bias`` (M,) or None.  Methods with an iteration or a search say how it went in
    ``status``, ``iterations`` and ``solves``; ``eps`` is the absolute tolerance a Net-Trim
    layer was solved with.  ``kept_inactive`` is False where the inactive outputs were not
    held inactive (Net-Trim's ``refit="relu"``, whose promise is on the output error
    ``||ReLU(X w + b) - Y|| <= eps`` instead)."""

    weight: np.ndarray
    bias: Optional[np.ndarray]
    method: str = "nettrim"
    status: str = "done"
    eps: Optional[float] = None
    iterations: int = 0
    solves: int = 0
    seconds: float = 0.0
    search_seconds: float = 0.0       # finding the eps (a search, a solution path)
    final_seconds: float = 0.0        # the final solve or pruning and its re-fit
    notes: List[str] = field(default_factory=list)
    kept_inactive: bool = True
    # How Net-Trim's solver held the samples: "rows", or "compressed" (X^T X and X^T Y: the
    # linear program at any number of samples, see nettrim.SampleStatistics).
    form: str = "rows"

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.weight))

    def __repr__(self) -> str:        # the arrays are in the fields; a repr that fits on a line
        shape = "x".join(map(str, np.shape(self.weight)))
        return (f"{type(self).__name__}(method={self.method!r}, status={self.status!r}, weight={shape}, "
                f"nnz={self.nnz}, seconds={self.seconds:.3g})")

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.weight.size)

    @property
    def sparse_weight(self) -> sp.csr_matrix:
        """The pruned weight as a CSR matrix of shape (n_in, M)."""
        return sp.csr_matrix(self.weight)


@dataclass(kw_only=True, repr=False)
class LayerResult(PrunedLayer):
    """A Net-Trim layer solve: the pruned layer and how the solve went.

    ``U`` is the full (N, M) matrix of the formulation (bias as the last row).  The
    violations are those of the returned matrix itself, evaluated in double precision;
    ``relative_error`` is ``||act(X U) - Y|| / ||Y||``, recomputed in float64; ``eps`` holds
    the absolute tolerance (one value, or one per output for per-neuron constraints).  A
    compressed solve (``form="compressed"``) has the same figures, computed from the sums."""

    U: np.ndarray
    objective: float
    dual_bound: float          # a lower bound on the optimum (a certificate); NaN when none was computed
    gap: float                 # (objective - dual_bound) / dual_bound
    omega_violation: float
    complement_violation: float
    relative_error: float
    primal_residual: float
    dual_residual: float
    rho1: float
    rho2: float
    rho_updates: int
    factor_updates: int
    threads: int
    dtype: str
    setup_seconds: float
    solve_seconds: float
    polish_seconds: float
    state: object = field(repr=False, default=None)
    backend: str = "cpu"
    # False where the compressed form's error, a difference of sums, is too uncertain to tell
    # the violation to tol.
    error_resolved: bool = True

    @property
    def converged(self) -> bool:
        return self.status == "converged"

    def summary(self) -> str:
        return (f"{self.status} in {self.iterations} iterations, {self.seconds:.3g} s: "
                f"{self.nnz} nonzeros ({100 * self.density:.1f}%), gap {self.gap:.1e}, relative error "
                f"{self.relative_error:.4f}, violations {self.omega_violation:.1e} / "
                f"{self.complement_violation:.1e}")


@dataclass
class SolutionPath:
    """Solutions of one layer for a sequence of eps, with what a caller needs to pick one.

    Every array has one entry per point, in the order solved; ``results[i]`` is the full
    :class:`LayerResult` of point ``i`` (without its ADMM state)."""

    eps_rel: Optional[np.ndarray]     # as asked for (None when absolute eps were given)
    results: List[LayerResult]
    setup_seconds: float                 # seconds of the one factorisation the path shared
    seconds: float = 0.0           # seconds of the path's solves and checks

    def __repr__(self) -> str:
        rel = None if self.eps_rel is None else [float(v) for v in self.eps_rel]
        return f"SolutionPath({len(self.results)} points, eps_rel={rel}, nnz={[int(v) for v in self.nnz]})"

    def _column(self, name, dtype=float):
        return np.array([getattr(r, name) for r in self.results], dtype=dtype)

    @property
    def eps(self):
        return np.array([r.eps for r in self.results])

    @property
    def nnz(self):
        return self._column("nnz", int)

    @property
    def density(self):
        return self._column("density")

    @property
    def objective(self):
        return self._column("objective")

    @property
    def relative_error(self):
        return self._column("relative_error")

    @property
    def omega_violation(self):
        return self._column("omega_violation")

    @property
    def complement_violation(self):
        return self._column("complement_violation")

    @property
    def iterations(self):
        return self._column("iterations", int)

    @property
    def solve_seconds(self):
        return self._column("solve_seconds")

    @property
    def status(self):
        return [r.status for r in self.results]

    def __len__(self):
        return len(self.results)

    def __getitem__(self, i) -> LayerResult:
        return self.results[i]

    def summary(self) -> str:
        rows = [f"{'eps_rel' if self.eps_rel is not None else 'eps':>10} {'kept %':>7} {'rel. error':>10} "
                f"{'iters':>6} {'time s':>7}  status"]
        labels = self.eps_rel if self.eps_rel is not None else [float(np.max(r.eps)) for r in self.results]
        for label, r in zip(labels, self.results):
            rows.append(f"{label:10.4g} {100 * r.density:7.2f} {r.relative_error:10.4f} {r.iterations:6d} "
                        f"{r.solve_seconds:7.3f}  {r.status}")
        rows.append(f"setup (paid once): {self.setup_seconds:.3f} s")
        return "\n".join(rows)
