"""The options of :func:`nettrim.prune_network`, checked in one place: :class:`PruneOptions`.

Every rule of a pruning run stands here, beside the option it checks.  ``checked(**options)``
applies the rules that need no data, before anything is read or solved (the ``nettrim``
command builds its options with it too, so that a bad option fails before the model is read);
``for_network(net, X)`` applies those that need the network or the calibration inputs (the
layers named, one sparsity per selected layer, the memory the run would need).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Tuple, Union

import numpy as np

from . import _core
from ._validate import (
    MAX_THREADS,
    check_bool,
    check_callable,
    check_choice,
    check_directory,
    check_int,
    check_real,
    check_threads,
    resolve_dtype,
)
from .allocation import ALLOCATIONS
from .errors import InvalidArgument, InvalidArgumentType
from .graph import GraphModel
from .layer import prune_layer
from .methods import METHODS, method_named, nm_methods
from .methods.masks import check_nm
from .methods.refit import refit_mode
from .network import Network, check_inputs
from .problem import FLOORS, INACTIVE
from .reconstruction import LOSSES, check_reconstructable
from .solver import FORMS, SETTINGS, make_settings

SCHEMES = ("parallel", "cascade")
SCOPES = ("network", "layer")

NETWORK_INACTIVE = "auto"
"""Net-Trim's treatment of the inactive outputs in whole networks by default: both programs,
the better network kept, since neither wins on every model (see ``prune_network``)."""

_SET_PER_LAYER = ("X", "Y", "W", "b", "V", "eps", "fit_bias", "mode")
"""prune_layer arguments that prune_network sets itself for every layer."""

_LAYER_OPTIONS = {"backend", "penalty", "warm_start", "dtype", "progress", "form"}
"""prune_layer's options beside the engine's settings that prune_network passes on."""

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class PruneOptions:
    """Every option of :func:`nettrim.prune_network` (see it for each), checked.

    Build it with :meth:`checked`; ``solver_options`` holds the engine's settings or the
    method's own options (``tol``, ``damp`` ...)."""
    scheme: str = "cascade"
    eps_rel: float = 0.05
    gamma: float = math.sqrt(1.1)
    floor: str = "refit"
    sparsity: Union[float, Tuple[float, ...], None] = None
    scope: str = "network"
    allocation: str = "curves"
    layers: Any = None                      # as given; for_network resolves them to indices
    method: str = "nettrim"
    nm: Optional[Tuple[int, int]] = None
    structured: bool = False
    refit: str = "relu"
    inactive: Optional[str] = None          # Net-Trim's: "auto" (default), "relu" or "bounded"
    max_samples: Optional[int] = 8000
    seed: int = 0
    holdout: float = 0.2
    final_refit: bool = True
    reconstruct: Union[bool, str] = False   # checked: False, or the reconstruction's loss ("mse", "kl")
    stages: int = 1
    threads: int = 0
    workers: int = 1
    executor: Any = None
    block_outputs: Optional[int] = None
    memory_budget: Optional[int] = None     # bytes
    dtype: str = "float32"
    checkpoint: Optional[str] = None
    on_layer: Optional[Callable] = None
    on_trial: Optional[Callable] = None
    solver_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def checked(cls, **options) -> "PruneOptions":
        """The options, every rule that needs no data applied; errors name the option."""
        names = {f.name for f in dataclasses.fields(cls)}
        solver_options = dict(options.pop("solver_options", None) or {})
        solver_options.update({k: options.pop(k) for k in list(options) if k not in names})
        o = cls(**options, solver_options=solver_options)
        method = method_named(o.method)
        check_choice("scheme", o.scheme, SCHEMES)
        check_choice("scope", o.scope, SCOPES)
        check_choice("allocation", o.allocation, ALLOCATIONS)
        check_choice("floor", o.floor, FLOORS)
        values = dict(
            eps_rel=check_real("eps_rel", o.eps_rel, low=0, what="a relative tolerance (a real number)"),
            gamma=check_real("gamma", o.gamma, low=1, what="a real number (>= 1 keeps the trained weights feasible)"),
            sparsity=_check_sparsity(o.sparsity),
            holdout=check_real("holdout", o.holdout, low=0, high=0.5, what="a fraction of the calibration samples"),
            structured=check_bool("structured", o.structured),
            refit=refit_mode(o.refit),
            final_refit=check_bool("final_refit", o.final_refit),
            reconstruct=_check_reconstruct(o.reconstruct),
            stages=check_int("stages", o.stages, low=1, what="a number of stages (1: one-shot)"),
            max_samples=check_int("max_samples", o.max_samples, low=1, none=True, what="a positive number of rows"),
            seed=check_int("seed", o.seed, low=0, what="a seed (an integer)"),
            threads=check_threads("threads", o.threads),
            workers=check_int("workers", o.workers, low=1, high=MAX_THREADS, what="a number of parallel solves"),
            block_outputs=_check_block_outputs(o.block_outputs, o.scheme),
            memory_budget=None if o.memory_budget is None else parse_bytes(o.memory_budget),
            checkpoint=None if o.checkpoint is None else check_directory("checkpoint", o.checkpoint),
            inactive=_check_inactive(o.inactive, o.method, o.solver_options.get("backend", "cpu")),
            solver_options=MappingProxyType(solver_options))
        resolve_dtype(o.dtype)
        if o.executor is not None and not callable(getattr(o.executor, "submit", None)):
            raise InvalidArgumentType(f"executor: expected a concurrent.futures-style executor (with submit), got "
                                      f"{type(o.executor).__name__}")
        check_callable("on_layer", o.on_layer, "a function (index, LayerReport)")
        check_callable("on_trial", o.on_trial, "a function (layer, kind, number, eps_rel, density)")
        check_callable("progress", solver_options.get("progress"), "a function (iteration, primal, dual, elapsed)")
        if o.nm is not None:
            values["nm"] = check_nm(o.nm)
            if not method.nm:
                raise InvalidArgument(f"nm: {o.method} has no N:M variant (those that do: {', '.join(nm_methods())})")
            if o.sparsity is not None:
                raise InvalidArgument("sparsity: not with nm, which fixes the sparsity at 1 - N/M")
        if method.name != "nettrim" and o.sparsity is None and o.nm is None:
            raise InvalidArgument(f"sparsity: method {o.method!r} needs a target sparsity (or nm)")
        if method.network == "neurons":
            if not isinstance(values["sparsity"], (float, type(None))):
                raise InvalidArgument("sparsity: APoZ takes one fraction (neurons are ranked across layers or "
                                      "within each)")
            if o.scope == "layer":
                # (a requested sparsity is a ceiling on every layer it is for; APoZ never removes an
                # output neuron, so the output layer's own weights could not meet it)
                raise InvalidArgument("scope: APoZ removes hidden neurons only, so the output layer cannot meet a "
                                      "per-layer sparsity; use scope='network' (nettrim.methods.apoz(..., "
                                      "scope='layer') prunes each hidden layer to it)")
        if method.name != "nettrim":
            if values["structured"]:
                raise InvalidArgument(f"structured: a Net-Trim option, not for method {o.method!r} (APoZ is "
                                      "structured)")
            if values["refit"] != "relu":
                raise InvalidArgument(f"refit: {values['refit']!r} is a Net-Trim option, not for method {o.method!r}")
        if values["stages"] > 1:
            # (each stage is a whole-network target on the way to the last: a sparsity to share out)
            if o.sparsity is None:
                raise InvalidArgument(f"sparsity: needed with stages={values['stages']} (the stages reach it step "
                                      "by step); an eps_rel or nm target is met in one stage")
            if o.checkpoint is not None:
                raise InvalidArgument("checkpoint: not with stages > 1 (a checkpoint resumes one pass over the "
                                      "layers); prune without it, or in one stage")
        _check_solver_options(method, values.get("nm"), solver_options, o.dtype)
        return dataclasses.replace(o, **values)

    def for_network(self, net, calibration_inputs):
        """``(options, X)``: the rules that need the network and the data applied, ``layers``
        resolved to sorted indices and ``X`` the calibration inputs in the model's shape."""
        if not isinstance(net, (Network, GraphModel)):
            raise InvalidArgumentType(f"net: expected a nettrim.Network or GraphModel (see nettrim.adapters for "
                                      f"models), got {type(net).__name__}")
        if isinstance(net, GraphModel):
            net.check_unreadable(None if self.layers is None else list(self.layers))
        if isinstance(net, GraphModel) and self.method == "apoz":
            raise InvalidArgument("method: apoz removes whole neurons of a chain (Network); a graph model's layers "
                                  "are pruned weight by weight (nettrim, magnitude, wanda, sparsegpt, lobs)")
        if isinstance(net, GraphModel) and self.checkpoint is not None:
            raise InvalidArgument("checkpoint: not available for graph models yet (PyTorch graphs, ONNX graphs); "
                                  "prune without it")
        if calibration_inputs is None:
            raise InvalidArgumentType("calibration_inputs: expected an array (samples, ...) of the model's inputs, "
                                      "got None")
        selected = check_layer_selection(net, self.layers)
        if isinstance(self.sparsity, tuple) and len(self.sparsity) != len(selected):
            raise InvalidArgument(f"sparsity: expected one fraction in [0, 1) per pruned layer ({len(selected)} of "
                                  f"them), got {list(self.sparsity)!r}")
        if self.reconstruct:
            check_reconstructable(net, self.reconstruct)
        check_network_memory(net, calibration_inputs, self)
        X = check_inputs(net, calibration_inputs, "calibration_inputs")
        return dataclasses.replace(self, layers=tuple(selected)), X

    def estimate(self, net, n_samples, **rows):
        """``net.memory_estimate`` of a run with these options on ``n_samples`` samples
        (``rows``: ``max_samples``, ``max_dense``, default the options')."""
        itemsize = np.dtype(resolve_dtype(self.dtype)).itemsize
        engine = self.solver_options.get("backend", "cpu") if self.method == "nettrim" else False
        return net.memory_estimate(n_samples, max_samples=rows.get("max_samples", self.max_samples),
                                   max_dense=rows.get("max_dense"), scheme=self.scheme, workers=self.workers,
                                   itemsize=itemsize, engine=engine, refit=self.refit != "none" or self.final_refit,
                                   threads=self.threads or None)

    @property
    def network_wide(self):
        """Whether one sparsity is shared out among the selected layers."""
        return isinstance(self.sparsity, float) and self.scope == "network"


def _check_sparsity(sparsity):
    """None, a fraction in (0, 1), or a tuple with one fraction in [0, 1) per layer."""
    if sparsity is None:
        return None
    if isinstance(sparsity, (str, bytes)) or np.ndim(sparsity) == 0:
        if isinstance(sparsity, (bool, np.bool_)) or not isinstance(sparsity, numbers.Real) or \
                not 0 < float(sparsity) < 1:
            raise InvalidArgument(f"sparsity: expected a fraction in (0, 1) of weights to remove, got {sparsity!r}")
        return float(sparsity)
    if np.ndim(sparsity) != 1:
        raise InvalidArgument(f"sparsity: expected one fraction, or a list of one per pruned layer, got {sparsity!r}")
    values = list(np.asarray(sparsity, dtype=object))
    if not values or not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                             and 0 <= float(v) < 1 for v in values):
        raise InvalidArgument(f"sparsity: expected one fraction in [0, 1) per pruned layer, got {sparsity!r}")
    return tuple(float(v) for v in values)


def _check_reconstruct(value):
    """False (no reconstruction), or the reconstruction's loss: True is "mse"."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return "mse" if value else False
    if isinstance(value, str):
        return check_choice("reconstruct", value, LOSSES)
    raise InvalidArgumentType(f"reconstruct: expected True, False or a loss ({', '.join(map(repr, LOSSES))}), got "
                              f"{value!r}")


def _check_block_outputs(block_outputs, scheme):
    if block_outputs is None:
        return None
    block_outputs = check_int("block_outputs", block_outputs, low=1, what="a number of output neurons per block")
    if scheme != "parallel":
        raise InvalidArgument("block_outputs: blocks of output neurons are solved apart in the parallel scheme only "
                              "(the cascade's layers depend on each other's outputs)")
    return block_outputs


def _check_inactive(inactive, method, backend):
    """Net-Trim's program for the inactive outputs: "auto" unless given; None for other methods.
    A backend that solves the bounded program only (CUDA) refuses "relu" here, before anything
    runs, and "auto" then runs the bounded program (``prune_network`` says so)."""
    if method != "nettrim":
        if inactive is not None:
            raise InvalidArgument(f"inactive: a setting of Net-Trim's program; method {method!r} has none")
        return None
    inactive = check_choice("inactive", NETWORK_INACTIVE if inactive is None else inactive, ("auto",) + INACTIVE)
    if inactive == "relu" and not solves_relu(backend):
        raise InvalidArgument(f"inactive: 'relu' needs the cpu backend; the {backend!r} backend solves only "
                              "inactive='bounded'")
    return inactive


def solves_relu(backend):
    """Whether the engine's ``backend`` solves ``inactive="relu"`` (the CUDA backend solves the
    bounded program only): the engine says, for each backend it has."""
    if not isinstance(backend, str):
        raise InvalidArgumentType(f"backend: expected a name such as 'cpu', got {backend!r}")
    return "relu" in _core.backend_capabilities(backend)["inactive"]


def check_layer_selection(net, layers):
    """Sorted indices of the prunable layers named (or indexed) in ``layers``; all when None.

    An integer is an index; a string is a name first (a TorchScript ``Sequential`` names its
    layers "0", "2", "4"), else the index it spells.  A string that names one layer and is the
    index of another is an error asking for ``"name:2"`` or ``"#2"``, which say which."""
    names = [layer.name for layer in net.layers]
    if layers is None:
        return list(range(len(names)))
    if isinstance(layers, (str, bytes, numbers.Integral)):
        layers = [layers]
    try:
        items = list(layers)
    except TypeError:
        raise InvalidArgumentType(f"layers: expected a list of layer names or indices, got {layers!r}") from None
    out = set()
    for item in items:
        index = _layer_index(item, names)
        if index is None:
            raise InvalidArgument(f"layers: {item!r} is not one of the network's prunable layers "
                                  f"(names {names}, or indices 0 to {len(names) - 1})")
        out.add(index)
    if not out:
        raise InvalidArgument("layers: expected at least one layer to prune, got an empty list")
    return sorted(out)


def _layer_index(item, names):
    """The index of the layer ``item`` names or indexes (see :func:`check_layer_selection`), or None."""
    def index(value):
        return int(value) % len(names) if -len(names) <= int(value) < len(names) else None
    if isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_)):
        return index(item)
    if not isinstance(item, str):
        return None
    text = item.strip()
    if text.startswith("name:"):
        return names.index(text[5:]) if text[5:] in names else None
    spelled = text[1:] if text.startswith("#") else text
    as_index = index(spelled) if re.fullmatch(r"-?[0-9]+", spelled) else None
    if text.startswith("#"):
        return as_index
    if text in names:
        mine = names.index(text)
        if as_index is not None and as_index != mine:
            raise InvalidArgument(f"layers: {text!r} names layer #{mine} and is the index of layer "
                                  f"{names[as_index]!r}; write 'name:{text}' or '#{text}'")
        return mine
    return as_index


def parse_bytes(value, name="memory_budget"):
    """Bytes from an int or a string such as "512MiB", "2GB", "1.5 GiB"."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS and float(m.group(1)) > 0:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise InvalidArgument(f"{name}: expected a number of bytes > 0 or a size such as '2GiB', got {value!r}")


def _check_solver_options(method, nm, options, dtype):
    """Unknown names are errors; the engine's settings are checked by the engine's own
    ``make_settings`` (ranges, choices), a layer-wise method's options by a call on a tiny layer
    (milliseconds), so that a bad option fails here rather than in the first layer, after a
    checkpoint was written."""
    for name in options:
        if name in _SET_PER_LAYER:
            raise InvalidArgumentType(f"{name}: set by prune_network for every layer, not an option")
    if method.name == "nettrim":
        allowed = (set(inspect.signature(prune_layer).parameters) | {"progress"}) - {"X", "W", "b"}
    elif method.layerwise is not None:
        allowed = (set(inspect.signature(method.layerwise).parameters) | {"progress"}) - {"X", "W", "b", "sparsity",
                                                                                        "nm"}
    else:
        allowed = {"progress"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed - set(_SET_PER_LAYER) - {"dtype", "threads", "eps_rel"}))
        raise InvalidArgumentType(f"{unknown[0]}: not an option of method {method.name!r} (those it takes: {known})")
    if method.name == "nettrim":
        make_settings(**{k: v for k, v in options.items() if k in SETTINGS})
        if "backend" in options:
            solves_relu(options["backend"])          # (a backend the engine does not know raises)
        if "penalty" in options:
            check_choice("penalty", options["penalty"], ("l1", "group"))
        if "warm_start" in options:      # (a network's layers start from zero or their trained weights)
            check_choice("warm_start", options["warm_start"], ("auto", "zero", "W"))
        if "form" in options:
            check_choice("form", options["form"], FORMS)
        return
    rest = {k: v for k, v in options.items() if k != "progress"}
    if method.layerwise is None or not rest:
        return
    rng = np.random.default_rng(0)
    X, W, b = rng.standard_normal((12, 4)), rng.standard_normal((4, 2)), np.array([0.1, -0.1])
    method.layerwise(X, W, b, **({"nm": nm} if nm else {"sparsity": 0.5}), **rest)


def check_network_memory(net, calibration_inputs, options):
    """MemoryError naming the largest layer when pruning ``net`` on inputs of this shape with
    ``options`` would need more memory than is available (estimated from the shapes alone,
    before anything is allocated)."""
    shape = np.shape(calibration_inputs)
    if len(shape) < 2 or int(np.prod(shape[1:], dtype=np.float64)) != net.n_inputs:
        return                       # check_inputs says what is wrong with the shape
    est = options.estimate(net, shape[0])
    max_samples = options.max_samples
    have = _core.available_memory()
    if not have or est["total"] <= have:
        return
    worst = max(est["layers"], key=lambda r: r["bytes"])
    advice = (f"lower max_samples (now {max_samples}; rows sampled per convolution) or use fewer calibration samples"
              if worst["kind"] == "conv" else "use fewer calibration samples")
    raise MemoryError(f"calibration_inputs: pruning on {shape[0]} samples needs about {est['total'] >> 20} MiB, but "
                      f"only {have >> 20} MiB are available; the largest part is layer {worst['name']} (P={worst['P']} "
                      f"rows x N={worst['N']} inputs, M={worst['M']} outputs: about {worst['bytes'] >> 20} MiB): "
                      f"{advice}")


__all__ = ["PruneOptions", "parse_bytes", "check_layer_selection", "check_network_memory", "solves_relu", "METHODS"]
