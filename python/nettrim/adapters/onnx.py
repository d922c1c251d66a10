"""ONNX models: read with ``onnx`` into a :class:`~nettrim.network.Network`, write a pruned ``.onnx``.

Supported nodes: ``Gemm``, ``MatMul`` (+ ``Add`` of a bias), ``Conv``, ``Relu``, ``MaxPool``,
``AveragePool``, ``Flatten``, ``Reshape`` to (batch, features), ``BatchNormalization``
(folded into the layer before it), ``Dropout`` and ``Identity``; ``Shape``/``Gather``/... that
only compute a reshape's target are followed.  The numpy forward pass is checked against
onnxruntime's outputs (when onnxruntime is installed), so a misread model is an error.

Compact weights (``save_onnx(..., sparse=True)``): each pruned weight is stored in whichever
of three forms is smallest, all of them standard ONNX that onnxruntime runs:

- dense (a plain initializer), when little was pruned;
- a sparse initializer (``graph.sparse_initializer``, ``SparseTensorProto`` with int64
  linear indices: 12 bytes per nonzero in float32), for very sparse weights;
- a bit mask and the nonzero values (1 bit per weight + 4 bytes per nonzero), expanded by a
  few constant nodes (``Cast``, ``Div``, ``Mod``, ``CumSum``, ``Gather``, ``Slice``, ``Reshape``;
  opset 11 or later) that onnxruntime folds into a dense initializer when it loads the model,
  so inference runs as fast as with the dense file.

:func:`load_onnx` reads all three back (:func:`densify`).
"""
from __future__ import annotations

import collections
import copy
import hashlib
import os

import numpy as np

from .. import _core
from .._validate import check_bool, check_output_path, check_shape
from ..errors import InvalidArgument, InvalidArgumentType, UnsupportedModelError
from ..io import atomic_write
from ..layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from ..network import Network
from .base import Provenance, check_reproduces


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("ONNX models need onnx and onnxruntime: pip install 'nettrim[onnx]'") from None
    return onnx, numpy_helper


def read_onnx(path_or_model, name="model"):
    """An ``onnx.ModelProto`` from a path or a ModelProto; errors name the file."""
    onnx, _ = _onnx()
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, (str, bytes, os.PathLike)):
        path = os.fsdecode(path_or_model) if isinstance(path_or_model, bytes) else os.fspath(path_or_model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        try:
            return onnx.load(path)
        except Exception as e:            # protobuf's DecodeError, external data errors, ...
            text = str(e).strip().splitlines()
            raise InvalidArgument(f"{path}: not a readable ONNX model, truncated or not ONNX? "
                             f"({text[0] if text else type(e).__name__})") from None
    raise InvalidArgumentType(f"{name}: expected a path to an .onnx file or an onnx.ModelProto, got {type(path_or_model).__name__}")


def graph_signature(model):
    """A digest of the graph's nodes (operations and connections), to recognise the model again."""
    h = hashlib.sha256()
    for node in model.graph.node:
        h.update(repr((node.op_type, list(node.input), list(node.output))).encode())
    return h.hexdigest()


def load_onnx(path_or_model, input_shape=None, *, check_inputs=None) -> Network:
    """The network of an ONNX model (a path or a ``ModelProto``), batch norms folded (see :func:`read`)."""
    return read(path_or_model, input_shape, check_inputs=check_inputs)[0]


def read(path_or_model, input_shape=None, *, check_inputs=None, not_a_chain=None):
    """``(network, provenance)`` of an ONNX model (a path or a ``ModelProto``), batch norms folded.

    ``input_shape`` (one sample's) is needed only when the model does not state it.
    ``not_a_chain``: called with the model (as given) when it is not a chain of the nodes above,
    its result returned instead of the error (``nettrim.adapters.read`` reads it as a graph)."""
    source = read_onnx(path_or_model)
    model = densify(source)
    if input_shape is not None:
        input_shape = check_shape("input_shape", input_shape)
    try:
        steps, origins, input_shape = _parse(model, input_shape)
    except UnsupportedModelError:
        if not_a_chain is None:
            raise
        return not_a_chain(source)
    net = Network(steps, input_shape)
    provenance = Provenance("onnx", model, {"origins": origins, "signature": graph_signature(model)})
    try:
        import onnxruntime  # noqa: F401  (only whether it is there)
    except ImportError:
        return net, provenance
    check_reproduces(net, check_inputs, lambda x: _run_batched(model, x), "onnxruntime")
    return net, provenance


def _parse(model, input_shape):
    """``(steps, origins, input_shape)``: the chain of steps and where each prunable layer's
    weights live in the graph."""
    onnx, numpy_helper = _onnx()
    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UnsupportedModelError(f"model: expected one input and one output, got {len(inputs)} and {len(graph.output)}")
    if input_shape is None:
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
        if not dims or not all(dims):
            raise InvalidArgument("input_shape: the model does not state its input shape; pass it, e.g. (1, 28, 28)")
        input_shape = tuple(dims)
    steps, origins, current, shape_tensors = [], [], inputs[0].name, set()
    for index, node in enumerate(graph.node):
        name, op = node.name or node.output[0], node.op_type
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Constant":
            init[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        data_inputs = [i for i in node.input if i == current]
        if not data_inputs:
            if all(i in init or i in shape_tensors or not i for i in node.input):
                shape_tensors.update(node.output)       # computes shapes or constants, not data
                continue
            raise UnsupportedModelError(f"{name}: {op} node not on the chain of layers (branches are not supported)")
        if op == "Shape":
            shape_tensors.update(node.output)
            continue
        others = [i for i in node.input[1:] if i]
        if node.input[0] != current or any(i == current for i in others):
            raise UnsupportedModelError(f"{name}: {op} combines the data with itself (residual connections are "
                                        "not supported)")
        step, origin = _step(node, name, op, attrs, init, shape_tensors, steps)
        if origin is not None:
            origins.append({"node": index, **origin})
        if op == "BatchNormalization" and origins and isinstance(steps[-1], (Dense, Conv2d)):
            origins[-1]["bn"] = index
        if step is not None:
            steps.append(step)
        current = node.output[0]
    if current != graph.output[0].name:
        raise UnsupportedModelError("model: the output is not the end of the chain of layers")
    if isinstance(steps[0], Dense) and len(input_shape) > 1:
        if int(np.prod(input_shape)) != steps[0].weight.shape[0]:
            raise InvalidArgument(f"input_shape: {input_shape} has {int(np.prod(input_shape))} values, but the model's first "
                             f"layer takes {steps[0].weight.shape[0]} inputs")
        input_shape = (steps[0].weight.shape[0],)       # a dense model takes flat rows
    return steps, origins, input_shape


def _step(node, name, op, attrs, init, shape_tensors, steps):
    def weight(i):
        if len(node.input) <= i or not node.input[i]:
            return None
        if node.input[i] not in init:
            raise UnsupportedModelError(f"{name}: {op} with a weight that is not a constant initializer")
        return np.asarray(init[node.input[i]], np.float32)

    if op == "Gemm":
        if attrs.get("transA", 0):
            raise UnsupportedModelError(f"{name}: Gemm with transA=1 is not supported")
        B, C = weight(1), weight(2)
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        if alpha == 0:
            raise UnsupportedModelError(f"{name}: Gemm with alpha=0 (its output does not depend on its weights)")
        W = alpha * (B.T if attrs.get("transB", 0) else B)
        b = None if C is None else beta * np.broadcast_to(C, (W.shape[1],))
        return Dense(W, b, relu=False, name=name), {"name": name, "kind": "Gemm", "alpha": alpha, "beta": beta,
                                                     "transB": attrs.get("transB", 0)}
    if op == "MatMul":
        W = weight(1)
        if W.ndim != 2:
            raise UnsupportedModelError(f"{name}: MatMul with a {W.ndim}-D weight is not supported")
        return Dense(W, None, relu=False, name=name), {"name": name, "kind": "MatMul"}
    if op == "Add":
        prev = steps[-1] if steps else None
        bias = weight(1)
        if not isinstance(prev, (Dense, Conv2d)) or prev.relu or prev.has_bias:
            raise UnsupportedModelError(f"{name}: Add is supported only as the bias of a MatMul or Conv")
        prev.bias = np.asarray(np.broadcast_to(bias.reshape(-1), prev.bias.shape), np.float32).copy()
        prev.has_bias = True
        return None, None
    if op == "Conv":
        W, B = weight(1), weight(2)
        if W.ndim != 4:
            raise UnsupportedModelError(f"{name}: only 2-D convolutions are supported")
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID") or pads[:2] != pads[2:]:
            raise UnsupportedModelError(f"{name}: Conv with asymmetric or automatic padding is not supported")
        return (Conv2d(W, B, attrs.get("strides", 1), pads[:2], attrs.get("dilations", 1), attrs.get("group", 1),
                       relu=False, name=name), {"name": name, "kind": "Conv"})
    if op == "Relu":
        return ReLU(), None
    if op in ("MaxPool", "AveragePool"):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("ceil_mode", 0) or pads[:2] != pads[2:] or any(d != 1 for d in attrs.get("dilations", [1])):
            raise UnsupportedModelError(f"{name}: {op} with ceil_mode, dilation or asymmetric padding is not supported")
        k = attrs["kernel_shape"]
        stride = attrs.get("strides", [1, 1])
        if op == "MaxPool":
            return MaxPool2d(k, stride, pads[:2]), None
        return AvgPool2d(k, stride, pads[:2], bool(attrs.get("count_include_pad", 0))), None
    if op == "Flatten":
        if attrs.get("axis", 1) != 1:
            raise UnsupportedModelError(f"{name}: Flatten with axis={attrs.get('axis')} is not supported")
        return Flatten(), None
    if op == "Reshape":
        target = node.input[1]
        if target in init and len(np.asarray(init[target]).reshape(-1)) != 2:
            raise UnsupportedModelError(f"{name}: Reshape to {init[target].tolist()} is not supported "
                                        "(only to (batch, features))")
        if target not in init and target not in shape_tensors:
            raise UnsupportedModelError(f"{name}: Reshape to a computed shape is not supported")
        return Flatten(), None
    if op == "BatchNormalization":
        scale, bias, mean, var = (weight(i) for i in range(1, 5))
        return BatchNorm(scale, bias, mean, var, attrs.get("epsilon", 1e-5)), None
    if op in ("Dropout", "Identity"):
        return None, None
    raise UnsupportedModelError(f"{name}: unsupported ONNX operation {op} (Net-Trim handles Gemm, MatMul+Add, Conv, "
                                "Relu, MaxPool, AveragePool, Flatten, Reshape, BatchNormalization)")


def save_onnx(net: Network, model, path, *, sparse=False):
    """Write ``model`` with the (pruned) weights of ``net`` to ``path`` atomically; returns the
    written ``ModelProto`` (see :func:`write`).  ``net`` must come from :func:`load_onnx` on the
    same model."""
    path = check_output_path("path", path)
    out = write(net, _provenance_of(model, net), None, sparse=check_bool("sparse", sparse))
    atomic_write(path, lambda f: f.write(out.SerializeToString()))
    return out


def _provenance_of(model, net):
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network, got {type(net).__name__}")
    model = densify(read_onnx(model))
    try:
        _, origins, _ = _parse(model, net.input_shape)
    except InvalidArgument as e:
        raise InvalidArgument(f"model: not a model nettrim reads, so not the one the network came from ({e})") from None
    return Provenance("onnx", model, {"origins": origins, "signature": graph_signature(model)})


def write(net: Network, provenance, destination=None, *, sparse=False):
    """The model ``provenance`` came from, with the (pruned) weights of ``net``: a ``ModelProto``
    when ``destination`` is None, else written there atomically (returns the file's sha256).

    Batch norms that were folded are set to the identity, the folded weights going into the
    layer before them.  With ``sparse=True`` the pruned weights are stored compactly (see the
    module's docstring), so that the file shrinks with the pruning."""
    onnx, numpy_helper = _onnx()
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network, got {type(net).__name__}")
    model, origins = provenance.source, provenance.details["origins"]
    if provenance.details.get("signature") not in (None, graph_signature(model)):
        raise InvalidArgument("model: not the model the network was read from (its graph differs)")
    names = [o["name"] for o in origins]
    if [layer.name for layer in net.layers] != names:
        raise InvalidArgument(f"net: its layers {[layer.name for layer in net.layers]} are not the model's {names} "
                              f"(write a network read from this model, e.g. by nettrim.adapters.onnx.load_onnx)")
    out = copy.deepcopy(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    _check_shapes(net, origins, graph, inits, numpy_helper)
    uses = collections.Counter(i for n in graph.node for i in n.input if i)

    def own(node, position, array):
        """``array`` into input ``position`` of ``node``: in place where that initializer is this
        node's alone and of the same size; otherwise into a new initializer of this node's (a
        tensor that two nodes share keeps the other's values; a broadcast bias, one per output)."""
        name = node.input[position]
        like = numpy_helper.to_array(inits[name])
        array = np.asarray(array, dtype=like.dtype if like.dtype.kind == "f" else np.float32)
        if uses[name] == 1 and array.size == like.size:
            put(name, array, inits[name])
            return
        new, k = f"{name}_nettrim", 1
        while new in inits or new in uses:
            new, k = f"{name}_nettrim{k}", k + 1
        put(new, array if array.size != like.size else array.reshape(like.shape))
        node.input[position] = new
        uses[name] -= 1
        uses[new] = 1

    def put(name, array, like=None):
        array = np.asarray(array, dtype=np.float32 if like is None else numpy_helper.to_array(like).dtype)
        if like is not None:
            array = array.reshape(numpy_helper.to_array(like).shape)
        tensor = numpy_helper.from_array(array, name)
        if name in inits:
            inits[name].CopyFrom(tensor)
        else:
            graph.initializer.append(tensor)
            inits[name] = graph.initializer[-1]

    def set_bias(node, position, layer, values):
        if len(node.input) > position and node.input[position]:
            own(node, position, values)
        elif np.any(values):
            while len(node.input) < position:
                node.input.append("")
            bias_name = f"{layer.name}_nettrim_bias"
            put(bias_name, values)
            node.input.append(bias_name)

    for layer, origin in zip(net.layers, origins):
        node = graph.node[origin["node"]]
        kind = origin["kind"]
        bias_in_bn = False      # the bias written as the batch norm's shift (a MatMul without an Add)
        if kind == "Gemm":
            W = layer.weight / origin["alpha"]
            own(node, 1, W.T if origin["transB"] else W)
            if origin["beta"] == 0 and np.any(layer.bias):
                # (beta = 0 ignores C: the bias goes in with beta 1)
                for a in node.attribute:
                    if a.name == "beta":
                        a.f = 1.0
                origin = {**origin, "beta": 1.0}
            if origin["beta"] != 0:
                set_bias(node, 2, layer, layer.bias / origin["beta"])
        elif kind == "MatMul":
            own(node, 1, layer.weight)
            nxt = graph.node[origin["node"] + 1] if origin["node"] + 1 < len(graph.node) else None
            if nxt is not None and nxt.op_type == "Add" and nxt.input[0] == node.output[0]:
                own(nxt, 1, layer.bias)
            elif "bn" in origin:
                bias_in_bn = True
            elif np.any(layer.bias):
                raise InvalidArgument(f"{layer.name}: the pruned layer has a bias but the MatMul has none")
        else:
            own(node, 1, layer.weight)
            set_bias(node, 2, layer, layer.bias)
        if "bn" in origin:   # the fold now lives in the layer: make the batch norm the identity
            bn = graph.node[origin["bn"]]
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
            n = layer.bias.shape[0]
            shift = layer.bias if bias_in_bn else np.zeros(n)
            for pos, value in zip(range(1, 5), (np.ones(n), shift, np.zeros(n), np.full(n, 1.0 - eps))):
                own(bn, pos, value)
    if sparse:
        compact_weights(out, [graph.node[o["node"]].input[1] for o in origins])
    if destination is None:
        return out
    return atomic_write(destination, lambda f: f.write(out.SerializeToString()))


def _check_shapes(net, origins, graph, inits, numpy_helper):
    for layer, origin in zip(net.layers, origins):
        node = graph.node[origin["node"]]
        name = node.input[1] if len(node.input) > 1 else ""
        if name not in inits:
            raise InvalidArgument(f"model: node {node.name or node.op_type} has no weight initializer {name!r}")
        have = tuple(inits[name].dims)
        if origin["kind"] == "Gemm":
            want = layer.weight.T.shape if origin["transB"] else layer.weight.shape
        elif origin["kind"] == "MatMul":
            want = layer.weight.shape
        else:
            want = layer.weight.shape
        if tuple(want) != have:
            raise InvalidArgument(f"net: layer {layer.name} has weights of shape {tuple(want)}, the model's {name!r} "
                             f"{have} (a network with neurons removed cannot be written into the original graph)")


# --- compact weights --------------------------------------------------------------------------------
_PREFIX = "nettrim_unpack/"
_NODE_BYTES = 600      # what the unpacking nodes and their small constants add, measured 520-560


def compact_weights(model, names):
    """Store the initializers ``names`` of ``model`` (in place) in their smallest form: dense,
    a sparse initializer, or a bit mask with the nonzero values (see the module docstring)."""
    _, numpy_helper = _onnx()
    from onnx import helper
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inits = {t.name: t for t in graph.initializer}
    nodes, shared = [], False
    for name in dict.fromkeys(names):
        if name not in inits:
            continue
        array = numpy_helper.to_array(inits[name])
        n, k, item = array.size, int(np.count_nonzero(array)), array.dtype.itemsize
        sizes = {"dense": item * n, "sparse": (item + 8) * k + 64}
        if opset >= 11 and array.ndim >= 1:
            sizes["bits"] = (n + 7) // 8 + item * (k + 1) + _NODE_BYTES
        form = min(sizes, key=sizes.get)
        if form == "dense":
            continue
        graph.initializer.remove(inits[name])
        for i in [i for i, v in enumerate(graph.input) if v.name == name][::-1]:
            del graph.input[i]            # old IR: initializers listed as inputs too
        flat = array.reshape(-1)
        if form == "sparse":
            where = np.flatnonzero(flat)
            graph.sparse_initializer.append(helper.make_sparse_tensor(
                numpy_helper.from_array(flat[where], name), numpy_helper.from_array(where.astype(np.int64), name + "_indices"),
                list(array.shape)))
            continue
        if not shared:
            graph.initializer.extend([
                numpy_helper.from_array(np.array([128, 64, 32, 16, 8, 4, 2, 1], np.int32), "nettrim/pow2"),
                numpy_helper.from_array(np.array(2, np.int32), "nettrim/two"),
                numpy_helper.from_array(np.array(0, np.int32), "nettrim/axis0"),
                numpy_helper.from_array(np.array([0], np.int64), "nettrim/zero")])
            shared = True
        bits = np.packbits(flat != 0)
        graph.initializer.extend([
            numpy_helper.from_array(bits.reshape(-1, 1), f"{name}/nettrim_bits"),
            numpy_helper.from_array(np.concatenate([np.zeros(1, array.dtype), flat[flat != 0]]), f"{name}/nettrim_values"),
            numpy_helper.from_array(np.array([bits.size * 8], np.int64), f"{name}/nettrim_nbits"),
            numpy_helper.from_array(np.array([n], np.int64), f"{name}/nettrim_n"),
            numpy_helper.from_array(np.array(array.shape, np.int64), f"{name}/nettrim_shape")])
        t = f"{_PREFIX}{name}/"
        nodes += [
            helper.make_node("Cast", [f"{name}/nettrim_bits"], [t + "bytes"], to=6, name=t + "cast"),   # int32
            helper.make_node("Div", [t + "bytes", "nettrim/pow2"], [t + "shifted"], name=t + "div"),
            helper.make_node("Mod", [t + "shifted", "nettrim/two"], [t + "bits"], name=t + "mod"),
            helper.make_node("Reshape", [t + "bits", f"{name}/nettrim_nbits"], [t + "mask"], name=t + "flat"),
            helper.make_node("CumSum", [t + "mask", "nettrim/axis0"], [t + "count"], name=t + "cumsum"),
            helper.make_node("Mul", [t + "count", t + "mask"], [t + "index"], name=t + "index"),
            helper.make_node("Gather", [f"{name}/nettrim_values", t + "index"], [t + "values"], name=t + "gather"),
            helper.make_node("Slice", [t + "values", "nettrim/zero", f"{name}/nettrim_n"], [t + "cut"],
                             name=t + "slice"),
            helper.make_node("Reshape", [t + "cut", f"{name}/nettrim_shape"], [name], name=t + "reshape")]
    if nodes:
        rest = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + rest)
    return model


def densify(model):
    """``model`` with sparse initializers and nettrim's bit-mask encodings turned back into dense
    initializers (a copy; the model itself when there is nothing to undo)."""
    _, numpy_helper = _onnx()
    graph = model.graph
    packed = [n for n in graph.node if n.name.startswith(_PREFIX)]
    if not graph.sparse_initializer and not packed:
        return model
    model = copy.deepcopy(model)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    for st in graph.sparse_initializer:
        values, indices = numpy_helper.to_array(st.values), numpy_helper.to_array(st.indices).astype(np.int64)
        dims = tuple(st.dims)
        size = int(np.prod(dims, dtype=np.float64))
        have = _core.available_memory()
        if have and size * values.dtype.itemsize > have:
            raise InvalidArgument(f"sparse initializer {st.values.name!r}: its dense {dims} needs "
                                  f"{size * values.dtype.itemsize >> 20} MiB, more than the {have >> 20} MiB available")
        flat = indices if indices.ndim == 1 else None
        if indices.ndim == 2 and indices.shape[1] == len(dims) and \
                ((indices >= 0) & (indices < np.asarray(dims))).all():
            flat = np.ravel_multi_index(indices.T, dims)
        if flat is None or flat.shape != values.shape or (len(flat) and (flat.min() < 0 or flat.max() >= size)):
            raise InvalidArgument(f"sparse initializer {st.values.name!r}: its indices do not fit its {len(values)} "
                                  f"values in a tensor of shape {dims}")
        dense = np.zeros(size, values.dtype)
        dense[flat] = values
        graph.initializer.append(numpy_helper.from_array(dense.reshape(dims), st.values.name))
    del graph.sparse_initializer[:]
    targets = [n.output[0] for n in graph.node if n.name.startswith(_PREFIX) and n.name.endswith("/reshape")]
    for name in targets:
        bits, values, n, shape = (numpy_helper.to_array(inits[f"{name}/nettrim_{suffix}"])
                                  for suffix in ("bits", "values", "n", "shape"))
        n, shape = int(n[0]), tuple(shape)
        mask = np.unpackbits(bits.reshape(-1))[:n].astype(bool)
        dense = np.zeros(n, values.dtype)
        dense[mask] = values[1:]
        graph.initializer.append(numpy_helper.from_array(dense.reshape(shape), name))
    keep = [n for n in graph.node if not n.name.startswith(_PREFIX)]
    del graph.node[:]
    graph.node.extend(keep)
    for t in [t for t in graph.initializer if t.name.startswith("nettrim/") or "/nettrim_" in t.name]:
        graph.initializer.remove(t)
    return model


def _run_batched(model, x):
    """onnxruntime's outputs; one sample at a time when the model fixes its batch size."""
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    if isinstance(inp.shape[0], int) and inp.shape[0] != len(x):
        return np.concatenate([session.run(None, {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
    return session.run(None, {inp.name: x})[0]


def run_onnx(model_or_path, X):
    """Outputs of an ONNX model under onnxruntime (for checks and evaluation)."""
    import onnxruntime as ort
    data = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    return session.run(None, {inp.name: np.asarray(X, np.float32)})[0]
