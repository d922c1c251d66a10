"""PyTorch modules: read into a :class:`~nettrim.network.Network`, write pruned weights back.

Supported: ``Linear``, ``Conv2d``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``, ``Flatten`` (and
``x.view(n, -1)`` / ``torch.flatten(x, 1)``), ``BatchNorm1d/2d`` (folded into the layer before
it) and ``Dropout`` / ``Identity`` (inference: nothing).  The order of operations comes from
``torch.fx`` tracing, or for TorchScript from its compiled graph (:mod:`.torchscript`); any
other module fx cannot trace is read in the order of its submodules.  Either way the numpy
forward pass is checked against the module's own output, so a misread model is an error,
never a silently wrong pruning.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import warnings

import numpy as np

from .. import npz_layout
from .._validate import check_output_path, check_path, check_shape
from ..errors import InvalidArgument, InvalidArgumentType, ModelFileError, UnsupportedModelError
from ..io import atomic_write, first_line
from ..layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from ..network import Network
from . import torch_graph, torchscript
from .base import Provenance, check_reproduces


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("PyTorch models need torch: pip install 'nettrim[torch]'") from None
    return torch


def from_torch(module, input_shape=None, *, check_inputs=None) -> Network:
    """The network of a PyTorch module, with batch norms folded (see :func:`read`)."""
    return read(module, input_shape, check_inputs=check_inputs)[0]


def read(module, input_shape=None, *, check_inputs=None, scripted=False):
    """``(network, provenance)`` of a PyTorch module, with batch norms folded.

    ``input_shape`` is one sample's shape, e.g. ``(1, 28, 28)`` (needed when the first layer
    is a convolution).  ``check_inputs`` (optional, a few samples) are used to check the
    numpy forward pass against the module's; random inputs are used otherwise."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentType(f"model: expected a torch.nn.Module, got {type(module).__name__}")
    if input_shape is not None:
        input_shape = check_shape("input_shape", input_shape)
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in module.parameters()} |
                    {str(b.dtype).replace("torch.", "") for b in module.buffers() if b.is_floating_point()})
    odd = [d for d in dtypes if d not in ("float32", "float64", "int64")]
    if odd:
        raise InvalidArgumentType(f"model: parameters of dtype {', '.join(odd)}; nettrim reads float32 or float64 models "
                        f"(convert a copy with model.float())")
    try:
        steps, origins = _steps(module)
    except UnsupportedModelError:
        if scripted or isinstance(module, torch.jit.ScriptModule):
            raise
        # Not a chain: a graph (residual adds, attention, other activations), run by PyTorch.
        return torch_graph.read(module, input_shape, check_inputs=check_inputs)
    first = next((s for s in steps if isinstance(s, (Dense, Conv2d))), None)
    if input_shape is not None and len(input_shape) > 1 and isinstance(first, Dense) and steps[0] is first:
        if int(np.prod(input_shape)) != first.weight.shape[0]:
            raise InvalidArgument(f"input_shape: {input_shape} has {int(np.prod(input_shape))} values, but the model's first "
                             f"layer takes {first.weight.shape[0]} inputs")
        input_shape = None                  # a dense model takes flat rows
    net = Network(steps, input_shape)
    check_reproduces(net, check_inputs, lambda x: _run(module, x), "PyTorch")
    return net, Provenance("torch", module, {"origins": dict(origins), "scripted": bool(scripted)})


def _steps(module):
    """``(steps, origins)`` of a module, in the order its forward runs them (see :func:`_with_origins`)."""
    torch = _torch()
    if isinstance(module, torch.jit.ScriptModule):     # (fx cannot trace it; its graph says it all)
        return _with_origins(torchscript.named_steps(module))
    try:
        return _trace(module)
    except UnsupportedModelError:
        raise
    except Exception:                       # fx cannot trace it: read the submodules in order
        return _children_in_order(module)


def _origins(module):
    """Each prunable layer's submodule and the batch norm folded into it, as :func:`read` finds them."""
    return dict(_steps(module)[1])


def to_torch(net: Network, module):
    """A copy of ``module`` carrying the weights of ``net`` (read from it by :func:`from_torch`)."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentType(f"module: expected the torch.nn.Module the network was read from, got "
                                  f"{type(module).__name__}")
    return _into(net, module, _origins(module))


def write(net: Network, provenance, destination=None, *, sparse=False):
    """``net``'s weights back in the module ``provenance`` came from: a copy of the module when
    ``destination`` is None, else a file (atomically; returns its sha256): TorchScript when the
    source was, a pickled module otherwise, or (``sparse=True``) a sparse state dict that
    :func:`load_sparse` restores and :func:`read_path` reads (it holds the architecture too)."""
    torch = _torch()
    check_writable(provenance)
    module = _into(net, provenance.source, provenance.details["origins"])
    if destination is None:
        return module
    if sparse:
        return save_sparse(module, destination, net=net)
    if not provenance.details.get("scripted"):
        return atomic_write(destination, lambda f: torch.save(module, f))
    with warnings.catch_warnings():
        # (the user's model is TorchScript, so its pruned copy is: torch's deprecation notice is not theirs to act on)
        warnings.filterwarnings("ignore", "`torch.jit.save` is deprecated", DeprecationWarning)
        return atomic_write(destination, lambda f: torch.jit.save(module, f))


def check_writable(provenance):
    """Raise unless :func:`write` can put weights back where ``provenance`` came from: a sparse
    state dict has no module to put them in (checked before the work of pruning)."""
    if provenance.source is None and "sparse_file" in provenance.details:
        path = provenance.details["sparse_file"]
        raise ModelFileError(f"{path}: a sparse state dict holds no module to write pruned weights into; restore "
                             f"one with nettrim.adapters.torch.load_sparse({path!r}, model) and prune that")


def _into(net, module, origins):
    """A copy of ``module`` with the weights of ``net``, each layer going to its ``origins`` entry."""
    torch = _torch()
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network, got {type(net).__name__}")
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentType(f"module: expected the torch.nn.Module the network was read from, got {type(module).__name__}")
    for layer in net.layers:
        _check_target(layer, module)
    out = copy.deepcopy(module)
    with torch.no_grad():
        for layer in net.layers:
            target = _submodule(out, layer.name)
            weight = layer.weight.T if isinstance(layer, Dense) else layer.weight
            bias = layer.bias.astype(np.float64)
            if layer.name not in origins:
                raise InvalidArgument(f"module: {layer.name} is not a layer nettrim read from this module")
            bn_name = origins[layer.name]
            if bn_name is not None:
                # Undo the fold: bn(conv(x)) = s * conv(x) + shift; channels with s = 0 give a constant.
                bn = _submodule(out, bn_name)
                s, shift = _bn_from_module(bn).affine()
                safe = np.where(s != 0, s, 1.0)
                shape = (-1,) + (1,) * (weight.ndim - 1)
                weight = np.where((s != 0).reshape(shape), weight / safe.reshape(shape), 0.0)
                if target.bias is None and bn.bias is not None:
                    # No bias to carry the shift: move it into the batch norm's own bias.
                    bn.bias.copy_(torch.as_tensor(bias - shift + np.asarray(bn.bias.detach().cpu(), np.float64)))
                    bias = None
                elif target.bias is None:
                    # Nor an affine batch norm: its running mean carries it, since without affine
                    # parameters bn(y) = s * (y - mean) with s = 1 / sqrt(var + eps) > 0, and
                    # s * (y - mean') = s * y + bias for mean' = -bias / s.
                    bn.running_mean.copy_(torch.as_tensor(-bias / s))
                    bias = None
                else:
                    bias = np.where(s != 0, (bias - shift) / safe, 0.0)
            target.weight.copy_(torch.as_tensor(np.asarray(weight, np.float32)))
            if bias is not None:
                if target.bias is None:
                    if np.any(bias):
                        raise InvalidArgument(f"{layer.name}: the pruned layer has a bias but the module has none")
                else:
                    target.bias.copy_(torch.as_tensor(np.asarray(bias, np.float32)))
    return out


def _submodule(module, name):
    """``module.get_submodule(name)``, which TorchScript modules lack."""
    for part in name.split("."):
        module = getattr(module, part)
    return module


def _check_target(layer, module):
    """The submodule a layer goes back into exists, is of its kind and has its shape."""
    try:
        target = _submodule(module, layer.name)
    except AttributeError:
        raise InvalidArgument(f"module: has no submodule {layer.name!r} (not the module the network was read from?)") \
            from None
    kind = getattr(target, "original_name", type(target).__name__)
    want = "Linear" if isinstance(layer, Dense) else "Conv2d"
    if kind != want or not hasattr(target, "weight"):
        raise InvalidArgument(f"module: {layer.name} is a {kind}, the network's layer a {want} (not the module the "
                         f"network was read from?)")
    shape = tuple(layer.weight.T.shape if isinstance(layer, Dense) else layer.weight.shape)
    if tuple(target.weight.shape) != shape:
        raise InvalidArgument(f"net: layer {layer.name} has weights of shape {shape}, the module's "
                         f"{tuple(target.weight.shape)} (a network with neurons removed needs a module of its "
                         f"new shapes)")


def read_path(path, input_shape=None, *, check_inputs=None, trust=False):
    """``(network, provenance)`` of a ``.pt``/``.pth`` file: a module (see :func:`read_file`),
    or a sparse state dict written by nettrim (``prune --sparse``), whose weights are read dense
    into the architecture stored with them (its provenance can be inspected, not written to)."""
    obj, scripted = _load(path, trust)
    if isinstance(obj, dict):               # (the one dict _load returns)
        return _read_sparse(path, obj, input_shape)
    return read(obj, input_shape, check_inputs=check_inputs, scripted=scripted)


def read_file(path, trust=False):
    """``(module, scripted)`` from a ``.pt``/``.pth`` file: TorchScript, or a pickled module.

    Read with ``torch.load(..., weights_only=True)``, which runs no code from the file.  A
    pickled whole ``nn.Module`` (``torch.save(model, path)``) cannot be read that way:
    unpickling it imports and calls whatever the file names, so a crafted file runs arbitrary
    code; reading one needs ``trust=True`` (``--trust-model`` on the command line), for files
    from a source you trust.  TorchScript files need no such opt-in."""
    obj, scripted = _load(path, trust)
    if isinstance(obj, dict):
        raise ModelFileError(f"{path}: a sparse state dict written by nettrim (prune --sparse); it holds weights, not "
                             f"a module: restore one with nettrim.adapters.torch.load_sparse(path, model), or read "
                             f"its network with nettrim.adapters.read(path)")
    return obj, scripted


def _load(path, trust):
    """``(module, scripted)`` of :func:`read_file`, or ``(payload, False)`` for a sparse state dict."""
    torch = _torch()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)    # torch 2.13 deprecates TorchScript
            return torch.jit.load(path, map_location="cpu"), True
    except Exception:      # not TorchScript (torch.jit.load runs no pickled code)
        pass
    try:
        with _csr_beta_quiet():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # More than tensors and plain containers: a pickled object, most often a whole nn.Module.
        if not trust:
            raise ModelFileError(
                f"{path}: holds a pickled Python object (a whole nn.Module?), and unpickling it runs whatever "
                "code the file names. Load it only if you trust its source: --trust-model on the command line, "
                "trust=True in nettrim.adapters.read(). Safer: save the model as TorchScript (torch.jit.save) or ONNX"
            ) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except (AttributeError, ModuleNotFoundError) as e:
            # (a pickled module names its class, which must be importable here)
            raise ModelFileError(f"{path}: cannot read the model: {first_line(e)}; a pickled module needs its "
                                 "class importable where it is read: save the model as TorchScript "
                                 "(torch.jit.save(torch.jit.script(model), path)) or ONNX instead") from None
        except Exception as e:
            raise ModelFileError(f"{path}: cannot read the model: {first_line(e)}") from None
    except Exception as e:
        raise ModelFileError(f"{path}: cannot read the model, damaged or truncated? ({first_line(e)})") from None
    if isinstance(obj, dict) and obj.get("format") == SPARSE_FORMAT:
        return obj, False
    if isinstance(obj, dict):
        raise ModelFileError(f"{path}: holds a state_dict, which has no architecture; save the module as "
                             "TorchScript (torch.jit.save(torch.jit.script(model), path)) or the module itself "
                             "(torch.save(model, path), read with --trust-model)")
    if not isinstance(obj, torch.nn.Module):
        raise ModelFileError(f"{path}: expected a torch.nn.Module, found {type(obj).__name__}")
    return obj.eval(), False



# --- reading ----------------------------------------------------------------------------------

def _layer_from_module(name, m, torch):
    nn = torch.nn
    if isinstance(m, nn.Linear):
        return Dense(_np(m.weight).T, None if m.bias is None else _np(m.bias), relu=False, name=name)
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            raise UnsupportedModelError(f"{name}: Conv2d with padding_mode={m.padding_mode!r} is not supported")
        padding = m.padding
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            else:
                total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
                if any(t % 2 for t in total):
                    raise UnsupportedModelError(f"{name}: Conv2d padding='same' with an even kernel is not supported")
                padding = tuple(t // 2 for t in total)
        return Conv2d(_np(m.weight), None if m.bias is None else _np(m.bias), m.stride, padding, m.dilation,
                      m.groups, relu=False, name=name)
    if isinstance(m, nn.ReLU):
        return ReLU()
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        if m.ceil_mode:
            raise UnsupportedModelError(f"{name}: {type(m).__name__} with ceil_mode=True is not supported")
        if isinstance(m, nn.MaxPool2d):
            if m.dilation not in (1, (1, 1)) or m.return_indices:
                raise UnsupportedModelError(f"{name}: MaxPool2d with dilation or return_indices is not supported")
            return MaxPool2d(m.kernel_size, m.stride, m.padding)
        if m.divisor_override:
            raise UnsupportedModelError(f"{name}: AvgPool2d with divisor_override is not supported")
        return AvgPool2d(m.kernel_size, m.stride, m.padding, m.count_include_pad)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedModelError(f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported")
        return Flatten()
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _bn_from_module(m)
    if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
        return None
    raise UnsupportedModelError(f"{name}: unsupported layer {type(m).__name__} (Net-Trim handles Linear, Conv2d, "
                                f"ReLU, MaxPool2d, AvgPool2d, Flatten, BatchNorm and Dropout)")


def _bn_from_module(m):
    if hasattr(m, "original_name") and not hasattr(m, "eps"):     # traced: eps is a constant of its graph
        return torchscript.traced_layer(m)
    if m.running_mean is None:
        raise UnsupportedModelError("BatchNorm without running statistics (track_running_stats=False) is not supported")
    return BatchNorm(None if m.weight is None else _np(m.weight), None if m.bias is None else _np(m.bias),
                     _np(m.running_mean), _np(m.running_var), m.eps)


def _trace(module):
    """Steps in execution order from an fx graph; branches and unknown operations are errors."""
    torch = _torch()
    import torch.nn.functional as F

    graph = torch.fx.symbolic_trace(module).graph
    steps, current = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise UnsupportedModelError(f"model: expected one input, found a second ({node.name})")
            current = node
            continue
        if node.op == "get_attr":
            raise UnsupportedModelError(f"{node.target}: parameters used outside a layer are not supported")
        if node.op == "output":
            if node.args[0] is not current:
                raise UnsupportedModelError("model: expected one output, the end of a chain of layers")
            break
        data = [a for a in node.all_input_nodes]
        if node.op == "call_method" and node.target == "size":
            continue
        if not data or data[0] is not current or any(a is not current and a.op != "call_method" for a in data[1:]):
            raise UnsupportedModelError(f"{node.name}: unsupported connection (residual adds, concatenations and "
                                        f"branches cannot be pruned layer by layer)")
        if len(current.users) > 1 and not all(u.op == "call_method" and u.target == "size" or u is node
                                              for u in current.users):
            raise UnsupportedModelError(f"{current.name}: its output feeds several operations (a branch), "
                                        "which Net-Trim cannot prune layer by layer")
        if node.op == "call_module":
            step = _layer_from_module(node.target, module.get_submodule(node.target), torch)
        elif node.op == "call_function" and node.target in (F.relu, torch.relu):
            step = ReLU()
        elif node.op == "call_function" and node.target is torch.flatten and _flatten_args(node):
            step = Flatten()
        elif node.op == "call_method" and node.target == "relu":
            step = ReLU()
        elif node.op == "call_method" and node.target in ("view", "reshape", "flatten") and _flatten_args(node):
            step = Flatten()
        elif node.op == "call_method" and node.target == "contiguous":
            step = None
        elif node.op == "call_function" and node.target in (F.max_pool2d, F.avg_pool2d):
            step = _functional_pool(node, node.target is F.max_pool2d)
        elif node.op == "call_function" and node.target is F.dropout:
            step = None
        else:
            raise UnsupportedModelError(f"{node.name}: unsupported operation {getattr(node.target, '__name__', node.target)}"
                                        " (Net-Trim handles Linear, Conv2d, ReLU, pooling, flatten, batch norm)")
        current = node
        if step is not None:
            steps.append((node.target if node.op == "call_module" else None, step))
    return _with_origins(steps)


def _functional_pool(node, is_max):
    names = (["kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"] if is_max else
             ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"])
    a = dict(zip(names, node.args[1:]))
    a.update(node.kwargs)
    if a.get("ceil_mode") or a.get("return_indices") or a.get("divisor_override") or a.get("dilation", 1) not in (1, (1, 1)):
        raise UnsupportedModelError(f"{node.name}: pooling with ceil_mode, dilation, indices or a divisor is not supported")
    stride = a.get("stride") or None
    if is_max:
        return MaxPool2d(a["kernel_size"], stride, a.get("padding", 0))
    return AvgPool2d(a["kernel_size"], stride, a.get("padding", 0), a.get("count_include_pad", True))


def _flatten_args(node):
    """True when a view/reshape/flatten keeps the batch axis and flattens the rest."""
    args = list(node.args[1:]) + list(node.kwargs.values())
    if node.target in ("flatten",) or getattr(node.target, "__name__", "") == "flatten":
        return args[:1] == [1] and args[1:] in ([], [-1])
    return len(args) == 2 and args[1] == -1


def _children_in_order(module):
    torch = _torch()
    steps = []
    for name, m in module.named_modules():
        if any(True for _ in m.children()):
            continue
        kind = getattr(m, "original_name", type(m).__name__)   # TorchScript keeps the Python class name
        step = torchscript.scripted_layer(name, m, kind) if hasattr(m, "original_name") else \
            _layer_from_module(name, m, torch)
        if step is not None:
            steps.append((name, step))
    return _with_origins(steps)


def _with_origins(named_steps):
    """Steps, and for every prunable layer (module name, name of the batch norm folded into it)."""
    steps, origins = [], []
    for name, step in named_steps:
        if isinstance(step, (Dense, Conv2d)):
            origins.append([name, None])
        elif isinstance(step, BatchNorm) and origins and steps and isinstance(steps[-1], (Dense, Conv2d)):
            origins[-1][1] = name
        steps.append(step)
    return steps, [tuple(o) for o in origins]


def _run(module, x):
    torch = _torch()
    was_training = module.training
    module.eval()
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    try:
        with torch.no_grad():
            return module(torch.as_tensor(x).to(dtype)).detach().cpu().float().numpy()
    finally:
        module.train(was_training)


def _np(t):
    return np.asarray(t.detach().cpu().numpy(), np.float32)


# --- sparse state dicts ---------------------------------------------------------------------------
SPARSE_FORMAT = "nettrim-sparse-state-dict"
_CSR_BETA = "Sparse CSR tensor support is in beta state"


@contextlib.contextmanager
def _csr_beta_quiet():
    """Silence torch's notice that CSR tensors are in beta, which torch gives where nettrim
    itself makes or loads them (the user asked for a file, not for CSR tensors); nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _CSR_BETA, UserWarning)
        yield


def sparse_state_dict(module, *, net=None):
    """``{"format", "version", "state_dict", "shapes"[, "network"]}``: the module's state dict in
    which every floating tensor of 2 or more dimensions that is smaller as CSR (int32 indices:
    8 bytes per nonzero and 4 per row) than dense is a ``torch.sparse_csr`` tensor of its
    (rows, -1) view; ``shapes`` holds those tensors' own shapes.  Given ``net`` (the network
    read from ``module``), ``network`` describes its steps (JSON) and names the entries that
    hold each layer's tensors, so that :func:`read_path` (``nettrim inspect``) reads the file
    without the module.  Plain tensors, strings and ints only: it loads with
    ``torch.load(..., weights_only=True)``.  :func:`load_sparse` restores it."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentType(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    if net is not None and not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected the nettrim.Network read from the module, got {type(net).__name__}")
    state, shapes = {}, {}
    with _csr_beta_quiet():
        for name, t in module.state_dict().items():
            t = t.detach().cpu()
            if t.is_floating_point() and t.dim() >= 2:
                flat = t.reshape(t.shape[0], -1)
                nnz = int(torch.count_nonzero(flat))
                if 8 * nnz + 4 * (flat.shape[0] + 1) < t.element_size() * t.numel():
                    csr = flat.to_sparse_csr()
                    # (valid by construction: torch's check, when not opted out of explicitly, is a warning)
                    state[name] = torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32),
                                                          csr.col_indices().to(torch.int32), csr.values(), flat.shape,
                                                          check_invariants=False)
                    shapes[name] = list(t.shape)
                    continue
            state[name] = t.clone()
    payload = {"format": SPARSE_FORMAT, "version": 2 if net is not None else 1, "state_dict": state, "shapes": shapes}
    if net is not None:
        payload["network"] = _architecture(net, module)
    return payload


def save_sparse(module, path, *, net=None):
    """Write :func:`sparse_state_dict` of ``module`` (and ``net``) to ``path`` (atomically);
    returns its sha256."""
    torch = _torch()
    path = check_output_path("path", path)
    payload = sparse_state_dict(module, net=net)
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_sparse(path, model=None):
    """Read a file written by :func:`save_sparse` (``nettrim prune --sparse`` on a ``.pt``).

    Returns the dense state dict, or, given ``model`` (the architecture, e.g. the module that
    was pruned), a copy of it with those weights.  Loads with ``weights_only=True``: no code
    from the file runs."""
    torch = _torch()
    path = check_path("path", path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with _csr_beta_quiet():
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InvalidArgument(f"{path}: not a sparse state dict written by nettrim ({first_line(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != SPARSE_FORMAT:
        raise InvalidArgument(f"{path}: not a sparse state dict written by nettrim (save_sparse / prune --sparse)")
    state = _dense_state(path, payload)
    if model is None:
        return state
    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentType(f"model: expected the torch.nn.Module to restore the weights into, got {type(model).__name__}")
    out = copy.deepcopy(model)
    try:
        out.load_state_dict(state)
    except RuntimeError as e:
        raise InvalidArgument(f"model: does not match the weights in {path} ({first_line(e)})") from None
    return out.eval()


def _dense_state(path, payload):
    """The state dict of a sparse payload, every CSR tensor dense again in its own shape."""
    torch = _torch()
    state = {}
    with _csr_beta_quiet():
        for name, t in payload["state_dict"].items():
            if t.layout == torch.sparse_csr:
                # (checked before torch reads the indices: a stray one is an IndexError or worse)
                try:
                    t = torch.from_numpy(npz_layout.dense_from_csr(
                        f"{path}: {name}", t.values().numpy(), t.col_indices().numpy(), t.crow_indices().numpy(),
                        np.array(t.shape))).reshape(payload["shapes"][name])
                except (KeyError, RuntimeError, TypeError) as e:
                    raise InvalidArgument(f"{path}: {name}: not a sparse weight nettrim wrote ({first_line(e)})") \
                        from None
            state[name] = t
    return state


def _architecture(net, module):
    """``net``'s steps as JSON, without tensors: a layer names the submodule whose state-dict
    entries hold its weights, and the batch norm folded into it (the module holds the weights
    unfolded, see :func:`_into`)."""
    origins = _origins(module)
    steps = []
    for step in net.steps:
        entry = {"type": type(step).__name__}
        if isinstance(step, (Dense, Conv2d)):
            bn = origins.get(step.name)
            entry.update(module=step.name, relu=bool(step.relu), batch_norm=bn)
            if bn is not None:
                entry["eps"] = float(_bn_from_module(_submodule(module, bn)).eps)
            if isinstance(step, Conv2d):
                entry.update(stride=list(step.stride), padding=list(step.padding), dilation=list(step.dilation),
                             groups=int(step.groups))
        elif isinstance(step, MaxPool2d):
            entry.update(kernel=list(step.kernel), stride=list(step.stride), padding=list(step.padding))
            if isinstance(step, AvgPool2d):
                entry["count_include_pad"] = bool(step.count_include_pad)
        steps.append(entry)
    return json.dumps({"input_shape": list(net.input_shape), "steps": steps})


def _read_sparse(path, payload, input_shape):
    """``(network, provenance)`` of a sparse state dict: its weights, dense, in its architecture."""
    if "network" not in payload:
        raise ModelFileError(f"{path}: a sparse state dict without the architecture (saved with save_sparse(module, "
                             f"path), no net=); restore it with nettrim.adapters.torch.load_sparse(path, model)")
    state = _dense_state(path, payload)
    try:
        spec = json.loads(payload["network"])
        steps = [s for e in spec["steps"] for s in _steps_of_entry(e, state)]
        net = Network(steps, input_shape or tuple(spec["input_shape"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: a sparse state dict whose architecture does not match its weights "
                             f"({first_line(e)})") from None
    origins = {e["module"]: e["batch_norm"] for e in spec["steps"] if e["type"] in ("Dense", "Conv2d")}
    return net, Provenance("torch", None, {"origins": origins, "scripted": False, "sparse_file": str(path)})


def _steps_of_entry(e, state):
    """The steps of one entry of :func:`_architecture`, tensors from the dense ``state``."""
    def tensor(key):
        return None if key not in state else np.asarray(state[key].numpy(), np.float32)
    kind = e["type"]
    if kind in ("Dense", "Conv2d"):
        name, bn = e["module"], e["batch_norm"]
        weight, bias = tensor(f"{name}.weight"), tensor(f"{name}.bias")
        if weight is None:
            raise KeyError(f"{name}.weight")
        layer = Dense(weight.T, bias, relu=False, name=name) if kind == "Dense" else \
            Conv2d(weight, bias, e["stride"], e["padding"], e["dilation"], e["groups"], relu=False, name=name)
        norm = [] if bn is None else [BatchNorm(tensor(f"{bn}.weight"), tensor(f"{bn}.bias"),
                                                tensor(f"{bn}.running_mean"), tensor(f"{bn}.running_var"), e["eps"])]
        return [layer] + norm + ([ReLU()] if e["relu"] else [])
    if kind == "Flatten":
        return [Flatten()]
    if kind == "MaxPool2d":
        return [MaxPool2d(e["kernel"], e["stride"], e["padding"])]
    if kind == "AvgPool2d":
        return [AvgPool2d(e["kernel"], e["stride"], e["padding"], e["count_include_pad"])]
    raise ValueError(f"unknown step type {kind!r}")
