"""ONNX models of any shape (residual, depthwise, attention): a :class:`~nettrim.graph.GraphModel`
whose signals onnxruntime computes.

Prunable layers: ``Gemm`` with a constant weight (``transA=0``, ``alpha = beta = 1``),
``MatMul`` with a constant 2-D weight as its second input, its bias the ``Add`` of a constant
that is its only consumer, and ``Conv`` (1-D and 2-D, any groups, symmetric padding) with a
constant weight.  Everything else (attention arithmetic, norms, adds, pooling, any activation)
is left to onnxruntime.  A ``BatchNormalization`` that is a layer's only consumer is folded
into it (PyTorch's exporter has usually fused it into the convolution already), and the
layer's program follows from what consumes its output (see :mod:`nettrim.graph`).

Where the samples lie in a value is found by running the model on one sample and on two: a
value's batch axis need not be the first (``nn.MultiheadAttention`` exports its input
projection on (tokens, batch, features)), and a ``Gemm`` may take every token of every
sample as rows ((tokens x batch, features)); :class:`OnnxRunner` hands the schemes each value
samples first.  The model's batch axis must be dynamic.

The model is never changed: nettrim works on a copy (in which a bias that the exporter
shares between layers, equal zeros say, is made each layer's own), and :func:`write`
returns another copy, or writes one, with the pruned weights.
"""
from __future__ import annotations

import collections
import copy

import numpy as np

from .._validate import check_shape, default_threads
from ..errors import InvalidArgument, InvalidArgumentType, UnsupportedModelError
from ..graph import GraphModel, Runner, Site, framework_weights, input_rows, layer_of, output_rows
from ..io import atomic_write, first_line
from .base import Provenance
from .onnx import _onnx, compact_weights, densify, read_onnx


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("ONNX graph models are run by onnxruntime: pip install 'nettrim[onnx]'") from None
    return onnxruntime


def read(model_proto, input_shape=None, *, check_inputs=None):
    """``(GraphModel, provenance)`` of an ONNX model (a ``ModelProto`` or a path).

    ``input_shape``: one sample's shape, needed when the model does not state it.
    ``check_inputs``: samples to probe the model with (the first two; random ones otherwise):
    they find each layer's shapes and where the samples lie in its values, and check nettrim's
    view of every layer against onnxruntime's outputs (a layer that fails is left unpruned, as
    unreadable)."""
    _ort()
    source = read_onnx(model_proto)
    model = copy.deepcopy(densify(source))
    g = _Graph(model)
    x = _the_input(g)
    input_shape = _input_shape(x, input_shape)
    probe = _probe(input_shape, check_inputs)
    found = [c for c in (_candidate(node, g) for node in model.graph.node) if c is not None]
    _name_layers(found)
    output = model.graph.output[0].name
    needed = {output} | {v for c in found if "why" not in c
                         for v in (c["input"], c["out"], c["after"], c.get("skip")) if v}
    runner = OnnxRunner(model, x.name, {})
    names = sorted(needed)
    try:
        one = dict(zip(names, runner.run(probe[:1], names)))
        two = dict(zip(names, runner.run(probe, names)))
    except Exception as e:          # onnxruntime's own errors (a type it lacks, a bad graph...)
        raise UnsupportedModelError(f"model: onnxruntime cannot run it ({first_line(e)})") from None
    runner.layouts = {n: _layout(one[n], two[n]) for n in names}
    if runner.layouts[output] != ("axis", 0):
        raise UnsupportedModelError(f"model: its output {output!r} does not hold one sample per row (its shape "
                                    f"{tuple(two[output].shape)} on two samples)")
    sites, layers, unreadable = [], [], {}
    for c in found:
        why = c.get("why")
        if why is None:
            site, weight, bias, extra, why = _site(c, g, runner.layouts, two)
        if why is None:
            layer = layer_of(site, weight, bias, has_bias=bias is not None or site.fold is not None, **extra)
            why = _misread(site, layer, runner.samples_first(site.input, two[site.input]),
                           runner.samples_first(c["after"], two[c["after"]]))
        if why is not None:
            unreadable[c["name"]] = why
            continue
        site.handle = _handle(c, g)
        sites.append(site)
        layers.append(layer)
    runner.feed([name for site in sites for name in (site.handle["weight"], site.handle["bias"],
                                                     site.handle["bn_bias"]) if name])
    output_shape = runner.samples_first(output, two[output]).shape[1:]
    graph_model = GraphModel(runner, sites, layers, input_shape, output_shape, unreadable=unreadable)
    return graph_model, Provenance("onnx", source, {"graph": True})


class _Graph:
    """The graph's connections: what produces and consumes each value, the constants."""

    def __init__(self, model):
        onnx, numpy_helper = _onnx()
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output if o}
        self.consumers = collections.defaultdict(list)
        for n in self.graph.node:
            for i in dict.fromkeys(i for i in n.input if i):
                self.consumers[i].append(n)
        self.outputs = {o.name for o in self.graph.output}
        self.uses = collections.Counter(i for n in self.graph.node for i in n.input if i)
        self.uses.update(self.outputs)
        self.attrs = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        self.array = lambda name: numpy_helper.to_array(self.inits[name])

    def constant(self, value):
        """``(initializer, own)``: the initializer that ``value`` is (through ``Identity`` nodes,
        which PyTorch's exporter adds where two tensors are equal), and whether nothing else
        reads it; ``(None, False)`` for a computed value."""
        own = True
        while value not in self.inits:
            node = self.producer.get(value)
            if node is None or node.op_type != "Identity":
                return None, False
            own = own and self.uses[value] == 1
            value = node.input[0]
        return value, own and self.uses[value] == 1

    def only_consumer(self, value):
        """The one node that reads ``value``, or None (several, or it is a model output)."""
        users = self.consumers[value]
        return users[0] if len(users) == 1 and value not in self.outputs else None

    def is_computed(self, value):
        return self.constant(value)[0] is None and not (value in self.producer and
                                                        self.producer[value].op_type == "Constant")

    def describe(self, value):
        parts = [n.op_type for n in self.consumers[value]] + (["the output"] if value in self.outputs else [])
        if not parts:
            return "nothing"
        return parts[0] if len(parts) == 1 else "several: " + ", ".join(parts)


def _the_input(g):
    onnx, _ = _onnx()
    inputs = [i for i in g.graph.input if i.name not in g.inits]
    if len(inputs) != 1:
        raise UnsupportedModelError(f"model: expected one input, got {len(inputs)}")
    x = inputs[0]
    if x.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise UnsupportedModelError(f"model: its input {x.name!r} is not float32")
    dims = x.type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value"):
        raise UnsupportedModelError(
            f"model: its input {x.name!r} has a fixed batch size ({dims[0].dim_value}); nettrim runs it on batches "
            f"of any size: export it with a dynamic batch axis, e.g. torch.onnx.export(..., "
            f"dynamic_axes={{{x.name!r}: {{0: 'n'}}}})")
    return x


def _input_shape(x, input_shape):
    """One sample's shape: the model's own (batch axis left out) where it states every size;
    ``input_shape`` must agree with the sizes it states."""
    dims = [d.dim_value if d.HasField("dim_value") else None for d in x.type.tensor_type.shape.dim][1:]
    stated = bool(dims) and all(dims)
    if input_shape is None:
        if not stated:
            raise InvalidArgument("input_shape: the model does not state its input shape; pass it, e.g. (1, 28, 28)")
        return tuple(dims)
    input_shape = check_shape("input_shape", input_shape)
    if dims and (len(dims) != len(input_shape) or any(d and d != s for d, s in zip(dims, input_shape))):
        raise InvalidArgument(f"input_shape: {input_shape} does not match the model's input "
                              f"({', '.join(str(d or '?') for d in dims)})")
    return input_shape


def _probe(input_shape, check_inputs):
    """Two samples: the first two of ``check_inputs`` (a random second one after a single one),
    or random ones."""
    rng = np.random.default_rng(0)
    if check_inputs is None:
        return rng.standard_normal((2,) + tuple(input_shape)).astype(np.float32)
    x = np.asarray(check_inputs, np.float32)
    if x.ndim < 2 or not len(x) or int(np.prod(x.shape[1:])) != int(np.prod(input_shape)):
        raise InvalidArgument(f"check_inputs: expected samples of shape (n,) + {tuple(input_shape)}, got "
                              f"{np.shape(check_inputs)}")
    x = x[:2].reshape((-1,) + tuple(input_shape))
    if len(x) == 1:
        x = np.concatenate([x, rng.standard_normal(x.shape).astype(np.float32)])
    return np.ascontiguousarray(x)


# --- the layers -------------------------------------------------------------------------------------
def _candidate(node, g):
    """A prunable layer's nodes and values (a dict), with ``why`` it cannot be pruned where it
    cannot; None for a node that is no layer (a product of two computed values)."""
    op = node.op_type
    if op not in ("Gemm", "MatMul", "Conv") or len(node.input) < 2:
        return None
    weight, own = g.constant(node.input[1])
    if weight is None or not g.is_computed(node.input[0]):
        return None
    c = {"node": node, "op": op, "weight": weight, "input": node.input[0], "out": node.output[0],
         "bias": None, "bias_at": None, "attrs": g.attrs(node)}
    w = g.array(weight)
    if not own:
        return dict(c, why=f"weights shared: other nodes read its weight {weight!r} too")
    if w.dtype.kind != "f":
        return dict(c, why=f"its weights are {w.dtype}, not floating point")
    why = _unsupported(c, w)
    if why:
        return dict(c, why=why)
    if op in ("Gemm", "Conv") and len(node.input) > 2 and node.input[2]:
        bias = g.constant(node.input[2])[0]
        size = w.shape[0] if op == "Conv" or c["attrs"].get("transB", 0) else w.shape[1]
        if bias is None:
            return dict(c, why="its bias is computed, not a constant")
        if g.array(bias).size != size:
            return dict(c, why=f"its bias of shape {tuple(g.array(bias).shape)} is not one value per output")
        c.update(bias=bias, bias_at=(node, 2))
    if op == "MatMul":
        add = g.only_consumer(c["out"])
        if add is not None and add.op_type == "Add":
            position = 1 if add.input[0] == c["out"] else 0
            bias = g.constant(add.input[position])[0]
            shape = None if bias is None else g.array(bias).shape
            if shape is not None and np.prod(shape) == w.shape[1] and shape[-1] == w.shape[1]:
                c.update(bias=bias, bias_at=(add, position), out=add.output[0])
    c["after"], c["bn"] = c["out"], _batch_norm(c, g)
    if c["bn"] is not None:
        c["after"] = c["bn"].output[0]
    c.update(_program(c, g))
    return c


def _unsupported(c, w):
    """Why this Gemm, MatMul or Conv is not a layer nettrim reads (None when it is)."""
    a = c["attrs"]
    if c["op"] == "Gemm":
        if a.get("transA", 0):
            return "Gemm with transA=1"
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            return f"Gemm with alpha={a.get('alpha', 1.0):g}, beta={a.get('beta', 1.0):g} (nettrim reads 1 and 1)"
        return None if w.ndim == 2 else f"Gemm with a {w.ndim}-D weight"
    if c["op"] == "MatMul":
        return None if w.ndim == 2 else f"MatMul with a {w.ndim}-D weight"
    if w.ndim not in (3, 4):
        return f"a {w.ndim - 2}-D convolution (nettrim prunes 1-D and 2-D ones)"
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        return f"Conv with auto_pad={auto} (nettrim unfolds convolutions with symmetric padding)"
    pads = list(a.get("pads", [0] * 2 * (w.ndim - 2))) if auto == "NOTSET" else [0] * 2 * (w.ndim - 2)
    if pads[:w.ndim - 2] != pads[w.ndim - 2:]:
        return f"Conv with asymmetric pads {pads} (nettrim unfolds convolutions with symmetric padding)"
    return None


def _batch_norm(c, g):
    """A ``BatchNormalization`` (inference, constant parameters) that is the layer's only consumer
    and normalises its outputs (axis 1: a convolution's channels, a 2-D product's features)."""
    bn = g.only_consumer(c["out"])
    if bn is None or bn.op_type != "BatchNormalization" or g.attrs(bn).get("training_mode", 0) or len(bn.output) != 1:
        return None
    if not all(g.constant(i)[0] is not None for i in bn.input[1:5]):
        return None
    return bn


def _fold(c, g):
    """``(scale, shift)`` of the batch norm ``c["bn"]``: ``y -> scale * y + shift`` per output, or None
    where a scale is zero."""
    bn = c["bn"]
    gamma, beta, mean, var = (g.array(g.constant(i)[0]).astype(np.float64).reshape(-1) for i in bn.input[1:5])
    scale = gamma / np.sqrt(var + g.attrs(bn).get("epsilon", 1e-5))
    if not np.all(scale != 0):
        return None
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def _program(c, g):
    """``{program, consumer, skip}`` of a layer from what reads its output (after its batch norm);
    the residual program's shapes are checked once they are known (:func:`_site`)."""
    after, bn = c["after"], " after its BatchNormalization" if c["bn"] is not None else ""
    user = g.only_consumer(after)
    if user is not None and user.op_type == "Relu":
        return {"program": "relu", "consumer": "Relu" + bn}
    if user is not None and user.op_type == "Add" and len(user.input) == 2 and after in user.input:
        other = user.input[1] if user.input[0] == after else user.input[0]
        relu = g.only_consumer(user.output[0])
        if other != after and g.is_computed(other) and relu is not None and relu.op_type == "Relu":
            return {"program": "residual", "consumer": f"Add ({other}) then Relu" + bn, "skip": other}
    return {"program": "linear", "consumer": g.describe(after) + bn}


def _name_layers(found):
    """Each layer's name: its node's, or its output's where the node has none or shares it."""
    counts = collections.Counter(c["node"].name for c in found)
    for c in found:
        c["name"] = c["node"].name if c["node"].name and counts[c["node"].name] == 1 else c["node"].output[0]


def _site(c, g, layouts, two):
    """``(site, weight as PyTorch holds it, bias, layer kwargs, why not)`` of a candidate layer,
    its kind and positions from the values' shapes on the probe."""
    fold = None if c["bn"] is None else _fold(c, g)
    if c["bn"] is not None and (fold is None or (c["op"] != "Conv" and two[c["out"]].ndim != 2)):
        # Not folded (a zero scale; a 3-D product's batch norm normalises its tokens, axis 1,
        # not its features): the batch norm is then what consumes the layer's output.
        fold = None
        c.update(after=c["out"], bn=None, program="linear", consumer=g.describe(c["out"]), skip=None)
    bad = next((v for v in (c["input"], c["after"]) if layouts[v] is None), None)
    if bad is not None:
        return (None,) * 4 + (f"nettrim cannot tell the samples apart in {bad!r} (its shape on two samples: "
                              f"{tuple(two[bad].shape)})",)
    x_shape = _per_sample(two[c["input"]].shape, layouts[c["input"]])
    out_shape = _per_sample(two[c["after"]].shape, layouts[c["after"]])
    program, skip = c["program"], c.get("skip")
    if program == "residual" and (tuple(two[skip].shape) != tuple(two[c["after"]].shape) or
                                  layouts[skip] != layouts[c["after"]]):
        program, skip = "linear", None
    w, extra = g.array(c["weight"]), {}
    bias = None if c["bias"] is None else g.array(c["bias"]).reshape(-1)
    if program == "residual" and bias is None and fold is None:
        program, skip = "linear", None          # (the residual program fits a bias)
    if c["op"] == "Conv":
        if layouts[c["input"]] != ("axis", 0):
            return (None,) * 4 + ("its input does not hold one sample per row",)
        kind = "conv2d" if w.ndim == 4 else "conv1d"
        a = c["attrs"]
        n = w.ndim - 2
        pads = list(a.get("pads", [0] * 2 * n))[:n]
        stride, dilation = list(a.get("strides", [1] * n)), list(a.get("dilations", [1] * n))
        if kind == "conv2d":
            grid = tuple(out_shape[1:])
            extra = dict(stride=stride, padding=pads, dilation=dilation, groups=a.get("group", 1))
        else:
            grid = (1, out_shape[1])
            extra = dict(stride=(1, stride[0]), padding=(0, pads[0]), dilation=(1, dilation[0]),
                         groups=a.get("group", 1))
        positions = grid[0] * grid[1]
        weight = w
    else:
        kind = "dense" if len(x_shape) == 1 else "tokens"
        positions = int(np.prod(x_shape[:-1]))
        grid = (1, positions)
        weight = w if c["op"] == "Gemm" and c["attrs"].get("transB", 0) else w.T
    site = Site(c["name"], kind, program, c["consumer"] if program == c["program"] else g.describe(c["after"]),
                c["input"], skip, positions, grid, fold)
    return site, weight, bias, extra, None


def _misread(site, layer, x, y):
    """Why nettrim's view of the layer does not give onnxruntime's outputs ``y`` from its inputs
    ``x`` (at a few hundred of its output positions), or None when it does."""
    n = len(x)
    if site.kind == "dense":
        images = np.arange(n)
        rows = cols = np.zeros_like(images)
    else:
        total = n * site.positions
        flat = np.unique(np.linspace(0, total - 1, min(total, 256)).astype(np.int64))
        images, position = np.divmod(flat, site.positions)
        rows, cols = np.divmod(position, site.grid[1])
    try:
        u = input_rows(site, layer, x, images, rows, cols)
        got = np.hstack([u[:, layer.input_columns(k)] @ layer.group_matrix(k)[0] + layer.group_matrix(k)[1]
                         for k in range(layer.groups)])
        want = output_rows(site, y, images, rows, cols)
    except (ValueError, IndexError) as e:
        return f"its shapes are not those nettrim reads ({first_line(e)})"
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-3 * (1 + np.abs(want).max())):
        return "nettrim's reading of it does not reproduce onnxruntime's outputs"
    return None


def _handle(c, g):
    """Where the runner writes the layer's weights: initializer names that are the layer's own
    (a bias or batch norm shift that other nodes read too is given its own copy, see :func:`_own`)."""
    handle = {"op": c["op"], "weight": c["weight"], "transB": c["attrs"].get("transB", 0), "bias": None,
              "bn_bias": None, "bn_state": None}
    if c["bias"] is not None:
        handle["bias"] = _own(g, *c["bias_at"])
    elif c["bn"] is not None:
        handle["bn_bias"] = _own(g, c["bn"], 2)
        handle["bn_state"] = g.array(handle["bn_bias"]).astype(np.float32).reshape(-1)
    return handle


def _own(g, node, position):
    """The initializer that input ``position`` of ``node`` reads, made this node's alone: where
    other nodes read it too (directly or through an ``Identity``), a copy under a new name."""
    name, own = g.constant(node.input[position])
    if own:
        return name
    _, numpy_helper = _onnx()
    new, k = f"{name}/nettrim", 1
    while new in g.inits or new in g.producer:
        new, k = f"{name}/nettrim{k}", k + 1
    g.graph.initializer.append(numpy_helper.from_array(g.array(name), new))
    g.inits[new] = g.graph.initializer[-1]
    g.uses[node.input[position]] -= 1
    node.input[position] = new
    g.uses[new] = 1
    return new


# --- where the samples are ------------------------------------------------------------------------
def _layout(one, two):
    """Where the samples lie in a value, from its values on one sample (``one``) and on two, the
    first the same (``two``): ``("axis", k)``, one sample per index of axis k; ``("rows", T,
    order)``, T rows per sample along axis 0, a sample's rows together (order "sample") or
    interleaved (order "position": row ``t * n + i`` is sample i's position t); None when neither."""
    one, two = np.asarray(one), np.asarray(two)
    if one.ndim != two.ndim:
        return None
    changed = [k for k in range(one.ndim) if one.shape[k] != two.shape[k]]
    if len(changed) != 1 or two.shape[changed[0]] != 2 * one.shape[changed[0]]:
        return None
    k, size = changed[0], one.shape[changed[0]]

    def same(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-3, atol=1e-4 * (1 + np.abs(b).max(initial=0)))

    if size == 1:
        return ("axis", k) if same(np.take(two, [0], axis=k), one) else None
    if k == 0 and same(two[:size], one):
        return ("rows", size, "sample")
    if k == 0 and same(two[0::2], one):
        return ("rows", size, "position")
    return None


def _per_sample(shape, layout):
    """One sample's shape within a value of ``shape`` laid out as ``layout``."""
    if layout[0] == "axis":
        return tuple(shape[:layout[1]]) + tuple(shape[layout[1] + 1:])
    return (layout[1],) + tuple(shape[1:])


class OnnxRunner(Runner):
    """Runs ``model`` (nettrim's copy) with onnxruntime.

    ``layouts``: {value name: where its samples lie} (see :func:`_layout`); :meth:`values`
    returns each value samples first, the values asked for made outputs of the session's model.

    The initializers that :meth:`load` writes (:meth:`feed`) change hundreds of times while a
    model is pruned (the allocation tries every layer at many sparsities), and a session bakes
    its initializers in when it is built: 7 ms for a small transformer, 0.3 s for ResNet-18
    (measured on one thread).  So the first run on new weights uses a session that takes them
    as inputs (built once for each set of values; its runs are slower, ResNet-18's by 15-40%,
    as onnxruntime cannot prepare constant weights), and a second run on the same weights
    builds a session with them baked in, used until they change."""

    def __init__(self, model, input_name, layouts):
        self.model, self.input_name, self.layouts = model, input_name, layouts
        self.weights = {}           # initializer name: its current array
        self._forget()

    def _forget(self):
        self._version = 0           # bumped whenever :attr:`weights` change
        self._fed, self._baked, self._last = {}, {}, None

    def __getstate__(self):          # (copies and pickles leave the sessions behind)
        return {k: v for k, v in self.__dict__.items() if k not in ("_fed", "_baked", "_last", "_version")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._forget()

    def feed(self, names):
        """Make the initializers ``names`` those that :meth:`load` writes."""
        _, numpy_helper = _onnx()
        self.weights = {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer if t.name in set(names)}
        self._forget()

    def load(self, site, layer):
        w, b = framework_weights(site, layer)
        h = site.handle
        if h["op"] == "MatMul" or (h["op"] == "Gemm" and not h["transB"]):
            w = w.T                  # (these hold inputs by outputs)
        self._put(h["weight"], w)
        if h["bias"] is not None:
            self._put(h["bias"], b)
        elif h["bn_bias"] is not None:
            # No bias of its own: the batch norm after it takes the pruned layer's bias
            # (its shift moves by scale * b, see graph.framework_weights).
            self._put(h["bn_bias"], h["bn_state"] + site.fold[0] * b)

    def _put(self, name, array):
        like = self.weights[name]
        array = np.asarray(array, like.dtype).reshape(like.shape)
        if not np.array_equal(array, like):
            self.weights[name] = array
            self._version += 1
            self._baked = {}

    def with_weights(self):
        """A copy of the model with the current weights in its initializers."""
        _, numpy_helper = _onnx()
        model = copy.deepcopy(self.model)
        for t in model.graph.initializer:
            if t.name in self.weights:
                t.CopyFrom(numpy_helper.from_array(self.weights[t.name], t.name))
        return model

    def _session(self, key, baked):
        """A session of the model with outputs ``key``: the weights baked in, or taken as inputs."""
        onnx, _ = _onnx()
        ort = _ort()
        model = self.with_weights() if baked else copy.deepcopy(self.model)
        graph = model.graph
        if not baked:
            for t in [t for t in graph.initializer if t.name in self.weights]:
                graph.initializer.remove(t)
            listed = {i.name for i in graph.input}
            graph.input.extend(onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                for name, a in self.weights.items() if name not in listed)
        present = {o.name for o in graph.output}
        graph.output.extend(onnx.ValueInfoProto(name=n) for n in key if n not in present)
        options = ort.SessionOptions()
        options.intra_op_num_threads = default_threads()
        options.inter_op_num_threads = 1
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def run(self, X, names):
        """onnxruntime's values ``names`` on ``X`` as it computes them (no layout applied)."""
        key = tuple(sorted(set(names)))
        feeds = {self.input_name: np.ascontiguousarray(X, np.float32)}
        if key not in self._baked and (not self.weights or self._last == (key, self._version)):
            self._baked[key] = self._session(key, baked=True)
        if key in self._baked:
            session = self._baked[key]
        else:
            self._last = (key, self._version)
            if key not in self._fed:
                self._fed[key] = self._session(key, baked=False)
            session, feeds = self._fed[key], dict(feeds, **self.weights)
        return session.run(list(names), feeds)

    def samples_first(self, name, value):
        """``value`` (of ``name``) as (samples, ...): its samples' axis first, its rows per sample split."""
        layout = self.layouts[name]
        if layout[0] == "axis":
            return np.moveaxis(value, layout[1], 0)
        size = layout[1]
        if layout[2] == "sample":
            return value.reshape((-1, size) + value.shape[1:])
        return np.swapaxes(value.reshape((size, -1) + value.shape[1:]), 0, 1)

    def values(self, X, names):
        names = list(dict.fromkeys(names))
        return {n: self.samples_first(n, v) for n, v in zip(names, self.run(X, names))}

    def outputs(self, X):
        output = self.model.graph.output[0].name
        return self.run(X, [output])[0]


def to_model(model: GraphModel):
    """A copy of the model's ``ModelProto`` with its layers' current weights."""
    if not isinstance(model, GraphModel) or not isinstance(model.runner, OnnxRunner):
        raise InvalidArgumentType(f"model: expected a GraphModel read from an ONNX model, got {type(model).__name__}")
    model._load_all()
    return model.runner.with_weights()


def write(model: GraphModel, provenance, destination=None, *, sparse=False):
    """The pruned model: a ``ModelProto`` (``destination`` None), or that model written to
    ``destination`` (atomically; returns its sha256).  ``sparse=True`` stores the layers'
    weights compactly (a sparse initializer or a bit mask with the nonzero values, whichever is
    smallest, as :func:`nettrim.adapters.onnx.compact_weights`; onnxruntime runs either), so
    the file shrinks with the pruning.  The written model is run by onnxruntime on probe inputs
    and must reproduce ``model``'s outputs."""
    if not isinstance(provenance, Provenance) or provenance.format != "onnx":
        raise InvalidArgumentType("provenance: expected the Provenance that nettrim.adapters.read gave for an ONNX "
                                  "model")
    out = to_model(model)
    if sparse:
        compact_weights(out, [site.handle["weight"] for site in model.sites])
    probe = np.random.default_rng(1).standard_normal((4,) + model.input_shape).astype(np.float32)
    got = OnnxRunner(out, model.runner.input_name, {}).outputs(probe)
    want = model.forward(probe)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4 * (1 + np.abs(want).max())):
        raise UnsupportedModelError("model: the written model does not reproduce nettrim's pruned outputs")
    if destination is None:
        return out
    return atomic_write(destination, lambda f: f.write(out.SerializeToString()))
