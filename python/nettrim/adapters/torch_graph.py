"""PyTorch models of any shape (residual, depthwise, attention): a :class:`~nettrim.graph.GraphModel`
whose signals PyTorch computes.

The module's ``forward`` is traced by ``torch.fx``; every ``Linear``, ``Conv1d`` and
``Conv2d`` it calls is a prunable layer, and so are the input and output projections of an
``nn.MultiheadAttention`` (the input projection when it attends to itself: query, key and
value the same tensor).  Everything else (attention arithmetic, norms, adds, pooling, any
activation, custom code) is left to PyTorch.  A batch norm that is a layer's only consumer
is folded into it, and its program follows from what consumes its output (see
:mod:`nettrim.graph`).

The model is never changed: nettrim works on a copy, and :func:`write` returns another copy
(or writes one with ``torch.save``), with the pruned weights and, with ``masks=True``,
``torch.nn.utils.prune``-style masks so that fine-tuning keeps the zeros.
"""
from __future__ import annotations

import copy
import operator

import numpy as np

from .. import _core
from ..errors import InvalidArgument, UnsupportedModelError
from ..graph import GraphModel, Runner, Site, framework_weights, layer_of
from ..io import atomic_write, first_line
from .base import Provenance


def _torch():
    try:
        import torch
        import torch.fx
        import torch.fx.passes.shape_prop
        import torch.nn.utils.prune
    except ImportError:
        raise ImportError("PyTorch models need torch: pip install 'nettrim[torch]'") from None
    return torch


_ATTENTION = ":attention"      # a value name suffix: a multi-head attention's output before out_proj
_BATCH_FIRST = ":batch_first"  # a value name suffix: a (tokens, batch, features) value transposed


def read(module, input_shape, *, check_inputs=None):
    """``(GraphModel, provenance)`` of a PyTorch module whose forward ``torch.fx`` can trace.

    ``input_shape``: one sample's shape (needed to find each layer's rows).  ``check_inputs``:
    samples to probe the model with (random ones otherwise); the module must give the same
    outputs twice on them (a module in training mode does not)."""
    torch = _torch()
    # (the modules whose outputs depend on the mode; the check of two passes below finds the rest)
    moody = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm, torch.nn.MultiheadAttention)
    training = next(((name, m) for name, m in module.named_modules() if m.training and isinstance(m, moody)), None)
    if training is not None:
        name, m = training
        raise InvalidArgument(f"model: {name or 'the model'} ({type(m).__name__}) is in training mode, where "
                              "dropout and batch norm change the outputs from call to call; call model.eval() first")
    root = copy.deepcopy(module)
    try:
        gm = torch.fx.symbolic_trace(root)
    except Exception as e:
        raise UnsupportedModelError(f"model: torch.fx cannot trace its forward ({first_line(e)}); nettrim reads "
                                    "graph models through torch.fx: make forward free of control flow on the "
                                    "data, or export the model to ONNX") from None
    if input_shape is None:
        input_shape = _input_shape(gm, torch)
    probe = _probe(input_shape, check_inputs)
    with torch.no_grad():
        torch.fx.passes.shape_prop.ShapeProp(gm).propagate(torch.from_numpy(probe))
        first, second = gm(torch.from_numpy(probe)), gm(torch.from_numpy(probe))
    first, second = _first_tensor(first), _first_tensor(second)
    if not torch.equal(first, second):
        raise InvalidArgument("model: its forward pass gives different outputs on the same inputs (dropout or "
                              "another random operation left on?); call model.eval() first")
    sites, layers, unreadable = [], [], {}
    shared = _shared_modules(gm)
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        m = gm.get_submodule(node.target)
        for site, weight, bias, extra, why in _sites_of(node, m, gm, torch):
            if why is None and node.target in shared:
                why = "its module is called more than once (its weights are shared)"
            if why is not None:
                unreadable[site.name] = why
                continue
            layers.append(layer_of(site, weight, bias, has_bias=bias is not None or site.fold is not None, **extra))
            sites.append(site)
    model = GraphModel(TorchRunner(root, gm), sites, layers, input_shape, tuple(first.shape[1:]),
                       unreadable=unreadable)
    return model, Provenance("torch", module, {"graph": True})


def _input_shape(gm, torch):
    """One sample's shape when the input goes straight into a Linear (its in_features)."""
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            for user in node.users:
                if user.op == "call_module" and isinstance(gm.get_submodule(user.target), torch.nn.Linear):
                    return (gm.get_submodule(user.target).in_features,)
    raise InvalidArgument("input_shape: required for this model (its input does not go straight into a Linear), "
                          "e.g. (1, 28, 28) for one-channel 28x28 images")


def _probe(input_shape, check_inputs):
    if check_inputs is not None:
        x = np.asarray(check_inputs, np.float32)
        if x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(input_shape)) and len(x):
            return np.ascontiguousarray(x[:8].reshape((-1,) + tuple(input_shape)))
        raise InvalidArgument(f"check_inputs: expected samples of shape (n,) + {tuple(input_shape)}, got "
                              f"{np.shape(check_inputs)}")
    return np.random.default_rng(0).standard_normal((2,) + tuple(input_shape)).astype(np.float32)


def _first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _shared_modules(gm):
    """The modules the graph calls more than once."""
    seen, shared = set(), set()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            (shared if node.target in seen else seen).add(node.target)
    return shared


def _shape(node):
    meta = node.meta.get("tensor_meta")
    return None if meta is None or not hasattr(meta, "shape") else tuple(meta.shape)


def _sites_of(node, m, gm, torch):
    """``[(site, weight, bias, layer kwargs, why not)]`` for one module call."""
    nn = torch.nn
    if isinstance(m, nn.MultiheadAttention):
        return _attention_sites(node, m, gm, torch)
    if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) or not node.args:
        return []
    name = node.target
    x = node.args[0]
    in_shape, out_shape = _shape(x), _shape(node)
    program, consumer, skip, fold, bn = _program(node, m, gm, torch)
    extra = {}
    if isinstance(m, nn.Linear):
        kind = "dense" if len(in_shape) == 2 else "tokens"
        positions = int(np.prod(in_shape[1:-1])) if kind == "tokens" else 1
        grid = (1, positions)
    else:
        kind = "conv2d" if isinstance(m, nn.Conv2d) else "conv1d"
        why = _conv_unsupported(m)
        site = Site(name, kind, program, consumer, x.name)
        if why:
            return [(site, None, None, None, why)]
        pad = _padding(m)
        if kind == "conv2d":
            grid = tuple(out_shape[2:])
            extra = dict(stride=m.stride, padding=pad, dilation=m.dilation, groups=m.groups)
        else:
            grid = (1, out_shape[2])
            extra = dict(stride=(1, m.stride[0]), padding=(0, pad[0]), dilation=(1, m.dilation[0]), groups=m.groups)
        positions = grid[0] * grid[1]
    site = Site(name, kind, program, consumer, x.name, skip, positions, grid, fold,
                {"module": name, "bn": bn, "bn_state": None if bn is None else _bn_state(gm.get_submodule(bn))})
    return [(site, _np(m.weight), None if m.bias is None else _np(m.bias), extra, None)]


def _attention_sites(node, m, gm, torch):
    """The projections of an ``nn.MultiheadAttention`` call: the input projection (fused q, k, v)
    when it attends to itself, and the output projection; both keep their outputs (linear)."""
    q, k, v = (list(node.args) + [node.kwargs.get(a) for a in ("query", "key", "value")][len(node.args):])[:3]
    suffix = "" if m.batch_first else _BATCH_FIRST
    shape = _shape(q)
    tokens = shape[1] if m.batch_first else shape[0]
    out = []
    base = dict(bn=None, bn_state=None)
    if q is k is v and m._qkv_same_embed_dim:
        site = Site(f"{node.target}.in_proj", "tokens", "linear", "attention (q, k, v)", q.name + suffix,
                    positions=tokens, grid=(1, tokens), handle=dict(base, module=node.target, part="in_proj"))
        out.append((site, _np(m.in_proj_weight), None if m.in_proj_bias is None else _np(m.in_proj_bias), {}, None))
    else:
        site = Site(f"{node.target}.in_proj", "tokens", "linear", "attention", q.name)
        out.append((site, None, None, None, "its query, key and value differ (cross-attention), or have other "
                                            "sizes: the input projection is not one layer on one input"))
    consumer = _describe(list(node.users))
    site = Site(f"{node.target}.out_proj", "tokens", "linear", consumer, node.name + _ATTENTION + suffix,
                positions=tokens, grid=(1, tokens), handle=dict(base, module=node.target, part="out_proj"))
    o = m.out_proj
    out.append((site, _np(o.weight), None if o.bias is None else _np(o.bias), {}, None))
    return out


def _conv_unsupported(m):
    if m.padding_mode != "zeros":
        return f"padding_mode={m.padding_mode!r} (nettrim unfolds convolutions with zero padding)"
    if isinstance(m.padding, str) and m.padding == "same":
        if any((d * (k - 1)) % 2 for d, k in zip(m.dilation, m.kernel_size)):
            return "padding='same' with an even kernel pads unevenly"
    return None


def _padding(m):
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0,) * len(m.kernel_size)
        return tuple(d * (k - 1) // 2 for d, k in zip(m.dilation, m.kernel_size))
    return tuple(m.padding)


def _is_relu(node, gm, torch):
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), torch.nn.ReLU)
    if node.op == "call_function":
        return node.target in (torch.relu, torch.nn.functional.relu, torch.relu_)
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _is_add(node, torch):
    if node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
        return len(node.args) == 2 and not node.kwargs
    return node.op == "call_method" and node.target in ("add", "add_") and len(node.args) == 2 and not node.kwargs


def _program(node, m, gm, torch):
    """``(program, consumer, skip value, fold, batch norm name)`` of a Linear or Conv call."""
    nn = torch.nn
    out, fold, bn = node, None, None
    users = list(node.users)
    bn_kinds = (nn.BatchNorm2d,) if isinstance(m, nn.Conv2d) else (nn.BatchNorm1d,)
    if len(users) == 1 and users[0].op == "call_module" and len(_shape(node) or ()) in (2, 3, 4):
        b = gm.get_submodule(users[0].target)
        if isinstance(b, bn_kinds) and b.track_running_stats and not (isinstance(m, nn.Linear) and
                                                                      len(_shape(node)) != 2):
            scale, shift = _bn_affine(b)
            if np.all(scale != 0):
                out, fold, bn = users[0], (scale, shift), users[0].target
                users = list(out.users)
    if len(users) == 1 and _is_relu(users[0], gm, torch):
        return "relu", "ReLU" + (" after its batch norm" if bn else ""), None, fold, bn
    if len(users) == 1 and _is_add(users[0], torch) and len(users[0].users) == 1 and \
            _is_relu(next(iter(users[0].users)), gm, torch) and (m.bias is not None or fold is not None):
        add = users[0]
        other = add.args[1] if add.args[0] is out else add.args[0]
        if isinstance(other, torch.fx.Node) and other is not out and _shape(other) == _shape(out):
            return "residual", f"add ({other.name}) then ReLU", other.name, fold, bn
    return "linear", _describe(users), None, fold, bn


def _describe(users):
    if not users:
        return "the output"
    names = [str(u.target.__name__ if callable(u.target) and hasattr(u.target, "__name__") else u.target)
             for u in users]
    return names[0] if len(names) == 1 else "several: " + ", ".join(names)


def _bn_affine(b):
    """``(scale, shift)``: a batch norm in inference, ``y -> scale * y + shift`` per channel."""
    var, mean = _np(b.running_var).astype(np.float64), _np(b.running_mean).astype(np.float64)
    scale = 1.0 / np.sqrt(var + b.eps)
    shift = -mean * scale
    if b.affine:
        gamma, beta = _np(b.weight).astype(np.float64), _np(b.bias).astype(np.float64)
        scale, shift = scale * gamma, shift * gamma + beta
    return scale.astype(np.float32), shift.astype(np.float32)


def _bn_state(b):
    return {"bias": None if b.bias is None else _np(b.bias).copy(), "running_mean": _np(b.running_mean).copy()}


def _np(t):
    return t.detach().cpu().numpy().astype(np.float32, copy=True)


class _Done(Exception):
    """Raised to stop a forward pass once every value asked for is computed."""


class TorchRunner(Runner):
    """Runs the traced module ``gm`` (whose submodules are those of ``root``, the model's copy)."""

    def __init__(self, root, gm):
        self.root, self.gm = root, gm

    def load(self, site, layer):
        torch = _torch()
        w, b = framework_weights(site, layer)
        h = site.handle
        m = self.gm.get_submodule(h["module"])
        with torch.no_grad():
            if h.get("part") == "in_proj":
                m.in_proj_weight.copy_(torch.from_numpy(w))
                if m.in_proj_bias is not None:
                    m.in_proj_bias.copy_(torch.from_numpy(b))
                return
            if h.get("part") == "out_proj":
                m = m.out_proj
            m.weight.copy_(torch.from_numpy(w.reshape(tuple(m.weight.shape))))
            if m.bias is not None:
                m.bias.copy_(torch.from_numpy(b))
            elif h["bn"] is not None:
                # No bias of its own: the batch norm after it takes the pruned layer's bias
                # (its shift moves by scale * b, see graph.framework_weights).
                bn, state = self.gm.get_submodule(h["bn"]), h["bn_state"]
                scale = site.fold[0]
                if bn.affine:
                    bn.bias.copy_(torch.from_numpy(state["bias"] + scale * b))
                else:
                    bn.running_mean.copy_(torch.from_numpy(state["running_mean"] - b))

    def values(self, X, names):
        torch = _torch()
        wanted = set(names)
        nodes = {n.split(":")[0] for n in wanted}
        got = {}
        runner = self

        class Recorder(torch.fx.Interpreter):
            def run_node(self, n):
                out = super().run_node(n)
                if n.name in nodes:
                    runner._record(n, out, wanted, got, self)
                    if len(got) == len(wanted):
                        raise _Done
                return out

        with torch.no_grad():
            try:
                Recorder(self.gm).run(torch.from_numpy(np.ascontiguousarray(X, np.float32)))
            except _Done:
                pass
        missing = wanted - set(got)
        if missing:
            raise UnsupportedModelError(f"model: the values {sorted(missing)} were not computed by its forward pass")
        return got

    def _record(self, n, out, wanted, got, interpreter):
        for name in [w for w in wanted if w.split(":")[0] == n.name]:
            value = self._attention_input(n, interpreter) if _ATTENTION in name else _first_tensor(out)
            if name.endswith(_BATCH_FIRST):
                value = value.transpose(0, 1)
            got[name] = value.detach().numpy()

    def _attention_input(self, n, interpreter):
        """A multi-head attention's output before its output projection: the call repeated with
        that projection made the identity."""
        torch = _torch()
        m = self.gm.get_submodule(n.target)
        args, kwargs = interpreter.fetch_args_kwargs_from_env(n)
        o = m.out_proj
        w, b = o.weight.detach().clone(), None if o.bias is None else o.bias.detach().clone()
        try:
            with torch.no_grad():
                o.weight.copy_(torch.eye(o.weight.shape[0], dtype=w.dtype))
                if o.bias is not None:
                    o.bias.zero_()
            return _first_tensor(m(*args, **kwargs))
        finally:
            with torch.no_grad():
                o.weight.copy_(w)
                if b is not None:
                    o.bias.copy_(b)

    def cache(self, X):
        """Every node's value on ``X``, when their size (measured on the probe's shapes) fits in a
        quarter of the memory available, else None."""
        torch = _torch()
        per_sample = sum(int(np.prod(m.shape[1:])) * 4 for m in
                         (n.meta.get("tensor_meta") for n in self.gm.graph.nodes) if hasattr(m, "shape"))
        have = _core.available_memory()
        if have and per_sample * len(X) > have // 4:
            return None
        values = {}

        class Keeper(torch.fx.Interpreter):
            def run_node(self, n):
                values[n.name] = out = super().run_node(n)
                return out

        with torch.no_grad():
            Keeper(self.gm).run(torch.from_numpy(np.ascontiguousarray(X, np.float32)))
        return values

    def outputs_changed(self, X, cache, sites):
        torch = _torch()
        changed = {s.handle["module"] for s in sites} | {s.handle["bn"] for s in sites if s.handle["bn"]}
        dirty = set()
        for n in self.gm.graph.nodes:
            if (n.op == "call_module" and n.target in changed) or any(a in dirty for a in n.all_input_nodes):
                dirty.add(n)

        class Resumer(torch.fx.Interpreter):
            def run_node(self, n):
                return super().run_node(n) if n in dirty or n.op == "output" else cache[n.name]

        with torch.no_grad():
            return _first_tensor(Resumer(self.gm).run(torch.from_numpy(np.ascontiguousarray(X, np.float32)))).numpy()

    def outputs(self, X):
        torch = _torch()
        with torch.no_grad():
            return _first_tensor(self.gm(torch.from_numpy(np.ascontiguousarray(X, np.float32)))).numpy()


def to_module(model: GraphModel, *, masks=False):
    """A copy of the model's module with its layers' current weights; ``masks=True`` adds
    ``torch.nn.utils.prune`` masks (``weight_mask``) of the nonzeros, so that training keeps them."""
    torch = _torch()
    model._load_all()
    module = copy.deepcopy(model.runner.root)
    if masks:
        for site in model.sites:
            h = site.handle
            m = module.get_submodule(h["module"])
            if h.get("part") == "out_proj":
                m = m.out_proj
            name = "in_proj_weight" if h.get("part") == "in_proj" else "weight"
            weight = getattr(m, name)
            torch.nn.utils.prune.custom_from_mask(m, name, mask=(weight.detach() != 0).to(weight.dtype))
    return module


def pruned_weights(module, model: GraphModel):
    """The weight tensors of ``module`` (a :func:`to_module` copy) that hold ``model``'s layers."""
    out = []
    for site in model.sites:
        h = site.handle
        m = module.get_submodule(h["module"])
        if h.get("part") == "in_proj":
            out.append(m.in_proj_weight)
        else:
            out.append((m.out_proj if h.get("part") == "out_proj" else m).weight)
    return out


def write(model: GraphModel, provenance, destination=None, *, masks=False):
    """The pruned model: a copy of the module (``destination`` None), or that copy saved with
    ``torch.save`` to ``destination`` (atomically; returns its sha256).  The copy is run on the
    probe inputs and must reproduce ``model``'s outputs."""
    torch = _torch()
    module = to_module(model, masks=masks)
    probe = np.random.default_rng(1).standard_normal((4,) + model.input_shape).astype(np.float32)
    with torch.no_grad():
        got = _first_tensor(module(torch.from_numpy(probe))).numpy()
    want = model.forward(probe)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4 * (1 + np.abs(want).max())):
        raise UnsupportedModelError("model: the written module does not reproduce nettrim's pruned outputs")
    if destination is None:
        return module
    return atomic_write(destination, lambda f: torch.save(module, f))
