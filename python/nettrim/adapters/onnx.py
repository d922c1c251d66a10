"""ONNX models: read with ``onnx`` into a :class:`~nettrim.network.Network`, write a pruned ``.onnx``.

Supported nodes: ``Gemm``, ``MatMul`` (+ ``Add`` of a bias), ``Conv``, ``Relu``, ``MaxPool``,
``AveragePool``, ``Flatten``, ``Reshape`` to (batch, features), ``BatchNormalization``
(folded into the layer before it), ``Dropout`` and ``Identity``; ``Shape``/``Gather``/... that
only compute a reshape's target are followed.  The numpy forward pass is checked against
onnxruntime's outputs (when onnxruntime is installed), so a misread model is an error.
"""
from __future__ import annotations

import copy

import numpy as np

from ..layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from ..network import Network
from . import UnsupportedModelError, check_reproduces


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("ONNX models need onnx and onnxruntime: pip install 'nettrim[onnx]'") from None
    return onnx, numpy_helper


def load_onnx(path_or_model, input_shape=None, *, check_inputs=None) -> Network:
    """The network of an ONNX model (a path or a ``ModelProto``), batch norms folded."""
    onnx, numpy_helper = _onnx()
    model = onnx.load(path_or_model) if isinstance(path_or_model, (str, bytes)) or hasattr(path_or_model, "__fspath__") \
        else path_or_model
    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UnsupportedModelError(f"model: expected one input and one output, got {len(inputs)} and {len(graph.output)}")
    if input_shape is None:
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
        if not dims or not all(dims):
            raise ValueError("input_shape: the model does not state its input shape; pass it, e.g. (1, 28, 28)")
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
    net = Network(steps, input_shape)
    net.onnx_origins = origins
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return net
    check_reproduces(net, check_inputs, lambda x: _run_batched(model, x), "onnxruntime")
    return net


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
        prev.b = np.asarray(np.broadcast_to(bias.reshape(-1), prev.b.shape), np.float32).copy()
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


def save_onnx(net: Network, model, path):
    """Write ``model`` with the (pruned) weights of ``net`` to ``path`` atomically.

    ``net`` must come from :func:`load_onnx` on the same model.  Batch norms that were folded
    are set to the identity, the folded weights going into the layer before them."""
    onnx, numpy_helper = _onnx()
    from ..io import atomic_write
    origins = getattr(net, "onnx_origins", None)
    if origins is None:
        raise ValueError("net: expected a network read by nettrim.adapters.onnx.load_onnx")
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = onnx.load(model)
    out = copy.deepcopy(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}

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
            put(node.input[position], values, inits[node.input[position]])
        elif np.any(values):
            while len(node.input) < position:
                node.input.append("")
            bias_name = f"{layer.name}_nettrim_bias"
            put(bias_name, values)
            node.input.append(bias_name)

    for layer, origin in zip(net.layers, origins):
        node = graph.node[origin["node"]]
        kind = origin["kind"]
        if kind == "Gemm":
            W = layer.W / origin["alpha"]
            put(node.input[1], W.T if origin["transB"] else W, inits[node.input[1]])
            set_bias(node, 2, layer, layer.b / origin["beta"])
        elif kind == "MatMul":
            put(node.input[1], layer.W, inits[node.input[1]])
            nxt = graph.node[origin["node"] + 1] if origin["node"] + 1 < len(graph.node) else None
            if nxt is not None and nxt.op_type == "Add" and nxt.input[0] == node.output[0]:
                put(nxt.input[1], layer.b, inits[nxt.input[1]])
            elif np.any(layer.b):
                raise ValueError(f"{layer.name}: the pruned layer has a bias but the MatMul has none")
        else:
            put(node.input[1], layer.weight, inits[node.input[1]])
            set_bias(node, 2, layer, layer.b)
        if "bn" in origin:   # the fold now lives in the layer: make the batch norm the identity
            bn = graph.node[origin["bn"]]
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
            n = layer.b.shape[0]
            for pos, value in zip(range(1, 5), (1.0, 0.0, 0.0, 1.0 - eps)):
                put(bn.input[pos], np.full(n, value), inits[bn.input[pos]])
    atomic_write(path, lambda f: f.write(out.SerializeToString()))
    return out


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
