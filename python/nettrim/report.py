"""What pruning a network reports: :class:`LayerReport` per layer and :class:`PruneReport`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

import numpy as np

from .reporting import report_summary


class Note(str):
    """A sentence for the user, as reports store and print it (a ``str``), that also says what it
    is about, so that code acts on a note's ``kind`` and ``layer`` rather than on its words.

    ``kind``: ``"unreachable"`` (a layer's search could not keep as few weights as asked),
    ``"unreachable_from_below"`` (nor as many), ``"filled"`` (the l1 solutions kept too few and
    the trained weights of largest ``|w| ||x||`` were added), ``"trimmed"`` (the search's solution kept
    more than the target allows, and those of smallest ``|w| ||x||`` were dropped), ``"relaxed"`` (the cascade's bound on the
    inactive outputs relaxed to reach the target), ``"network"`` (about the whole network), or
    ``"other"``.  ``layer``: the layer (``name`` or ``name/group``) it is about, None for the network.
    Notes read back from JSON are plain strings."""
    KINDS = ("unreachable", "unreachable_from_below", "filled", "trimmed", "relaxed", "network", "other")

    def __new__(cls, text, kind="other", layer=None):
        if kind not in cls.KINDS:
            raise ValueError(f"kind: expected one of {cls.KINDS}, got {kind!r}")
        note = super().__new__(cls, text)
        note.kind, note.layer = kind, layer
        return note

    def about(self, layer):
        """This note said of ``layer``: prefixed with its name."""
        return Note(f"{layer}: {self}", self.kind, layer)

    def of_layer(self, names):
        """Whether it is about one of the layers ``names`` (or one of their groups)."""
        return self.layer is not None and self.layer.split("/")[0] in names

    def __reduce__(self):      # (pickled with its kind and layer, e.g. to and from Dask workers)
        return Note, (str(self), self.kind, self.layer)


@dataclass
class LayerReport:
    """One layer of a pruned network (all its groups together)."""
    name: str
    shape: tuple
    nnz_before: int
    nnz: int
    eps: float                 # absolute eps the layer was solved with (root sum of squares over groups)
    eps_rel: float             # eps / ||target on Omega||
    relative_error: float      # ||act(U^T Xin) - Y|| / ||Y|| on the calibration rows
    omega_violation: float
    complement_violation: float
    iterations: int            # every ADMM iteration spent on this layer: search, curve and final solve
    solves: int                # solves of this layer (a search or a curve solves it several times)
    status: str
    seconds: float             # all the time spent on this layer
    samples: int = 0           # rows of the layer's problem (samples, or sampled patch positions)
    search_seconds: float = 0.0   # of which: finding the eps (search or solution path)
    final_seconds: float = 0.0    # of which: the solve at the chosen eps and the re-fit
    pruned: bool = True        # False for a layer left dense (not among ``layers=``)
    # False where the inactive outputs were not held inactive (Net-Trim's refit="relu"): the
    # complement violation is then by design, and the promise is on relative_error (<= eps).
    kept_inactive: bool = True
    # Net-Trim's program for the layer: inactive outputs "bounded" or counted ("relu"; see
    # prune_layer); with inactive="auto" the allocation's choice.  "bounded" for other methods.
    inactive: str = "bounded"
    # How Net-Trim's solver held the layer's samples: "rows", or "compressed" (the linear
    # program from X^T X and X^T Y, chosen where it measures faster; see nettrim.LayerSolver).
    form: str = "rows"
    # The layer's program, from what consumes its output: "relu", "residual" (added to a skip
    # before its ReLU, in a graph model) or "linear" (see docs/formulation.rst, "Graphs").
    program: str = "relu"

    @property
    def density(self):
        return self.nnz / max(1, int(np.prod(self.shape)))

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        d = {"nnz": d.get("nnz_after"), **d}       # reports written before version 0.2 said nnz_after
        return cls(**{**{k: v for k, v in d.items() if k in known}, "shape": tuple(d["shape"])})


@dataclass
class ReconstructionReport:
    """How :func:`nettrim.reconstruct` re-fitted a pruned network (see :mod:`nettrim.reconstruction`)."""
    epochs: int                                            # epochs run (the best one kept)
    best_epoch: int                                        # 0: none improved on the pruned network
    held_out: int                                          # held-out samples
    discrepancy_before: float                              # on the held-out samples, in the loss's terms
    discrepancy_after: float
    history: List[float] = field(default_factory=list)     # held-out discrepancy after each epoch
    seconds: float = 0.0
    loss: str = "mse"     # "mse": relative squared error of the outputs; "kl": nats per sample

    @property
    def measure(self) -> str:
        """What the discrepancies are, in words."""
        return "output discrepancy" if self.loss == "mse" else "KL divergence"

    def summary(self) -> str:
        return (f"reconstruction: held-out {self.measure} {self.discrepancy_before:.4g} -> {self.discrepancy_after:.4g} "
                f"(epoch {self.best_epoch} of {self.epochs}, {self.held_out} held-out samples, {self.seconds:.1f} s)")


@dataclass
class StageReport:
    """One stage of a staged run (``prune_network(stages=k)``): its whole-network target and
    what it reached."""
    stage: int                            # 1, 2, ..., k
    sparsity: float                       # the stage's target: the fraction of the weights removed
    removed: float                        # what it removed (of the selected layers' weights)
    seconds: float                        # its pruning and reconstruction
    reconstruction: Optional[ReconstructionReport] = None   # with reconstruct=True, after this stage

    def summary(self) -> str:
        rebuilt = "" if self.reconstruction is None else (
            f", held-out {self.reconstruction.measure} {self.reconstruction.discrepancy_before:.4g} -> "
            f"{self.reconstruction.discrepancy_after:.4g} by reconstruction")
        return (f"stage {self.stage}: {100 * self.sparsity:.4g}% asked, {100 * self.removed:.4g}% removed"
                f"{rebuilt} ({self.seconds:.1f} s)")

    @classmethod
    def from_dict(cls, d):
        rec = d.get("reconstruction")
        return cls(**{**d, "reconstruction": None if rec is None else ReconstructionReport(**rec)})


@dataclass
class PruneReport:
    """How a network was pruned: per layer, and in total."""
    scheme: str
    layers: List[LayerReport]
    calibration_samples: int
    seconds: float
    method: str = "nettrim"
    allocation: Optional[str] = None      # how a whole-network target was shared out, when there was one
    notes: List[str] = field(default_factory=list)   # what the run wants the user to know (unreached targets, ...)
    rows: Optional[int] = None            # the most rows per layer a memory budget allowed (None: all)
    memory: Optional[str] = None          # what the memory budget chose, in words
    inactive_choice: Optional[str] = None  # with inactive="auto": the program kept and why, in words
    held_out: int = 0                     # calibration samples set aside to measure an allocation (not solved on)
    reconstruction: Optional[ReconstructionReport] = None   # with reconstruct=True (the last stage's)
    stages: List[StageReport] = field(default_factory=list)  # with stages > 1, one per stage

    @property
    def nnz_before(self):
        return sum(r.nnz_before for r in self.layers)

    @property
    def nnz(self):
        return sum(r.nnz for r in self.layers)

    @property
    def density(self):
        return self.nnz / max(1, self.nnz_before)

    @property
    def inactive(self) -> Optional[str]:
        """Net-Trim's program over the pruned layers: "bounded", or the inactive outputs counted
        ("relu"); None for another method, or where the layers differ."""
        programs = {r.inactive for r in self.layers if r.pruned}
        return programs.pop() if self.method == "nettrim" and len(programs) == 1 else None

    def to_dict(self):
        return {"scheme": self.scheme, "method": self.method, "allocation": self.allocation,
                "calibration_samples": self.calibration_samples, "seconds": self.seconds,
                "nnz_before": self.nnz_before, "nnz": self.nnz, "notes": list(self.notes), "rows": self.rows,
                "memory": self.memory, "inactive": self.inactive, "inactive_choice": self.inactive_choice,
                "held_out": self.held_out, "layers": [asdict(r) for r in self.layers],
                "reconstruction": None if self.reconstruction is None else asdict(self.reconstruction),
                "stages": [asdict(s) for s in self.stages]}

    def summary(self) -> str:
        """A line of totals and the per-layer table (as the command line prints it)."""
        return report_summary(self)

    __str__ = summary

    @classmethod
    def from_dict(cls, d):
        return cls(d["scheme"], [LayerReport.from_dict(r) for r in d["layers"]], d["calibration_samples"],
                   d["seconds"], d.get("method", "nettrim"), d.get("allocation"), list(d.get("notes", [])),
                   d.get("rows"), d.get("memory"), d.get("inactive_choice"), d.get("held_out", 0),
                   None if d.get("reconstruction") is None else ReconstructionReport(**d["reconstruction"]),
                   [StageReport.from_dict(s) for s in d.get("stages", [])])
