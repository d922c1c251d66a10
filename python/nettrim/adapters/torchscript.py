"""TorchScript modules (``torch.jit.script`` / ``torch.jit.trace``): their layers in the order
their compiled ``forward`` runs them.

A TorchScript module keeps no Python code, only its graph.  Reading the graph, rather than
the submodules in the order they were declared, finds what ``forward`` does between layers:
``F.relu`` / ``torch.relu`` / ``x.relu()`` (``aten::relu``; a call of the function ``relu``
when scripted), functional pooling, ``flatten`` / ``view(n, -1)``.  Calls of submodules are
followed into their own graphs until a leaf layer (``Linear``, ``Conv2d``, ``ReLU``, ...) is
reached (a traced leaf keeps its tensors but not its settings, padding or eps: its own
graph, ``aten::_convolution`` say, gives them).  The data must flow as one chain: a branch, a residual add or control flow on the
data is an :class:`~nettrim.errors.UnsupportedModelError` naming the operation.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedModelError
from ..layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU

_RELU = ("aten::relu", "aten::relu_")
_RESHAPE = ("aten::view", "aten::reshape")
_NOTHING = ("aten::contiguous", "aten::dropout", "aten::dropout_")     # (in inference)
_SHAPE_QUERY = ("aten::size", "aten::dim")                            # read the data, change nothing
_LAYER_OPS = ("aten::linear", "aten::_convolution", "aten::batch_norm")  # inside a traced leaf
_UNSUPPORTED = "Net-Trim handles Linear, Conv2d, ReLU, pooling, flatten, batch norm and dropout in a chain"
_NOT_A_STEP = object()                      # (what _functional returns for an operation it does not know)


def named_steps(module):
    """``[(name, step)]``: the steps of a TorchScript module in execution order; ``name`` is the
    submodule a step came from ("" for a functional one)."""
    inputs = list(module.graph.inputs())
    if len(inputs) != 2:
        raise UnsupportedModelError(f"model: expected forward to take one input, it takes {len(inputs) - 1}")
    steps = []
    _walk(module, "", "forward", steps)
    return steps


def traced_layer(module):
    """The step of a traced leaf module (a batch norm, say), whose settings are in its graph."""
    steps = []
    _walk(module, "", "forward", steps, leaf=True)
    if len(steps) != 1:
        raise UnsupportedModelError(f"model: expected one layer in a traced {module.original_name}, found "
                                    f"{len(steps)}")
    return steps[0][1]


def _walk(module, name, method, steps, leaf=False):
    """Append the steps of ``module.<method>`` (``module`` is the submodule called ``name``) to
    ``steps``, the data entering as the method's one argument and leaving as its result.
    ``leaf``: ``module`` is a traced layer, whose own tensors its operations may use."""
    graph = module.graph if method == "forward" else getattr(module, method).graph   # (a traced module's
    #                                                         forward is a Python function, its graph the module's)
    where = f"{name or 'model'}.{method}"
    self_value, current = list(graph.inputs())[:2]
    submodules = {self_value.unique(): (module, name)}     # graph value -> (submodule, its name)
    data = {current.unique()}                              # every value the data has been
    tensors = {}                                           # graph value -> a leaf's parameter
    for node in graph.nodes():
        kind = node.kind()
        if kind == "prim::GetAttr":
            owner = submodules.get(node.input().unique())
            attr = getattr(owner[0], node.s("name"), None) if owner else None
            if hasattr(attr, "original_name"):             # a submodule (a tensor or a flag has none)
                submodules[node.output().unique()] = (attr, _join(owner[1], node.s("name")))
            elif leaf and hasattr(attr, "detach"):
                tensors[node.output().unique()] = attr
            continue
        if list(node.blocks()):
            _check_no_data_inside(node, data, where)
            continue
        used = [v.unique() for v in node.inputs() if v.unique() in data]
        if not used or kind in _SHAPE_QUERY and used == [current.unique()]:
            continue                                       # constants, attributes, the data's shape
        if used != [current.unique()]:
            raise UnsupportedModelError(f"{where}: unsupported connection {_name(node)} (residual adds, "
                                        "concatenations and branches cannot be pruned layer by layer)")
        if kind == "prim::CallMethod":
            _call(node, submodules, where, steps)
        else:
            step = _layer(node, kind, tensors, name, where) if leaf and kind in _LAYER_OPS else \
                _functional(node, kind, where)
            if step is _NOT_A_STEP:
                raise UnsupportedModelError(f"{where}: unsupported operation {_name(node)} ({_UNSUPPORTED})")
            if step is not None:
                steps.append((name if leaf else "", step))
        current = node.output()
        data.add(current.unique())
    if [v.unique() for v in graph.return_node().inputs()] != [current.unique()]:
        raise UnsupportedModelError(f"{where}: expected one output, the end of a chain of layers")


def _call(node, submodules, where, steps):
    """A call ``submodule.method(data)``: a leaf layer's forward is one step; anything else
    (a Sequential, a helper method, a block of the user's own class) is walked into."""
    module, name = submodules.get(node.inputsAt(0).unique(), (None, None))
    method = node.s("name")
    if module is None or len(list(node.inputs())) != 2:
        raise UnsupportedModelError(f"{where}: unsupported call of {method} (expected a submodule called on the "
                                    "data alone)")
    if method == "forward" and name and not any(True for _ in module.children()):
        try:
            step = scripted_layer(name, module, module.original_name)
        except AttributeError:              # traced: its settings are constants in its graph
            _walk(module, name, method, steps, leaf=True)
            return
        if step is not None:
            steps.append((name, step))
    else:
        _walk(module, name, method, steps)


def _check_no_data_inside(node, data, where):
    for block in node.blocks():
        for inner in block.nodes():
            if any(v.unique() in data for v in inner.inputs()):
                raise UnsupportedModelError(f"{where}: control flow on the data ({node.kind()}) is not supported: "
                                            "the layers must run in one fixed order")
            if list(inner.blocks()):
                _check_no_data_inside(inner, data, where)



def _functional(node, kind, where):
    """The step of a functional operation on the data, None for one that changes nothing in
    inference, ``_NOT_A_STEP`` for one nettrim does not know."""
    args = list(node.inputs())
    if kind == "prim::CallFunction":
        # A scripted call of a Python function: F.relu, F.max_pool2d (as _max_pool2d), F.dropout.
        function = args[0].node().s("name") if args[0].node().hasAttribute("name") else ""
        args = args[1:]
        kind = {"relu": "aten::relu", "_max_pool2d": "aten::max_pool2d", "max_pool2d": "aten::max_pool2d",
                "dropout": "aten::dropout"}.get(function, kind)
    if kind in _RELU:
        return ReLU()
    if kind in _NOTHING:
        return None
    try:
        if kind == "aten::flatten" and [_constant(v) for v in args[1:]] == [1, -1]:
            return Flatten()
        if kind in _RESHAPE and len(_list(args[1])) == 2 and _constant(_list(args[1])[1]) == -1:
            return Flatten()
        if kind == "aten::max_pool2d":
            # (input, kernel_size, stride, padding, dilation, ceil_mode[, return_indices])
            kernel, stride, padding, dilation, ceil = (_constant(v) for v in args[1:6])
            indices = len(args) > 6 and _constant(args[6])
            if ceil or indices or any(d != 1 for d in dilation):
                raise UnsupportedModelError(f"{where}: max pooling with ceil_mode, dilation or indices is "
                                            "not supported")
            return MaxPool2d(tuple(kernel), tuple(stride or ()) or None, tuple(padding))
        if kind == "aten::avg_pool2d":
            # (input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
            kernel, stride, padding, ceil, count_pad, divisor = (_constant(v) for v in args[1:7])
            if ceil or divisor:
                raise UnsupportedModelError(f"{where}: average pooling with ceil_mode or a divisor is not "
                                            "supported")
            return AvgPool2d(tuple(kernel), tuple(stride or ()) or None, tuple(padding), bool(count_pad))
    except LookupError:                     # an argument computed from the data: not a fixed layer
        pass
    return _NOT_A_STEP


def _layer(node, kind, tensors, name, where):
    """The layer of an operation inside a traced leaf ``name``, from its tensors and constants."""
    args = list(node.inputs())

    def tensor(value):
        if value.node().kind() == "prim::Constant" and value.toIValue() is None:
            return None                     # (no bias)
        if value.unique() not in tensors:
            raise UnsupportedModelError(f"{where}: {kind} with weights computed in forward is not supported")
        return np.asarray(tensors[value.unique()].detach().cpu(), np.float32)
    try:
        if kind == "aten::linear":
            return Dense(tensor(args[1]).T, tensor(args[2]), relu=False, name=name)
        if kind == "aten::_convolution":
            # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
            stride, padding, dilation, transposed, _, groups = (_constant(v) for v in args[3:9])
            if transposed:
                raise UnsupportedModelError(f"{where}: transposed convolutions are not supported")
            return Conv2d(tensor(args[1]), tensor(args[2]), tuple(stride), tuple(padding), tuple(dilation), groups,
                          relu=False, name=name)
        # aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
        return BatchNorm(tensor(args[1]), tensor(args[2]), tensor(args[3]), tensor(args[4]), _constant(args[7]))
    except LookupError:
        raise UnsupportedModelError(f"{where}: {kind} with settings computed in forward is not supported") from None


def _constant(value):
    """The Python value of a constant (or a list of constants); LookupError otherwise."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    raise LookupError(value.debugName())


def _list(value):
    """The elements of a list built in the graph (``[x.size(0), -1]``); LookupError otherwise."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return list(node.inputs())
    raise LookupError(value.debugName())


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _name(node):
    if node.kind() == "prim::CallFunction":
        function = node.inputsAt(0).node()
        return function.s("name") if function.hasAttribute("name") else node.kind()
    return node.kind()


def scripted_layer(name, m, kind):
    """The step of a TorchScript leaf submodule of class ``kind`` (its ``original_name``).
    AttributeError when it lacks a setting (padding, eps, ...), as a traced module does."""
    def p(attr):
        v = getattr(m, attr, None)
        return None if v is None else np.asarray(v.detach().cpu(), np.float32)
    if kind == "Linear":
        return Dense(p("weight").T, p("bias"), relu=False, name=name)
    if kind == "Conv2d":
        if isinstance(m.padding, str):
            raise UnsupportedModelError(f"{name}: string padding in a TorchScript Conv2d is not supported")
        return Conv2d(p("weight"), p("bias"), m.stride, m.padding, m.dilation, m.groups, relu=False, name=name)
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return BatchNorm(p("weight"), p("bias"), p("running_mean"), p("running_var"), m.eps)
    if kind == "ReLU":
        return ReLU()
    if kind == "Flatten":
        if (m.start_dim, m.end_dim) != (1, -1):
            raise UnsupportedModelError(f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not "
                                        "supported")
        return Flatten()
    if kind in ("MaxPool2d", "AvgPool2d") and m.ceil_mode:
        raise UnsupportedModelError(f"{name}: {kind} with ceil_mode=True is not supported")
    if kind == "MaxPool2d":
        if m.dilation not in (1, (1, 1), [1, 1]) or m.return_indices:
            raise UnsupportedModelError(f"{name}: MaxPool2d with dilation or return_indices is not supported")
        return MaxPool2d(m.kernel_size, m.stride, m.padding)
    if kind == "AvgPool2d":
        if m.divisor_override:
            raise UnsupportedModelError(f"{name}: AvgPool2d with divisor_override is not supported")
        return AvgPool2d(m.kernel_size, m.stride, m.padding, m.count_include_pad)
    if kind in ("Dropout", "Dropout2d", "Identity"):
        return None
    raise UnsupportedModelError(f"{name}: unsupported layer {kind}")
