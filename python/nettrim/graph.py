"""Models of any shape, run by their own framework: :class:`GraphModel`.

Net-Trim is layer-wise: every ``Linear`` or convolution in a graph, whatever surrounds it
(residual adds, attention, normalisation, concatenation), is a layer with its own inputs and
outputs.  A :class:`GraphModel` lets the model's framework (PyTorch, onnxruntime) compute
those signals, and nettrim sees only what it prunes:

- its prunable layers (``layers``: :class:`~nettrim.layers.Dense` and
  :class:`~nettrim.layers.Conv2d` views of the framework's weights, a batch norm after a
  layer folded in) and, beside each, its :class:`Site`: where its input comes from, what
  consumes its output, and so which program it gets;
- the layers' inputs on calibration data (``layer_inputs``), from the model with its
  layers' current weights: the trained model, or the model as pruned so far;
- the model's outputs (``forward``), which the allocation and the checks of a written
  model compare.

:class:`~nettrim.network.Network` (a chain computed in numpy) offers the same members, so
the schemes, the allocation and every method take either.

What a framework supplies is a :class:`Runner` (``nettrim.adapters.torch_graph``,
``nettrim.adapters.onnx_graph``).  The programs (docs/formulation.rst, "Graphs"):

- ``relu``: the layer's output (after its batch norm) feeds a ReLU only;
- ``residual``: it is added to another signal ``S`` (a skip connection) and the sum feeds a
  ReLU, ``relu(x W + b + S)``; with ``S`` fixed on the calibration data this is the ReLU
  program with target ``Y - S`` on the active set and bound ``-S`` elsewhere
  (:func:`nettrim.problem.layer_problems`);
- ``linear``: anything else (GELU, a norm, attention arithmetic, logits): its outputs are
  kept as they are.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import conv
from ._validate import check_shape
from .errors import InvalidArgument, UnsupportedModelError
from .layers import Conv2d, Dense
from .network import LayerSizes, check_inputs

PROGRAMS = ("relu", "residual", "linear")
KINDS = ("dense", "tokens", "conv2d", "conv1d")


@dataclass
class Site:
    """Where a prunable layer sits in its graph.

    ``kind``: how its input's rows are laid out: "dense" (samples by features), "tokens"
    (samples by positions by features: a ``Linear`` on a sequence, one row per position),
    "conv2d" / "conv1d" (one row per sample and output position).  ``input`` and ``skip``
    name the framework's values holding the layer's input and, for the residual program, the
    signal its output is added to.  ``positions``: output positions per sample (rows of its
    problem per sample); ``grid``: the output's (height, width) of a convolution."""
    name: str
    kind: str
    program: str
    consumer: str                      # what its output feeds, in words (reported)
    input: str
    skip: Optional[str] = None
    positions: int = 1
    grid: Tuple[int, int] = (1, 1)
    fold: Optional[Tuple[np.ndarray, np.ndarray]] = None   # the batch norm folded in: (scale, shift)
    handle: object = None              # the framework's own reference (a module name, a node)


class Runner:
    """What a framework supplies to a :class:`GraphModel` (an interface: the adapters subclass it)."""

    def load(self, site: Site, layer) -> None:
        """Write ``layer``'s weights (nettrim's view: batch norm folded in) into the model."""
        raise NotImplementedError

    def values(self, X: np.ndarray, names: Sequence[str]) -> Dict[str, np.ndarray]:
        """The model's values ``names`` on the inputs ``X`` (one batch), as numpy arrays;
        a token-like value as (samples, positions..., features)."""
        raise NotImplementedError

    def outputs(self, X: np.ndarray) -> np.ndarray:
        """The model's (first) output on ``X``."""
        raise NotImplementedError

    def cache(self, X: np.ndarray):
        """Every value of the model on ``X`` (one batch), for :meth:`outputs_changed`; None
        where the framework cannot start a pass part way (then every pass runs whole)."""
        return None

    def outputs_changed(self, X: np.ndarray, cache, sites: Sequence[Site]) -> np.ndarray:
        """The outputs on ``X`` with only the layers at ``sites`` changed since ``cache`` was
        taken: what does not depend on them is read from the cache."""
        raise NotImplementedError


class GraphModel(LayerSizes):
    """A model run by its framework through ``runner``, its prunable ``layers`` at ``sites``.

    ``input_shape``: one sample's shape.  ``output_shape``: one sample's output shape.
    ``unreadable``: {name: why} of the layers found that cannot be pruned (a padding mode,
    weights shared between calls...): pruning every layer is then refused, naming them, and
    ``layers=`` (the others) leaves them as they are."""

    def __init__(self, runner: Runner, sites: List[Site], layers: List, input_shape, output_shape,
                 unreadable: Optional[Dict[str, str]] = None):
        if not sites:
            raise InvalidArgument("model: no prunable layer (Linear, Conv1d, Conv2d) found"
                                  + (f"; {_listed(unreadable)}" if unreadable else ""))
        self.runner, self.sites, self._layers = runner, list(sites), list(layers)
        self.unreadable = dict(unreadable or {})
        self.input_shape = check_shape("input_shape", input_shape)
        self.output_shape = tuple(output_shape)

    def check_unreadable(self, layers):
        """Raise when ``layers`` (names or indices, None for all) leaves no way around the
        layers that cannot be pruned: all asked for, or one of them named."""
        if not self.unreadable:
            return
        named = [] if layers is None else [x for x in (layers if isinstance(layers, (list, tuple)) else [layers])
                                           if isinstance(x, str) and x in self.unreadable]
        if layers is None or named:
            name = named[0] if named else next(iter(self.unreadable))
            raise UnsupportedModelError(
                f"model: layer {name!r} cannot be pruned: {self.unreadable[name]}; leave it as it is by naming the "
                f"layers to prune with layers= (--layers): {', '.join(s.name for s in self.sites)}")

    @property
    def layers(self) -> List:
        return self._layers

    @property
    def n_inputs(self):
        return int(np.prod(self.input_shape))

    def programs(self) -> Dict[str, str]:
        """Each layer's program: {name: "relu" | "residual" | "linear"}."""
        return {s.name: s.program for s in self.sites}

    def copy(self):
        return copy.deepcopy(self)

    def __repr__(self):
        body = ", ".join(f"{s.name} {'x'.join(map(str, layer.shape))} {s.program}"
                         for s, layer in zip(self.sites, self.layers))
        return f"GraphModel(input {self.input_shape}: {body})"

    # --- forward passes --------------------------------------------------------------------
    def _load_all(self):
        """The framework's weights made those of ``layers`` (which the schemes change in place)."""
        for site, layer in zip(self.sites, self.layers):
            self.runner.load(site, layer)

    def forward(self, X, *, batch_size=512):
        """The model's outputs on inputs X (samples first), with the layers' current weights."""
        X = check_inputs(self, X)
        self._load_all()
        return np.concatenate([np.asarray(self.runner.outputs(X[s:s + batch_size]), np.float32)
                               for s in range(0, len(X), batch_size)])

    def predict(self, X):
        return np.argmax(self.forward(X), axis=1)

    def cache(self, X, replaced: Optional[Dict[int, object]] = None):
        """The model's values on ``X`` (checked inputs, one batch) with layers ``replaced``
        ({index: layer object}, none by default), for :meth:`forward_with`; None where the
        framework cannot start a pass part way."""
        with self._replacing(replaced or {}):
            self._load_all()
            return self.runner.cache(X)

    def forward_with(self, replaced: Dict[int, object], X, cache=None, changed=None):
        """The outputs with layers ``replaced`` ({index: layer object}) and the others as they are.
        ``cache``: :meth:`cache` of the same ``X``, taken with the layers ``changed`` (default:
        ``replaced``) as they are now, so that only what those feed is computed again."""
        with self._replacing(replaced):
            if cache is None:
                return self.forward(X)
            for k in replaced:
                self.runner.load(self.sites[k], self._layers[k])
            changed = replaced if changed is None else changed
            return np.asarray(self.runner.outputs_changed(X, cache, [self.sites[k] for k in changed]), np.float32)

    @contextlib.contextmanager
    def _replacing(self, replaced):
        """Layers ``replaced`` in place of the model's, and the model's back after (weights too)."""
        kept = {k: self._layers[k] for k in replaced}
        try:
            for k, layer in replaced.items():
                self._layers[k] = layer
            yield
        finally:
            for k, layer in kept.items():
                self._layers[k] = layer
                self.runner.load(self.sites[k], layer)

    # --- the layers' problems ----------------------------------------------------------------
    def sample_positions(self, n_samples, max_samples=None, seed=0, max_dense=None):
        """For every layer, the rows of its problem: (images, rows, cols) of output positions.

        A "dense" layer uses every sample (or a seeded subset of ``max_dense``); the others
        have one row per sample and position (a token, an output pixel), a seeded subset of
        ``max_samples`` of them when there are more, as :meth:`Network.sample_positions`."""
        plan = []
        for k, site in enumerate(self.sites):
            if site.kind == "dense":
                images = np.arange(n_samples)
                if max_dense is not None and n_samples > max_dense:
                    images = np.sort(np.random.default_rng([seed, k]).choice(n_samples, int(max_dense),
                                                                             replace=False))
                plan.append((images, np.zeros_like(images), np.zeros_like(images)))
                continue
            total = n_samples * site.positions
            limits = [x for x in (max_samples, max_dense) if x is not None]
            limit = min(limits) if limits else None
            if limit is not None and total > limit:
                flat = np.sort(np.random.default_rng([seed, k]).choice(total, int(limit), replace=False))
            else:
                flat = np.arange(total)
            images, position = np.divmod(flat, site.positions)
            rows, cols = np.divmod(position, site.grid[1])
            plan.append((images, rows, cols))
        return plan

    def layer_inputs(self, X, plan, which, *, batch_size=256):
        """Inputs of the layers ``which`` at the positions ``plan``: {k: (rows, fan_in)}; for a
        layer of the residual program the skip signal at the same positions follows as M more
        columns (see :func:`nettrim.problem.layer_problems`)."""
        which = sorted(set(which))
        names = sorted({n for k in which for n in (self.sites[k].input, self.sites[k].skip) if n})
        self._load_all()
        parts = {k: [] for k in which}
        for start in range(0, len(X), batch_size):
            stop = min(len(X), start + batch_size)
            values = self.runner.values(X[start:stop], names)
            for k in which:
                site, layer = self.sites[k], self._layers[k]
                images, rows, cols = plan[k]
                lo, hi = np.searchsorted(images, [start, stop])
                at = (images[lo:hi] - start, rows[lo:hi], cols[lo:hi])
                block = input_rows(site, layer, values[site.input], *at)
                if site.skip is not None:
                    block = np.hstack([block, output_rows(site, values[site.skip], *at)])
                parts[k].append(block)
        return {k: np.ascontiguousarray(np.concatenate(v), dtype=np.float32) for k, v in parts.items()}

    def memory_estimate(self, n_samples, *, max_samples=None, max_dense=None, scheme="cascade", workers=1,
                        itemsize=4, engine=True, refit=True, threads=None):
        """Bytes that pruning on ``n_samples`` inputs needs, from the shapes alone: every layer's
        unfolded inputs (kept for the run) and the largest problem's solver (its inputs, targets
        and the engine's few P x M buffers).  Coarser than :meth:`Network.memory_estimate`."""
        plan_rows = [len(p[0]) for p in self.sample_positions(n_samples, max_samples, max_dense=max_dense)]
        rows = []
        for site, layer, P in zip(self.sites, self.layers, plan_rows):
            N = int(layer.matrix.shape[0]) + 1
            M = int(layer.matrix.shape[1]) // max(1, layer.groups)
            inputs = itemsize * P * (N - 1 + (layer.matrix.shape[1] if site.skip else 0))
            solve = itemsize * P * (N + 6 * M) if engine else 0
            rows.append({"name": site.name, "kind": "conv" if site.kind.startswith("conv") else "dense",
                         "P": P, "N": N, "M": M, "bytes": int(inputs + solve), "inputs": int(inputs),
                         "solve": int(solve)})
        kept = sum(r["inputs"] for r in rows) * (2 if scheme == "cascade" else 1)
        total = itemsize * n_samples * self.n_inputs + kept + max(r["solve"] for r in rows) * max(1, workers)
        return {"layers": rows, "total": int(total)}


def _listed(unreadable):
    return "; ".join(f"{name}: {why}" for name, why in unreadable.items())


def input_rows(site, layer, x, images, rows, cols):
    """The layer's input rows at the output positions (images, rows, cols)."""
    x = np.asarray(x, np.float32)
    if site.kind == "dense":
        return x.reshape(len(x), -1)[images]
    if site.kind == "tokens":
        return x.reshape(len(x), -1, x.shape[-1])[images, cols]
    if site.kind == "conv1d":
        x = x.reshape(x.shape[0], x.shape[1], 1, x.shape[2])
    return conv.unfold_at(x, layer.kernel, layer.stride, layer.padding, layer.dilation, images, rows, cols)


def output_rows(site, s, images, rows, cols):
    """A signal shaped as the layer's output (the skip) at the output positions: (rows, M)."""
    s = np.asarray(s, np.float32)
    if site.kind == "dense":
        return s.reshape(len(s), -1)[images]
    if site.kind == "tokens":
        return s.reshape(len(s), -1, s.shape[-1])[images, cols]
    if site.kind == "conv1d":
        return s[images, :, cols]
    return s[images, :, rows, cols]


def layer_of(site: Site, weight, bias, *, has_bias, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """nettrim's view of a layer at ``site``: ``weight`` as the framework holds it (Linear:
    (out, in); Conv: (out, in / groups, k...)), the batch norm of ``site.fold`` folded in."""
    relu = site.program != "linear"
    if site.kind in ("dense", "tokens"):
        layer = Dense(np.asarray(weight, np.float32).T.copy(), None if bias is None else np.asarray(bias, np.float32),
                      relu=relu, name=site.name, has_bias=has_bias)
    else:
        w = np.asarray(weight, np.float32)
        if site.kind == "conv1d":
            w = w[:, :, None, :]
        layer = Conv2d(w, None if bias is None else np.asarray(bias, np.float32), stride, padding, dilation, groups,
                       relu=relu, name=site.name, has_bias=has_bias)
    if site.fold is not None:
        layer.scale_outputs(*site.fold)
    layer.residual = site.program == "residual"
    return layer


def framework_weights(site: Site, layer):
    """``(weight, bias)`` of ``layer`` as the framework holds them, the folded batch norm taken
    out again: ``(weight / scale, (bias - shift) / scale)`` (the framework's bias; where the
    layer has none, the batch norm's own shift takes up the rest, see the adapters)."""
    if site.kind in ("dense", "tokens"):
        w, b = layer.weight.T, layer.bias
    else:
        w = layer.weight[:, :, 0, :] if site.kind == "conv1d" else layer.weight
        b = layer.bias
    if site.fold is not None:
        scale, shift = site.fold
        w = w / scale.reshape((-1,) + (1,) * (w.ndim - 1))
        b = (b - shift) / scale
    return np.ascontiguousarray(w, np.float32), np.asarray(b, np.float32)
