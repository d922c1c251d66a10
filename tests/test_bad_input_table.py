"""The bad-input table (issue 11): every public entry point, given something wrong, raises an
exception of the expected type whose message names the argument (or the file) at fault; the
command line exits with code 2 and one line on stderr, no traceback, before any work is done.

Each row is ``(id, exception type, names..., call)``.  ``call`` receives the shared fixtures
(``Ctx``: tiny networks and models, a folder of prepared files); every name must appear in the
message.  The rows are data on purpose: ``tests/probe_bad_inputs.py`` runs the same rows one
process each and sorts the outcomes into clean / unclear / crash / silent (the counts in the
issue's closing note).
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from functools import cached_property

import nettrim
import numpy as np
import pytest
from nettrim import methods, structured
from nettrim.checkpoint import CheckpointMismatch
from nettrim.layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from nettrim.network import Network, from_arrays

rng = np.random.default_rng(0)
W0, b0 = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
W1, b1 = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
X = rng.standard_normal((20, 4)).astype(np.float32)
Y = np.maximum(X @ W0 + b0, 0)
K = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
XI = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)


def tiny():
    return from_arrays([W0, W1], [b0, b1])


def tiny_conv():
    return Network([Conv2d(K, np.zeros(2)), Flatten(), Dense(np.ones((18, 3), np.float32), np.zeros(3), relu=False)],
                   (1, 5, 5))


class Ctx:
    """What the rows need, built on first use (torch and onnx only by the rows that use them)."""

    def __init__(self, folder, digits_mlp):
        self.dir = folder
        self.clf = digits_mlp[0]

    def path(self, name):
        return str(self.dir / name)

    @cached_property
    def torch(self):
        return pytest.importorskip("torch")

    @cached_property
    def module(self):
        nn = self.torch.nn
        self.torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).eval()

    @cached_property
    def conv_module(self):
        nn = self.torch.nn
        self.torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 3)).eval()

    @cached_property
    def torch_net(self):
        from nettrim.adapters.torch import from_torch
        return from_torch(self.module)

    @cached_property
    def onnx_model(self):
        pytest.importorskip("onnxruntime")
        return onnx_mlp()

    @cached_property
    def onnx_net(self):
        from nettrim.adapters.onnx import load_onnx
        return load_onnx(self.onnx_model)

    @cached_property
    def tanh_mlp(self):
        from sklearn.neural_network import MLPClassifier
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MLPClassifier((5,), activation="tanh", max_iter=5, random_state=0).fit(X, np.arange(20) % 2)


def onnx_mlp(n_in=4, inputs=1, dims=True):
    """A 4-5-3 MLP in ONNX: MatMul + Add + Relu, then Gemm."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    init = [numpy_helper.from_array(W0, "w0"), numpy_helper.from_array(b0, "b0"),
            numpy_helper.from_array(W1.T.copy(), "w1"), numpy_helper.from_array(b1, "b1")]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["m"], name="fc0"), helper.make_node("Add", ["m", "b0"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Gemm", ["r", "w1", "b1"], ["y"], transB=1,
                                                                       name="fc1")]
    ins = [helper.make_tensor_value_info(f"x{'' if i == 0 else i}", TensorProto.FLOAT, ["n", n_in] if dims else None)
           for i in range(inputs)]
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def onnx_with(op):
    pytest.importorskip("onnx")
    model = onnx_mlp()
    model.graph.node[2].op_type = op
    return model


_X = object()


def pn(c, net=None, X_=_X, **kw):
    return nettrim.prune_network(tiny() if net is None else net, X if X_ is _X else X_, **kw)


def unknown_option_leaves_no_checkpoint(c):
    path = c.path("ck-unknown")
    try:
        pn(c, epsilon=0.1, checkpoint=path)
    finally:
        if os.path.exists(path):
            raise AssertionError(f"{path} was written before the options were checked")


def pl(**kw):
    args = dict(X=X, Y=Y)
    args.update(kw)
    return nettrim.prune_layer(args.pop("X"), args.pop("Y"), **args)


def write_npz(c, name, **arrays):
    np.savez(c.path(name), **arrays)
    return c.path(name)


def truncated(c, name, source):
    with open(source, "rb") as f:
        data = f.read()
    with open(c.path(name), "wb") as f:
        f.write(data[:len(data) // 2])
    return c.path(name)


def saved_tiny(c, name="t.npz"):
    tiny().save_npz(c.path(name))
    return c.path(name)


def saved_onnx(c, name="t.onnx"):
    import onnx
    onnx.save(c.onnx_model, c.path(name))
    return c.path(name)


def reshaped(net):
    """A copy of ``net`` whose first layer has one output less (a shape its model does not have)."""
    net = net.copy()
    first, second = net.layers[0], net.layers[1]
    n = first.weight.shape[1] - 1
    first.weight, first.bias, second.weight = first.weight[:, :n].copy(), first.bias[:n].copy(), second.weight[:n].copy()
    return net


def broadcast_rows(rows, cols):
    return np.broadcast_to(np.float32(0.5), (rows, cols))


def ls(Y_=None, **kw):
    """A LayerSolver of the tiny first layer: its target from W0, b0, or ``Y_`` when given."""
    return nettrim.LayerSolver(X, W=W0, b=b0, **kw) if Y_ is None else nettrim.LayerSolver(X, Y_, **kw)


def bounded():
    """A solver with a bound V on its inactive outputs (as the cascade sets one)."""
    return ls(V=np.zeros_like(Y))


def po(**kw):
    return nettrim.PruneOptions.checked(**kw)


def digit_named():
    """A 4-5-5-3 network whose layers are named "0", "2", "4" (as a TorchScript Sequential's)."""
    return Network([Dense(W0, b0, name="0"), Dense(np.eye(5, dtype=np.float32), np.zeros(5), name="2"),
                    Dense(W1, b1, relu=False, name="4")])


def shut_down_pool():
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    return pool


class NoFuture:
    """An executor whose submit gives back no future."""

    def submit(self, fn, *args, **kwargs):
        return None


def stale_checkpoint(folder):
    """A checkpoint folder with a layer file but no run.json saying which run it belongs to."""
    folder.mkdir(exist_ok=True)
    (folder / "layer0-0123456789abcdef.npz").write_bytes(b"")
    return str(folder)


def garbled_checkpoint(c):
    folder = c.dir / "ck-garbled"
    folder.mkdir(exist_ok=True)
    (folder / "run.json").write_text("{not json")
    return str(folder)


def other_run_checkpoint(c):
    """A checkpoint of a run at the default eps_rel (run here once)."""
    path = c.path("ck-other")
    if not os.path.exists(os.path.join(path, "run.json")):
        pn(c, checkpoint=path)
    return path


def csr_npz(path, indices, indptr=None, rows=(4, 3)):
    """A sparse nettrim .npz whose 4x3 first layer is given by these CSR arrays."""
    from_arrays([np.ones((4, 3)), np.ones((3, 2))], [np.zeros(3), np.zeros(2)]).save_npz(path, sparse=True)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("0.")}
    n = len(indices)
    arrays.update({"0.data": np.ones(n, np.float32), "0.indices": np.asarray(indices, np.int64),
                   "0.indptr": np.asarray(indptr if indptr is not None else [0, n, n, n, n], np.int64),
                   "0.rows": np.asarray(rows), "0.bias": np.zeros(3, np.float32)})
    np.savez(path, **arrays)
    return str(path)


def onnx_sparse_index(index=10**9):
    """The ONNX MLP with its first weight a sparse initializer whose one index is ``index``."""
    from onnx import helper, numpy_helper
    model = onnx_mlp()
    del model.graph.initializer[0]
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(1, np.float32), "w0"),
        numpy_helper.from_array(np.array([index], np.int64), "w0_indices"), [4, 5]))
    return model


def onnx_alpha0():
    """The ONNX MLP with its Gemm (fc1) at alpha=0."""
    from onnx import helper
    model = onnx_mlp()
    model.graph.node[3].attribute.append(helper.make_attribute("alpha", 0.0))
    return model


def saved(c, name, model):
    import onnx
    onnx.save(model, c.path(name))
    return c.path(name)


T, V_, M_, O_ = TypeError, ValueError, MemoryError, OSError

API = [
    # --- prune_network: the network and the data -------------------------------------------
    ("pn-net-none", T, ("net",), lambda c: nettrim.prune_network(None, X)),
    ("pn-net-list", T, ("net",), lambda c: nettrim.prune_network([W0, W1], X)),
    ("pn-net-module", T, ("net",), lambda c: nettrim.prune_network(c.module, X)),
    ("pn-X-none", T, ("calibration_inputs",), lambda c: pn(c, X_=None)),
    ("pn-X-width", V_, ("calibration_inputs",), lambda c: pn(c, X_=X[:, :3])),
    ("pn-X-empty", V_, ("calibration_inputs",), lambda c: pn(c, X_=X[:0])),
    ("pn-X-nan", V_, ("calibration_inputs",), lambda c: pn(c, X_=np.where(X > 1, np.nan, X))),
    ("pn-X-inf", V_, ("calibration_inputs",), lambda c: pn(c, X_=np.where(X > 1, np.inf, X))),
    ("pn-X-strings", T, ("calibration_inputs",), lambda c: pn(c, X_=X.astype(str))),
    ("pn-X-1d", V_, ("calibration_inputs",), lambda c: pn(c, X_=X[0])),
    ("pn-X-complex", T, ("calibration_inputs",), lambda c: pn(c, X_=X.astype(complex))),
    ("pn-X-image-shape", V_, ("calibration_inputs",), lambda c: pn(c, tiny_conv(), XI[:, :, :4])),
    ("pn-X-too-large", M_, ("dense0", "calibration"), lambda c: pn(c, X_=broadcast_rows(4_000_000_000, 4))),
    ("pn-conv-unfold-too-large", M_, ("conv0", "max_samples"),
     lambda c: pn(c, tiny_conv(), np.broadcast_to(np.float32(0.5), (400_000_000, 1, 5, 5)), max_samples=None)),
    # --- prune_network: options --------------------------------------------------------------
    ("pn-scheme-unknown", V_, ("scheme",), lambda c: pn(c, scheme="serial")),
    ("pn-scheme-none", V_, ("scheme",), lambda c: pn(c, scheme=None)),
    ("pn-eps-negative", V_, ("eps_rel",), lambda c: pn(c, eps_rel=-1)),
    ("pn-eps-string", T, ("eps_rel",), lambda c: pn(c, eps_rel="0.1")),
    ("pn-eps-nan", V_, ("eps_rel",), lambda c: pn(c, eps_rel=float("nan"))),
    ("pn-eps-inf", V_, ("eps_rel",), lambda c: pn(c, eps_rel=float("inf"))),
    ("pn-eps-none", T, ("eps_rel",), lambda c: pn(c, eps_rel=None)),
    ("pn-eps-list", T, ("eps_rel",), lambda c: pn(c, eps_rel=[0.1, 0.2])),
    ("pn-eps-bool", T, ("eps_rel",), lambda c: pn(c, eps_rel=True)),
    ("pn-stages-zero", V_, ("stages",), lambda c: pn(c, sparsity=0.5, stages=0)),
    ("pn-stages-float", T, ("stages",), lambda c: pn(c, sparsity=0.5, stages=2.5)),
    ("pn-stages-no-sparsity", V_, ("stages", "sparsity"), lambda c: pn(c, stages=2)),
    ("pn-stages-nm", V_, ("stages",), lambda c: pn(c, nm="2:4", stages=2)),
    ("pn-stages-checkpoint", V_, ("checkpoint", "stages"),
     lambda c: pn(c, sparsity=0.5, stages=2, checkpoint=c.path("stages_ckpt"))),
    ("pn-gamma-small", V_, ("gamma",), lambda c: pn(c, gamma=0.5)),
    ("pn-gamma-string", T, ("gamma",), lambda c: pn(c, gamma="2")),
    ("pn-gamma-inf", V_, ("gamma",), lambda c: pn(c, gamma=float("inf"))),
    ("pn-sparsity-above-1", V_, ("sparsity",), lambda c: pn(c, sparsity=1.5)),
    ("pn-sparsity-zero", V_, ("sparsity",), lambda c: pn(c, sparsity=0)),
    ("pn-sparsity-word", V_, ("sparsity",), lambda c: pn(c, sparsity="half")),
    ("pn-sparsity-nan", V_, ("sparsity",), lambda c: pn(c, sparsity=float("nan"))),
    ("pn-sparsity-list-length", V_, ("sparsity",), lambda c: pn(c, sparsity=[0.5])),
    ("pn-sparsity-list-word", V_, ("sparsity",), lambda c: pn(c, sparsity=[0.5, "x"])),
    ("pn-sparsity-list-one", V_, ("sparsity",), lambda c: pn(c, sparsity=[0.5, 1.0])),
    ("pn-scope-unknown", V_, ("scope",), lambda c: pn(c, sparsity=0.5, scope="global")),
    ("pn-method-unknown", V_, ("method",), lambda c: pn(c, method="obd")),
    ("pn-method-needs-target", V_, ("sparsity",), lambda c: pn(c, method="magnitude")),
    ("pn-apoz-list", V_, ("sparsity",), lambda c: pn(c, method="apoz", sparsity=[0.5, 0.5])),
    ("pn-nm-method", V_, ("nm",), lambda c: pn(c, method="lobs", nm="2:4")),
    ("pn-nm-order", V_, ("nm",), lambda c: pn(c, nm="4:2")),
    ("pn-nm-word", V_, ("nm",), lambda c: pn(c, nm="a:b")),
    ("pn-nm-triple", V_, ("nm",), lambda c: pn(c, nm=(2, 4, 8))),
    ("pn-nm-and-sparsity", V_, ("sparsity",), lambda c: pn(c, nm="2:4", sparsity=0.5)),
    ("pn-structured-method", V_, ("structured",), lambda c: pn(c, structured=True, method="wanda", sparsity=0.5)),
    ("pn-structured-string", T, ("structured",), lambda c: pn(c, structured="yes")),
    ("pn-refit-string", V_, ("refit",), lambda c: pn(c, refit="no")),
    ("pn-refit-number", V_, ("refit",), lambda c: pn(c, refit=1)),
    ("pn-max-samples-zero", V_, ("max_samples",), lambda c: pn(c, max_samples=0)),
    ("pn-max-samples-negative", V_, ("max_samples",), lambda c: pn(c, max_samples=-5)),
    ("pn-max-samples-float", T, ("max_samples",), lambda c: pn(c, max_samples=2.5)),
    ("pn-max-samples-string", T, ("max_samples",), lambda c: pn(c, max_samples="100")),
    ("pn-max-samples-bool", T, ("max_samples",), lambda c: pn(c, max_samples=True)),
    ("pn-seed-negative", V_, ("seed",), lambda c: pn(c, seed=-1)),
    ("pn-seed-float", T, ("seed",), lambda c: pn(c, seed=1.5)),
    ("pn-seed-string", T, ("seed",), lambda c: pn(c, seed="0")),
    ("pn-threads-float", T, ("threads",), lambda c: pn(c, threads=2.5)),
    ("pn-threads-string", T, ("threads",), lambda c: pn(c, threads="2")),
    ("pn-threads-negative", V_, ("threads",), lambda c: pn(c, threads=-1)),
    ("pn-threads-huge", V_, ("threads",), lambda c: pn(c, threads=100_000)),
    ("pn-threads-2**31", V_, ("threads",), lambda c: pn(c, threads=2 ** 31)),
    ("pn-workers-zero", V_, ("workers",), lambda c: pn(c, workers=0, scheme="parallel")),
    ("pn-workers-negative", V_, ("workers",), lambda c: pn(c, workers=-2, scheme="parallel")),
    ("pn-workers-float", T, ("workers",), lambda c: pn(c, workers=1.5, scheme="parallel")),
    ("pn-workers-huge", V_, ("workers",), lambda c: pn(c, workers=100_000, scheme="parallel")),
    ("pn-dtype-half", T, ("dtype",), lambda c: pn(c, dtype="float16")),
    ("pn-dtype-int", T, ("dtype",), lambda c: pn(c, dtype=np.int32)),
    ("pn-dtype-word", T, ("dtype",), lambda c: pn(c, dtype="double precision")),
    ("pn-checkpoint-file", V_, ("checkpoint",), lambda c: pn(c, checkpoint=c.path("afile"))),
    ("pn-checkpoint-under-file", V_, ("checkpoint",), lambda c: pn(c, checkpoint=c.path("afile/ck"))),
    ("pn-checkpoint-int", T, ("checkpoint",), lambda c: pn(c, checkpoint=123)),
    ("pn-on-layer-int", T, ("on_layer",), lambda c: pn(c, on_layer=5)),
    ("pn-progress-int", T, ("progress",), lambda c: pn(c, progress=5)),
    ("pn-unknown-option", T, ("epsilon",), lambda c: pn(c, epsilon=0.1)),
    ("pn-unknown-option-no-checkpoint", T, ("epsilon",), unknown_option_leaves_no_checkpoint),
    ("pn-method-unknown-option", T, ("damp", "wanda"), lambda c: pn(c, method="wanda", sparsity=0.5, damp=0.1)),
    ("pn-method-typo-option", T, ("blocksz",), lambda c: pn(c, method="sparsegpt", sparsity=0.5, blocksz=64)),
    ("pn-nettrim-method-option", T, ("blocksize",), lambda c: pn(c, blocksize=64)),
    # --- prune_layer: shapes, dtypes and types only (the engine's own checks are the lead's) ----
    ("pl-X-strings", T, ("X",), lambda c: pl(X="abc")),
    ("pl-X-3d", V_, ("X",), lambda c: pl(X=X[:, :, None])),
    ("pl-Y-3d", V_, ("Y",), lambda c: pl(Y=Y[:, :, None])),
    ("pl-Y-rows", V_, ("Y",), lambda c: pl(Y=Y[:5])),
    ("pl-W-rows", V_, ("W",), lambda c: pl(W=W0[:2])),
    ("pl-W-columns", V_, ("W",), lambda c: pl(W=W0[:, :2])),
    ("pl-b-2d", V_, ("b",), lambda c: pl(W=W0, b=b0[None])),
    ("pl-b-length", V_, ("b",), lambda c: pl(W=W0, b=b0[:2])),
    ("pl-V-1d", V_, ("V",), lambda c: pl(V=Y[:, 0])),
    ("pl-V-linear", V_, ("V",), lambda c: pl(Y=X @ W0, V=Y, mode="linear")),
    ("pl-dtype-int", T, ("dtype",), lambda c: pl(dtype=np.int32)),
    ("pl-mode-none", V_, ("mode",), lambda c: pl(mode=None)),
    ("pl-constraint-unknown", V_, ("constraint",), lambda c: pl(constraint="layer")),
    ("pl-penalty-unknown", V_, ("penalty",), lambda c: pl(penalty="l0")),
    ("pl-warm-start-int", V_, ("warm_start",), lambda c: pl(warm_start=42)),
    ("pl-unknown-keyword", T, ("epsilon",), lambda c: pl(epsilon=0.1)),
    ("pl-threads-float", T, ("threads",), lambda c: pl(threads=2.5)),
    ("pl-eps-rel-string", T, ("eps_rel",), lambda c: pl(eps_rel="0.1")),
    ("pl-b-without-W", V_, ("b", "W"), lambda c: pl(b=b0)),
    ("pl-progress-int", T, ("progress",), lambda c: pl(progress=5)),
    # --- layers and networks ---------------------------------------------------------------------
    ("Dense-weight-1d", V_, ("weight",), lambda c: Dense(W0[0], None)),
    ("Dense-weight-none", T, ("weight",), lambda c: Dense(None)),
    ("Dense-weight-strings", T, ("weight",), lambda c: Dense(W0.astype(str))),
    ("Dense-weight-complex", T, ("weight",), lambda c: Dense(W0.astype(complex))),
    ("Dense-weight-nan", V_, ("weight",), lambda c: Dense(np.where(W0 > 1, np.nan, W0))),
    ("Dense-bias-length", V_, ("bias",), lambda c: Dense(W0, b0[:2])),
    ("Dense-bias-nan", V_, ("bias",), lambda c: Dense(W0, np.full(5, np.inf))),
    ("Dense-relu-string", T, ("relu",), lambda c: Dense(W0, b0, relu="yes")),
    ("Conv2d-weight-3d", V_, ("weight",), lambda c: Conv2d(K[0])),
    ("Conv2d-groups-divide", V_, ("groups",), lambda c: Conv2d(K, groups=3)),
    ("Conv2d-groups-zero", V_, ("groups",), lambda c: Conv2d(K, groups=0)),
    ("Conv2d-groups-float", T, ("groups",), lambda c: Conv2d(K, groups=1.5)),
    ("Conv2d-stride-zero", V_, ("stride",), lambda c: Conv2d(K, stride=0)),
    ("Conv2d-stride-triple", V_, ("stride",), lambda c: Conv2d(K, stride=(1, 1, 1))),
    ("Conv2d-stride-float", T, ("stride",), lambda c: Conv2d(K, stride=1.5)),
    ("Conv2d-padding-negative", V_, ("padding",), lambda c: Conv2d(K, padding=-1)),
    ("Conv2d-dilation-zero", V_, ("dilation",), lambda c: Conv2d(K, dilation=0)),
    ("Conv2d-bias-length", V_, ("bias",), lambda c: Conv2d(K, np.zeros(3))),
    ("Conv2d-weight-nan", V_, ("weight",), lambda c: Conv2d(np.full_like(K, np.nan))),
    ("MaxPool2d-kernel-zero", V_, ("kernel",), lambda c: MaxPool2d(0)),
    ("MaxPool2d-stride-zero", V_, ("stride",), lambda c: MaxPool2d(2, 0)),
    ("AvgPool2d-padding-negative", V_, ("padding",), lambda c: AvgPool2d(2, 2, -1)),
    ("BatchNorm-var-negative", V_, ("var",), lambda c: Network([Dense(W0, b0, relu=False),
                                                                BatchNorm(None, None, np.zeros(5), -np.ones(5)),
                                                                ReLU(), Dense(W1, b1, relu=False)])),
    ("BatchNorm-length", V_, ("BatchNorm",), lambda c: Network([Dense(W0, b0, relu=False),
                                                                BatchNorm(None, None, np.zeros(3), np.ones(3)),
                                                                ReLU(), Dense(W1, b1, relu=False)])),
    ("Network-empty", V_, ("layers",), lambda c: Network([])),
    ("Network-int", T, ("steps",), lambda c: Network(42)),
    ("Network-no-relu", V_, ("ReLU",), lambda c: Network([Dense(W0, b0, relu=False)])),
    ("Network-string-step", V_, ("steps[1]",), lambda c: Network([Dense(W0, b0), "relu", Dense(W1, b1)])),
    ("Network-relu-first", V_, ("steps[0]",), lambda c: Network([ReLU(), Dense(W0, b0)])),
    ("Network-bn-first", V_, ("steps[0]",), lambda c: Network([BatchNorm(None, None, np.zeros(4), np.ones(4)),
                                                               Dense(W0, b0)])),
    ("Network-conv-no-shape", V_, ("input_shape",), lambda c: Network([Conv2d(K), Flatten(), Dense(np.ones((18, 3)))])),
    ("Network-kernel-too-big", V_, ("input_shape",), lambda c: Network([Conv2d(K), Flatten()], (1, 2, 2))),
    ("Network-channels", V_, ("input_shape",), lambda c: Network([Conv2d(K), Flatten()], (3, 5, 5))),
    ("Network-shape-zero", V_, ("input_shape",), lambda c: Network([Dense(W0, b0)], (0,))),
    ("Network-shape-string", T, ("input_shape",), lambda c: Network([Dense(W0, b0)], "4")),
    ("Network-chain-mismatch", V_, ("dense1",), lambda c: Network([Dense(W0, b0), Dense(W0, b0)])),
    ("Network-forward-width", V_, ("X",), lambda c: tiny().forward(X[:, :3])),
    ("Network-forward-nan", V_, ("X",), lambda c: tiny().forward(np.full_like(X, np.nan))),
    ("from_arrays-lengths", V_, ("weights", "biases"), lambda c: from_arrays([W0], [b0, b1])),
    ("from_arrays-empty", V_, ("weights",), lambda c: from_arrays([], [])),
    ("from_arrays-array", T, ("weights",), lambda c: from_arrays(W0, b0)),
    ("from_arrays-none-weight", T, ("weights[1]",), lambda c: from_arrays([W0, None], [b0, b1])),
    ("from_arrays-bias-without-weight", T, ("weights[0]",), lambda c: from_arrays([None], [b0])),
    ("Dense-bias-without-weight", T, ("weight",), lambda c: Dense(None, b0)),
    ("from_arrays-chain", V_, ("weights[1]",), lambda c: from_arrays([W0, W0], [b0, b0])),
    ("from_arrays-bias-length", V_, ("biases[1]",), lambda c: from_arrays([W0, W1], [b0, b0])),
    ("from_arrays-last-linear-string", T, ("last_linear",), lambda c: from_arrays([W0, W1], [b0, b1], last_linear="no")),
    # --- .npz files ---------------------------------------------------------------------------
    ("load_npz-missing", O_, ("nothere.npz",), lambda c: Network.load_npz(c.path("nothere.npz"))),
    ("load_npz-truncated", V_, ("trunc.npz",), lambda c: Network.load_npz(truncated(c, "trunc.npz", saved_tiny(c)))),
    ("load_npz-garbage", V_, ("garbage.npz",), lambda c: Network.load_npz(c.path("garbage.npz"))),
    ("load_npz-no-weights", V_, ("empty.npz", "W0"), lambda c: Network.load_npz(write_npz(c, "empty.npz", A=X))),
    ("load_npz-nan", V_, ("nanw.npz", "W1"),
     lambda c: Network.load_npz(write_npz(c, "nanw.npz", W0=W0, b0=b0, W1=np.full_like(W1, np.nan), b1=b1))),
    ("load_npz-W-without-b", V_, ("nob.npz", "b1"),
     lambda c: Network.load_npz(write_npz(c, "nob.npz", W0=W0, b0=b0, W1=W1))),
    ("load_npz-chain", V_, ("chain.npz", "W1"),
     lambda c: Network.load_npz(write_npz(c, "chain.npz", W0=W0, b0=b0, W1=W0, b1=b0))),
    ("load_npz-W-3d", V_, ("w3d.npz", "W0"),
     lambda c: Network.load_npz(write_npz(c, "w3d.npz", W0=W0[None], b0=b0, W1=W1, b1=b1))),
    ("load_npz-objects", V_, ("obj.npz",),
     lambda c: Network.load_npz(write_npz(c, "obj.npz", W0=np.array([W0, None], dtype=object), b0=b0))),
    ("load_npz-bad-spec", V_, ("spec.npz",),
     lambda c: Network.load_npz(write_npz(c, "spec.npz", __nettrim__=np.array("{not json")))),
    ("load_npz-unknown-step", V_, ("step.npz", "Tanh"),
     lambda c: Network.load_npz(write_npz(c, "step.npz", __nettrim__=np.array(
         '{"input_shape": [4], "steps": [{"type": "Tanh"}]}')))),
    ("load_npz-int", T, ("path",), lambda c: Network.load_npz(42)),
    ("save_npz-missing-dir", O_, ("nodir",), lambda c: tiny().save_npz(c.path("nodir/out.npz"))),
    ("save_npz-directory", O_, ("adir.npz",), lambda c: tiny().save_npz(c.path("adir.npz"))),
    ("save_npz-int", T, ("path",), lambda c: tiny().save_npz(42)),
    ("save_npz-sparse-string", T, ("sparse",), lambda c: tiny().save_npz(c.path("s.npz"), sparse="yes")),
    # --- scikit-learn -----------------------------------------------------------------------------
    ("from_sklearn-int", T, ("model",), lambda c: _sk().from_sklearn(42)),
    ("from_sklearn-unfitted", V_, ("model", "fitted"), lambda c: _sk().from_sklearn(_mlp())),
    ("from_sklearn-tanh", V_, ("activation",), lambda c: _sk().from_sklearn(c.tanh_mlp)),
    ("from_sklearn-linear-model", T, ("model",), lambda c: _sk().from_sklearn(_logistic())),
    ("to_sklearn-int-model", T, ("model",), lambda c: _sk().to_sklearn(_sk().from_sklearn(c.clf), 42)),
    ("to_sklearn-int-net", T, ("net",), lambda c: _sk().to_sklearn(42, c.clf)),
    ("to_sklearn-layers", V_, ("net",), lambda c: _sk().to_sklearn(tiny(), c.clf)),
    ("to_sklearn-shapes", V_, ("net", "dense0"),
     lambda c: _sk().to_sklearn(reshaped(_sk().from_sklearn(c.clf)), c.clf)),
    # --- PyTorch --------------------------------------------------------------------------------
    ("from_torch-int", T, ("model",), lambda c: _th().from_torch(42)),
    ("from_torch-graph-training", V_, ("Dropout", "training mode", "eval"), lambda c: _th().from_torch(
        c.torch.nn.Sequential(c.torch.nn.Linear(4, 3), c.torch.nn.Tanh(), c.torch.nn.Dropout(), c.torch.nn.Linear(3, 2)))),
    ("from_torch-no-relu", V_, ("ReLU",), lambda c: _th().from_torch(c.torch.nn.Sequential(c.torch.nn.Linear(4, 3)))),
    ("from_torch-conv-no-shape", V_, ("input_shape",), lambda c: _th().from_torch(c.conv_module)),
    ("from_torch-shape-string", T, ("input_shape",), lambda c: _th().from_torch(c.conv_module, "1,5,5")),
    ("from_torch-shape-zero", V_, ("input_shape",), lambda c: _th().from_torch(c.conv_module, (1, 0, 5))),
    ("from_torch-shape-channels", V_, ("input_shape",), lambda c: _th().from_torch(c.conv_module, (3, 5, 5))),
    ("from_torch-check-inputs", V_, ("check_inputs",), lambda c: _th().from_torch(c.module, check_inputs=X[:, :3])),
    ("from_torch-half", T, ("model", "float16"), lambda c: _th().from_torch(_copy(c.module).half())),
    ("to_torch-plain-net", V_, ("net",), lambda c: _th().to_torch(tiny(), c.module)),
    ("to_torch-int-net", T, ("net",), lambda c: _th().to_torch(42, c.module)),
    ("to_torch-int-module", T, ("module",), lambda c: _th().to_torch(c.torch_net, 42)),
    ("to_torch-shapes", V_, ("net", "0"), lambda c: _th().to_torch(reshaped(c.torch_net), c.module)),
    ("to_torch-other-module", V_, ("module",), lambda c: _th().to_torch(c.torch_net, c.conv_module)),
    # --- ONNX -----------------------------------------------------------------------------------
    ("load_onnx-int", T, ("model",), lambda c: _ox().load_onnx(42)),
    ("load_onnx-missing", O_, ("nothere.onnx",), lambda c: _ox().load_onnx(c.path("nothere.onnx"))),
    ("load_onnx-truncated", V_, ("trunc.onnx",),
     lambda c: _ox().load_onnx(truncated(c, "trunc.onnx", saved_onnx(c)))),
    ("load_onnx-garbage", V_, ("garbage.onnx",), lambda c: _ox().load_onnx(c.path("garbage.onnx"))),
    ("load_onnx-tanh", V_, ("Tanh",), lambda c: _ox().load_onnx(onnx_with("Tanh"))),
    ("load_onnx-two-inputs", V_, ("input",), lambda c: _ox().load_onnx(onnx_mlp(inputs=2))),
    ("load_onnx-no-shape", V_, ("input_shape",), lambda c: _ox().load_onnx(onnx_mlp(dims=False))),
    ("load_onnx-shape-string", T, ("input_shape",), lambda c: _ox().load_onnx(c.onnx_model, "4")),
    ("load_onnx-shape-wrong", V_, ("input_shape",), lambda c: _ox().load_onnx(c.onnx_model, (5,))),
    ("load_onnx-check-inputs", V_, ("check_inputs",), lambda c: _ox().load_onnx(c.onnx_model, check_inputs=X[:, :3])),
    ("save_onnx-plain-net", V_, ("net",), lambda c: _ox().save_onnx(tiny(), c.onnx_model, c.path("o.onnx"))),
    ("save_onnx-int-model", T, ("model",), lambda c: _ox().save_onnx(c.onnx_net, 42, c.path("o.onnx"))),
    ("save_onnx-int-path", T, ("path",), lambda c: _ox().save_onnx(c.onnx_net, c.onnx_model, 42)),
    ("save_onnx-missing-dir", O_, ("nodir",), lambda c: _ox().save_onnx(c.onnx_net, c.onnx_model, c.path("nodir/o.onnx"))),
    ("save_onnx-shapes", V_, ("net", "fc0"), lambda c: _ox().save_onnx(reshaped(c.onnx_net), c.onnx_model, c.path("o.onnx"))),
    ("save_onnx-other-model", V_, ("model",), lambda c: _ox().save_onnx(c.onnx_net, onnx_with("Tanh"), c.path("o.onnx"))),
    # --- methods ---------------------------------------------------------------------------------
    ("magnitude-no-target", V_, ("sparsity",), lambda c: methods.magnitude(X, W0, b0)),
    ("magnitude-sparsity-above-1", V_, ("sparsity",), lambda c: methods.magnitude(X, W0, b0, sparsity=1.5)),
    ("magnitude-W-1d", V_, ("W",), lambda c: methods.magnitude(X, W0[0], b0, sparsity=0.5)),
    ("wanda-X-width", V_, ("X",), lambda c: methods.wanda(X[:, :3], W0, b0, sparsity=0.5)),
    ("wanda-sparsity-negative", V_, ("sparsity",), lambda c: methods.wanda(X, W0, b0, sparsity=-0.1)),
    ("wanda-nm", V_, ("nm",), lambda c: methods.wanda(X, W0, b0, nm="2:2")),
    ("wanda-both", V_, ("nm", "sparsity"), lambda c: methods.wanda(X, W0, b0, sparsity=0.5, nm="2:4")),
    ("lobs-sparsity", V_, ("sparsity",), lambda c: methods.lobs(X, W0, b0, sparsity=2)),
    ("lobs-X-nan", V_, ("X",), lambda c: methods.lobs(np.full_like(X, np.nan), W0, b0, sparsity=0.5)),
    ("lobs-damp", V_, ("damp",), lambda c: methods.lobs(X, W0, b0, sparsity=0.5, damp=-1)),
    ("lobs-rounds", T, ("rounds",), lambda c: methods.lobs(X, W0, b0, sparsity=0.5, rounds="x")),
    ("lobs-b-length", V_, ("b",), lambda c: methods.lobs(X, W0, b0[:2], sparsity=0.5)),
    ("sparsegpt-blocksize", V_, ("blocksize",), lambda c: methods.sparsegpt(X, W0, b0, sparsity=0.5, blocksize=0)),
    ("sparsegpt-no-target", V_, ("sparsity",), lambda c: methods.sparsegpt(X, W0, b0)),
    ("sparsegpt-X-rows", V_, ("X",), lambda c: methods.sparsegpt(X[:, :0], W0, b0, sparsity=0.5)),
    ("apoz-sparsity", V_, ("sparsity",), lambda c: methods.apoz(tiny(), X, sparsity=1.5)),
    ("apoz-scope", V_, ("scope",), lambda c: methods.apoz(tiny(), X, sparsity=0.5, scope="global")),
    ("apoz-net", T, ("net",), lambda c: methods.apoz(42, X, sparsity=0.5)),
    ("apoz-X-width", V_, ("X",), lambda c: methods.apoz(tiny(), X[:, :3], sparsity=0.5)),
    ("refit-mask-shape", V_, ("mask",), lambda c: methods.refit_on_support(X, Y, np.ones((3, 5), bool))),
    ("refit-Y-rows", V_, ("Y",), lambda c: methods.refit_on_support(X, Y[:4], np.ones((4, 5), bool))),
    ("refit-inactive", V_, ("inactive",), lambda c: methods.refit_on_support(X, Y, np.ones((4, 5), bool),
                                                                             inactive="soft")),
    ("n_of_m-zero", V_, ("nm",), lambda c: methods.n_of_m(np.ones((4, 2)), 0, 4)),
    ("check_nm-dash", V_, ("nm",), lambda c: methods.check_nm("2-4")),
    ("shrink-int", T, ("net",), lambda c: structured.shrink(42)),
    # --- LayerSolver: its lifecycle (issue 35) -----------------------------------------------------
    ("ls-settings-linear-with-V", V_, ("mode", "update_bound(None)"),
     lambda c: bounded().update_settings(mode="linear")),
    ("ls-settings-inactive-relu-with-V", V_, ("inactive", "update_bound(None)"),
     lambda c: bounded().update_settings(inactive="relu")),
    ("ls-bound-inactive-relu", V_, ("V", "inactive"), lambda c: ls(inactive="relu").update_bound(np.zeros_like(Y))),
    ("ls-bound-linear", V_, ("V", "mode"), lambda c: ls(X @ W0, mode="linear").update_bound(np.zeros_like(Y))),
    ("ls-bound-shape", V_, ("V",), lambda c: ls().update_bound(np.zeros((20, 4)))),
    ("ls-target-Y-with-b", V_, ("b", "W"), lambda c: ls().update_target(Y, b=b0)),
    ("ls-eps-rel-overflow", V_, ("eps_rel", "overflows"), lambda c: ls().solve(eps_rel=1e308)),
    ("ls-bound-rows", V_, ("V",), lambda c: ls().update_bound(np.zeros((5, 5)))),
    ("ls-bound-1d", V_, ("V",), lambda c: ls().update_bound(np.zeros(5))),
    ("ls-bound-strings", T, ("V",), lambda c: ls().update_bound(np.zeros((20, 5)).astype(str))),
    ("ls-target-negative", V_, ("Y", "mode='linear'"), lambda c: ls().update_target(X @ W0)),
    ("ls-target-nan", V_, ("Y",), lambda c: ls().update_target(np.full_like(Y, np.nan))),
    ("ls-target-inf", V_, ("Y",), lambda c: ls().update_target(np.where(Y > 1, np.inf, Y))),
    ("ls-target-rows", V_, ("Y",), lambda c: ls().update_target(Y[:5])),
    ("ls-target-none", V_, ("Y",), lambda c: ls().update_target()),
    ("ls-target-W-columns", V_, ("Y",), lambda c: ls().update_target(Y, W=W0[:, :3])),
    ("ls-target-W-rows", V_, ("W",), lambda c: ls().update_target(W=W0[:3])),
    ("ls-warm-start-shape", V_, ("warm_start",), lambda c: ls().warm_start(np.zeros((3, 3)))),
    ("ls-warm-start-word", V_, ("warm_start",), lambda c: ls().warm_start("ones")),
    ("ls-warm-start-W-without-W", V_, ("warm_start", "W"), lambda c: ls(Y).warm_start("W")),
    ("ls-warm-start-int", T, ("warm_start",), lambda c: ls().warm_start(42)),
    ("ls-settings-progress", T, ("progress",), lambda c: ls().update_settings(progress=print)),
    ("ls-settings-relu-after-negative-Y", V_, ("mode", "update_target"),
     lambda c: ls(X @ W0, mode="linear").update_settings(mode="relu")),
    ("ls-settings-mode-word", V_, ("mode",), lambda c: ls().update_settings(mode="tanh")),
    ("ls-settings-unknown", T, ("epsilon",), lambda c: ls().update_settings(epsilon=0.1)),
    ("ls-settings-max-iter", V_, ("max_iter",), lambda c: ls().update_settings(max_iter=-1)),
    ("ls-settings-tol-string", T, ("tol",), lambda c: ls().update_settings(tol="1e-4")),
    ("ls-settings-polish-string", T, ("polish",), lambda c: ls().update_settings(polish="yes")),
    ("ls-settings-lam-negative", V_, ("lam",), lambda c: ls().update_settings(lam=-1)),
    ("ls-settings-threads", V_, ("threads",), lambda c: ls().update_settings(threads=-1)),
    ("ls-eps-neuron-shape", V_, ("eps", "neuron"), lambda c: ls(constraint="neuron").solve(eps=np.ones(3))),
    ("ls-eps-joint-shape", V_, ("eps", "joint"), lambda c: ls(constraint="joint").solve(eps=[1.0, 2.0])),
    ("ls-eps-negative", V_, ("eps",), lambda c: ls().solve(eps=-1.0)),
    ("ls-eps-nan", V_, ("eps",), lambda c: ls().solve(eps=float("nan"))),
    ("ls-eps-string", T, ("eps",), lambda c: ls().solve(eps="0.1")),
    ("ls-eps-rel-negative", V_, ("eps_rel",), lambda c: ls().solve(eps_rel=-0.1)),
    ("ls-eps-rel-string", T, ("eps_rel",), lambda c: ls().solve(eps_rel="0.1")),
    ("ls-solve-progress-int", T, ("progress",), lambda c: ls().solve(progress=5)),
    ("ls-path-empty", V_, ("eps_rel",), lambda c: ls().solve_path([])),
    ("ls-path-eps-empty", V_, ("eps",), lambda c: ls().solve_path(eps=[])),
    ("ls-path-both", V_, ("eps_rel",), lambda c: ls().solve_path([0.1], eps=[1.0])),
    ("ls-path-neither", V_, ("eps_rel",), lambda c: ls().solve_path()),
    ("ls-path-negative", V_, ("eps_rel",), lambda c: ls().solve_path([0.1, -1])),
    ("ls-path-word", T, ("eps_rel",), lambda c: ls().solve_path([0.1, "x"])),
    ("ls-new-neither", V_, ("Y",), lambda c: nettrim.LayerSolver(X)),
    ("ls-new-backend-int", T, ("backend",), lambda c: ls(backend=3)),
    ("ls-new-backend-unknown", V_, ("backend",), lambda c: ls(backend="tpu")),
    ("ls-new-fit-bias-string", T, ("fit_bias",), lambda c: ls(fit_bias="yes")),
    ("ls-new-progress-int", T, ("progress",), lambda c: ls(progress=5)),
    ("ls-new-V-linear", V_, ("V",), lambda c: ls(X @ W0, mode="linear", V=np.zeros_like(Y))),
    ("ls-new-V-inactive-relu", V_, ("V",), lambda c: ls(inactive="relu", V=np.zeros_like(Y))),
    ("ls-new-Y-negative", V_, ("Y",), lambda c: ls(X @ W0)),
    ("ls-new-dtype", T, ("dtype",), lambda c: ls(dtype="float16")),
    # --- PruneOptions.checked: every option --------------------------------------------------------
    ("po-scheme", V_, ("scheme",), lambda c: po(scheme="serial")),
    ("po-scope", V_, ("scope",), lambda c: po(scope="global")),
    ("po-allocation", V_, ("allocation",), lambda c: po(allocation="greedy")),
    ("po-floor", V_, ("floor",), lambda c: po(floor="zero")),
    ("po-method", V_, ("method",), lambda c: po(method="obd")),
    ("po-nm-word", V_, ("nm",), lambda c: po(nm="two:four")),
    ("po-nm-order", V_, ("nm",), lambda c: po(nm=(4, 2))),
    ("po-nm-lobs", V_, ("nm", "lobs"), lambda c: po(method="lobs", nm="2:4")),
    ("po-nm-apoz", V_, ("nm", "apoz"), lambda c: po(method="apoz", nm="2:4")),
    ("po-nm-with-sparsity", V_, ("sparsity", "nm"), lambda c: po(nm="2:4", sparsity=0.5)),
    ("po-sparsity-zero", V_, ("sparsity",), lambda c: po(sparsity=0)),
    ("po-sparsity-one", V_, ("sparsity",), lambda c: po(sparsity=1)),
    ("po-sparsity-1.5", V_, ("sparsity",), lambda c: po(sparsity=1.5)),
    ("po-sparsity-nested", V_, ("sparsity",), lambda c: po(sparsity=[[0.5], [0.5]])),
    ("po-sparsity-string", V_, ("sparsity",), lambda c: po(sparsity="0.5")),
    ("po-sparsity-strings", V_, ("sparsity",), lambda c: po(sparsity=["0.5", "0.5"])),
    ("po-sparsity-empty", V_, ("sparsity",), lambda c: po(sparsity=[])),
    ("po-sparsity-bool", V_, ("sparsity",), lambda c: po(sparsity=True)),
    ("po-eps-rel-negative", V_, ("eps_rel",), lambda c: po(eps_rel=-0.1)),
    ("po-gamma-below-1", V_, ("gamma",), lambda c: po(gamma=0.9)),
    ("po-holdout-above-half", V_, ("holdout",), lambda c: po(holdout=0.6)),
    ("po-holdout-string", T, ("holdout",), lambda c: po(holdout="0.2")),
    ("po-structured-method", V_, ("structured",), lambda c: po(structured=True, method="magnitude", sparsity=0.5)),
    ("po-refit-method", V_, ("refit",), lambda c: po(refit="bounded", method="wanda", sparsity=0.5)),
    ("po-refit-word", V_, ("refit",), lambda c: po(refit="always")),
    ("po-inactive-method", V_, ("inactive",), lambda c: po(inactive="relu", method="magnitude", sparsity=0.5)),
    ("po-inactive-word", V_, ("inactive",), lambda c: po(inactive="soft")),
    ("po-inactive-relu-cuda", V_, ("inactive", "cuda"), lambda c: po(inactive="relu", backend="cuda")),
    ("po-backend-unknown", V_, ("backend",), lambda c: po(backend="tpu")),
    ("po-backend-int", T, ("backend",), lambda c: po(backend=0)),
    ("po-final-refit-string", T, ("final_refit",), lambda c: po(final_refit="no")),
    ("po-max-samples-zero", V_, ("max_samples",), lambda c: po(max_samples=0)),
    ("po-seed-negative", V_, ("seed",), lambda c: po(seed=-1)),
    ("po-threads-negative", V_, ("threads",), lambda c: po(threads=-1)),
    ("po-threads-string", T, ("threads",), lambda c: po(threads="4")),
    ("po-workers-zero", V_, ("workers",), lambda c: po(workers=0)),
    ("po-workers-float", T, ("workers",), lambda c: po(workers=2.0)),
    ("po-block-outputs-cascade", V_, ("block_outputs", "parallel"), lambda c: po(block_outputs=4, scheme="cascade")),
    ("po-block-outputs-zero", V_, ("block_outputs",), lambda c: po(block_outputs=0, scheme="parallel")),
    ("po-memory-budget-word", V_, ("memory_budget",), lambda c: po(memory_budget="lots")),
    ("po-memory-budget-zero", V_, ("memory_budget",), lambda c: po(memory_budget="0")),
    ("po-memory-budget-negative", V_, ("memory_budget",), lambda c: po(memory_budget=-5)),
    ("po-memory-budget-unit", V_, ("memory_budget",), lambda c: po(memory_budget="2 parsecs")),
    ("po-memory-budget-float", V_, ("memory_budget",), lambda c: po(memory_budget=2.5e9)),
    ("po-checkpoint-file", V_, ("checkpoint",), lambda c: po(checkpoint=c.path("afile"))),
    ("po-checkpoint-int", T, ("checkpoint",), lambda c: po(checkpoint=7)),
    ("po-dtype", T, ("dtype",), lambda c: po(dtype="float16")),
    ("po-on-layer", T, ("on_layer",), lambda c: po(on_layer="print")),
    ("po-on-trial", T, ("on_trial",), lambda c: po(on_trial=5)),
    ("po-progress", T, ("progress",), lambda c: po(progress=5)),
    ("po-executor-no-submit", T, ("executor",), lambda c: po(executor=object())),
    ("po-unknown-option", T, ("epsilon",), lambda c: po(epsilon=0.1)),
    ("po-method-unknown-option", T, ("damp", "magnitude"), lambda c: po(method="magnitude", sparsity=0.5, damp=0.1)),
    ("po-per-layer-option", T, ("mode",), lambda c: po(mode="linear")),
    ("po-penalty", V_, ("penalty",), lambda c: po(penalty="l0")),
    ("po-engine-setting", V_, ("max_iter",), lambda c: po(max_iter=-1)),
    ("po-method-option-value", V_, ("damp",), lambda c: po(method="lobs", sparsity=0.5, damp=-1)),
    ("po-apoz-scope-layer", V_, ("scope",), lambda c: po(method="apoz", sparsity=0.5, scope="layer")),
    ("po-apoz-list", V_, ("sparsity",), lambda c: po(method="apoz", sparsity=[0.5, 0.5])),
    ("pn-warm-start-word", V_, ("warm_start",), lambda c: pn(c, warm_start="ones")),
    ("pn-penalty-word", V_, ("penalty",), lambda c: pn(c, penalty="l2")),
    ("pn-options-type", T, ("options",), lambda c: pn(c, options={"eps_rel": 0.1})),
    ("pn-options-and-keywords", T, ("tol",), lambda c: pn(c, options=po(), tol=1e-3)),
    ("pn-options-sparsity-length", V_, ("sparsity",), lambda c: pn(c, options=po(sparsity=[0.5, 0.5, 0.5]))),
    ("pn-options-layers", V_, ("layers",), lambda c: pn(c, options=po(layers=["dense7"]))),
    # --- layers= ------------------------------------------------------------------------------------
    ("pn-layers-unknown-name", V_, ("layers", "dense9"), lambda c: pn(c, layers=["dense9"])),
    ("pn-layers-index", V_, ("layers",), lambda c: pn(c, layers=[5])),
    ("pn-layers-negative-index", V_, ("layers",), lambda c: pn(c, layers=[-3])),
    ("pn-layers-name-prefix", V_, ("layers", "name:x"), lambda c: pn(c, layers=["name:x"])),
    ("pn-layers-hash", V_, ("layers", "#9"), lambda c: pn(c, layers=["#9"])),
    ("pn-layers-empty", V_, ("layers",), lambda c: pn(c, layers=[])),
    ("pn-layers-float", T, ("layers",), lambda c: pn(c, layers=2.5)),
    ("pn-layers-bool", V_, ("layers",), lambda c: pn(c, layers=[True])),
    ("pn-layers-ambiguous", V_, ("layers", "name:2", "#2"), lambda c: pn(c, digit_named(), layers=["2"])),
    ("pn-layers-ambiguous-of-several", V_, ("layers", "name:2"), lambda c: pn(c, digit_named(), layers=["0", "2"])),
    # --- executors ------------------------------------------------------------------------------------
    ("pn-executor-shut-down", V_, ("executor", "shut down"),
     lambda c: pn(c, scheme="parallel", executor=shut_down_pool())),
    ("pn-executor-no-future", T, ("executor",), lambda c: pn(c, scheme="parallel", executor=NoFuture())),
    ("pn-executor-no-submit", T, ("executor",), lambda c: pn(c, scheme="parallel", executor=object())),
    ("pn-executor-function", T, ("executor",), lambda c: pn(c, scheme="parallel", executor=print)),
    # --- sparse .npz, ONNX sparse initializers, checkpoints ----------------------------------------
    ("load_npz-csr-column", V_, ("csr5.npz", "steps[0]", "column index 5"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csr5.npz", [5]))),
    ("load_npz-csr-column-1e8", V_, ("csr1e8.npz", "steps[0]", "100000000"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csr1e8.npz", [10 ** 8]))),
    ("load_npz-csr-negative", V_, ("csrneg.npz", "steps[0]"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrneg.npz", [-1]))),
    ("load_npz-csr-unsorted", V_, ("csrsort.npz", "steps[0]", "sorted"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrsort.npz", [2, 1]))),
    ("load_npz-csr-duplicate", V_, ("csrdup.npz", "steps[0]"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrdup.npz", [1, 1]))),
    ("load_npz-csr-indptr-decreasing", V_, ("csrptr.npz", "steps[0]", "row pointers"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrptr.npz", [0], [0, 1, 0, 1, 1]))),
    ("load_npz-csr-indptr-length", V_, ("csrlen.npz", "steps[0]"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrlen.npz", [0], [0, 1, 1]))),
    ("load_npz-csr-huge-shape", V_, ("csrbig.npz", "steps[0]", "MiB"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrbig.npz", [0], None, (200000, 200000)))),
    ("load_npz-csr-shape-negative", V_, ("csrshape.npz", "steps[0]"),
     lambda c: Network.load_npz(csr_npz(c.dir / "csrshape.npz", [0], None, (-4, 3)))),
    ("read-npz-csr-column", V_, ("csrread.npz", "steps[0]"),
     lambda c: _ad().read(csr_npz(c.dir / "csrread.npz", [5]))),
    ("read-onnx-sparse-index", V_, ("sparse_idx.onnx", "w0"),
     lambda c: _ad().read(saved(c, "sparse_idx.onnx", onnx_sparse_index()))),
    ("read-onnx-sparse-negative", V_, ("sparse_neg.onnx", "w0"),
     lambda c: _ad().read(saved(c, "sparse_neg.onnx", onnx_sparse_index(-1)))),
    ("read-onnx-sparse-model", V_, ("sparse initializer", "w0"), lambda c: _ad().read(onnx_sparse_index())),
    ("read-onnx-gemm-alpha0", V_, ("fc1", "alpha=0", "layers="),     # (read as a graph: fc1 cannot be pruned)
     lambda c: nettrim.prune_network(_ad().read(saved(c, "alpha0.onnx", onnx_alpha0()))[0],
                                     np.random.default_rng(0).random((20, 4), np.float32), sparsity=0.5)),
    ("load_onnx-gemm-alpha0", V_, ("fc1", "alpha=0"), lambda c: _ox().load_onnx(onnx_alpha0())),
    ("pn-checkpoint-stale", CheckpointMismatch, ("checkpoint", "run.json"),
     lambda c: pn(c, checkpoint=stale_checkpoint(c.dir / "ck-stale"))),
    ("pn-checkpoint-garbled", V_, ("checkpoint", "run.json"), lambda c: pn(c, checkpoint=garbled_checkpoint(c))),
    ("pn-checkpoint-other-run", CheckpointMismatch, ("checkpoint", "options"),
     lambda c: pn(c, eps_rel=0.1, checkpoint=other_run_checkpoint(c))),
    ("pn-apoz-too-sparse", V_, ("sparsity", "APoZ"), lambda c: pn(c, method="apoz", sparsity=0.999)),
    ("pn-apoz-scope-layer", V_, ("scope",), lambda c: pn(c, method="apoz", sparsity=0.5, scope="layer")),
]


def _ad():
    from nettrim import adapters
    return adapters


def _sk():
    from nettrim.adapters import sklearn
    return sklearn


def _th():
    pytest.importorskip("torch")
    from nettrim.adapters import torch
    return torch


def _ox():
    pytest.importorskip("onnx")
    from nettrim.adapters import onnx
    return onnx


def _copy(module):
    import copy
    return copy.deepcopy(module)


def _mlp():
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier((5,))


def _logistic():
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression().fit(X, np.arange(20) % 2)


# --- the command line --------------------------------------------------------------------------
def prune(*extra, model="model.npz", calib="calib.npy", out="out.npz"):
    return lambda d: ["prune", d(model), "--calib", d(calib), "-o", d(out), "--quiet", *extra]


def sweep(*extra, model="model.npz", ev="eval.npz"):
    return lambda d: ["sweep", d(model), "--calib", d("calib.npy"), "--eval", d(ev), "--plot", "", "--quiet", *extra]


CLI = [
    ("eps-negative", ("--eps-rel",), prune("--eps-rel", "-1")),
    ("eps-nan", ("--eps-rel",), prune("--eps-rel", "nan")),
    ("eps-inf", ("--eps-rel",), prune("--eps-rel", "inf")),
    ("eps-word", ("--eps-rel",), prune("--eps-rel", "abc")),
    ("sparsity-above-1", ("--sparsity",), prune("--sparsity", "1.5")),
    ("sparsity-zero", ("--sparsity",), prune("--sparsity", "0")),
    ("threads-negative", ("--threads",), prune("--threads", "-1")),
    ("threads-huge", ("--threads",), prune("--threads", "100000")),
    ("threads-float", ("--threads",), prune("--threads", "2.5")),
    ("max-samples-zero", ("--max-samples",), prune("--max-samples", "0")),
    ("max-samples-word", ("--max-samples",), prune("--max-samples", "abc")),
    ("seed-negative", ("--seed",), prune("--seed", "-1")),
    ("stages-zero", ("--stages",), prune("--sparsity", "0.5", "--stages", "0")),
    ("stages-without-sparsity", ("--sparsity", "stages"), prune("--stages", "2")),
    ("nm-order", ("--nm",), prune("--nm", "4:2")),
    ("nm-word", ("--nm",), prune("--nm", "abc")),
    ("method-needs-target", ("--sparsity",), prune("--method", "wanda")),
    ("nm-method", ("--nm",), prune("--method", "lobs", "--nm", "2:4")),
    ("structured-method", ("--structured",), prune("--structured", "--method", "wanda", "--sparsity", "0.5")),
    ("output-is-input", ("--force",), prune(out="model.npz")),
    ("output-is-input-symlink", ("--force",), prune(out="link.npz")),
    ("output-is-input-relative", ("--force",), lambda d: ["prune", d("model.npz"), "--calib", d("calib.npy"),
                                                          "-o", "./sub/../model.npz", "--quiet"]),
    ("output-missing-dir", ("nodir",), prune(out="nodir/out.npz")),
    ("output-directory", ("adir.npz",), prune(out="adir.npz")),
    ("checkpoint-file", ("--checkpoint",), prune("--checkpoint", "afile")),
    ("model-truncated", ("trunc.npz",), prune(model="trunc.npz")),
    ("model-nan", ("nan.npz", "W1"), prune(model="nan.npz")),
    ("model-garbage", ("garbage.npz",), prune(model="garbage.npz")),
    ("onnx-truncated", ("trunc.onnx",), prune(model="trunc.onnx", out="out.onnx")),
    ("pt-untrusted", ("--trust-model",), prune(model="evil.pt", out="out.pt")),
    ("inspect-pt-untrusted", ("--trust-model",), lambda d: ["inspect", d("evil.pt")]),
    ("calib-nan", ("calib_nan.npy",), prune(calib="calib_nan.npy")),
    ("calib-garbage", ("garbage.npy",), prune(calib="garbage.npy")),
    ("calib-no-X", ("calib_noX.npz",), prune(calib="calib_noX.npz")),
    ("calib-missing", ("--calib",), lambda d: ["prune", d("model.npz"), "-o", d("out.npz")]),
    ("input-shape-dense", ("--input-shape",), prune("--input-shape", "1,28,28")),
    ("input-shape-word", ("--input-shape",), prune("--input-shape", "abc")),
    ("input-shape-zero", ("--input-shape",), prune("--input-shape", "0,8,8")),
    ("sweep-eps-word", ("--eps-rel",), sweep("--eps-rel", "0.1", "abc")),
    ("sweep-eps-negative", ("--eps-rel",), sweep("--eps-rel", "0.1", "-1")),
    ("sweep-sparsity", ("--sparsity",), sweep("--sparsity", "0.5,2")),
    ("sweep-eval-width", ("eval_bad.npz",), sweep(ev="eval_bad.npz")),
    ("report-garbage", ("bad.json",), lambda d: ["report", d("bad.json")]),
    ("report-schema", ("wrong.json",), lambda d: ["report", d("wrong.json")]),
    ("inspect-truncated", ("trunc.onnx",), lambda d: ["inspect", d("trunc.onnx")]),
    ("demo-sparsity", ("--sparsity",), lambda d: ["demo", "--sparsity", "1.5", "--plot", "", "--quiet"]),
    ("demo-threads", ("--threads",), lambda d: ["demo", "--threads", "-5", "--plot", "", "--quiet"]),
    # --- layers, outputs, options of the newer surfaces ------------------------------------------
    ("layers-ambiguous", ("--layers", "name:2", "#2"), prune("--layers", "2", model="names.npz", calib="calib4.npy")),
    ("layers-hash", ("--layers", "#9"), prune("--layers", "#9")),
    ("layers-unknown", ("--layers", "dense9"), prune("--layers", "dense9")),
    ("layers-name-unknown", ("--layers", "name:x"), prune("--layers", "name:x")),
    ("layers-empty", ("--layers",), prune("--layers", ",")),
    ("output-is-train", ("-o", "training data"), prune("--finetune", "1", "--train", "train.npz", out="train.npz")),
    ("report-is-eval", ("-o (its report)", "evaluation data"),
     prune("--finetune", "1", "--train", "train.npz", "--eval", "out.json")),
    ("finetune-without-train", ("--finetune",), prune("--finetune", "1")),
    ("train-without-finetune", ("--train",), prune("--train", "train.npz")),
    ("finetune-negative", ("--finetune",), prune("--finetune", "-1", "--train", "train.npz")),
    ("sweep-plot-is-model", ("--plot", "model"), lambda d: sweep()(d) + ["--plot", d("model.npz")]),
    ("sweep-plot-is-eval", ("--plot", "evaluation data"), lambda d: sweep()(d) + ["--plot", d("eval.npz")]),
    ("refit-method", ("--refit",), prune("--refit", "bounded", "--method", "magnitude", "--sparsity", "0.5")),
    ("no-refit-method", ("--refit",), prune("--no-refit", "--method", "wanda", "--sparsity", "0.5")),
    ("inactive-method", ("--inactive",), prune("--inactive", "relu", "--method", "magnitude", "--sparsity", "0.5")),
    ("inactive-relu-cuda", ("--inactive",), prune("--inactive", "relu", "--backend", "cuda")),
    ("backend-unknown", ("--backend",), prune("--backend", "tpu")),
    ("workers-zero", ("--workers",), prune("--workers", "0", "--scheme", "parallel")),
    ("workers-negative", ("--workers",), prune("--workers", "-2", "--scheme", "parallel")),
    ("workers-with-cluster", ("--workers", "--scheduler"),
     prune("--workers", "2", "--scheduler", "tcp://127.0.0.1:1", "--scheme", "parallel")),
    ("memory-budget-word", ("--memory-budget",), prune("--memory-budget", "lots")),
    ("memory-budget-zero", ("--memory-budget",), prune("--memory-budget", "0")),
    ("memory-budget-negative", ("--memory-budget",), prune("--memory-budget", "-5")),
    ("block-outputs-cascade", ("--block-outputs",), prune("--block-outputs", "4", "--scheme", "cascade")),
    ("block-outputs-zero", ("--block-outputs",), prune("--block-outputs", "0", "--scheme", "parallel")),
    ("nm-with-sparsity", ("--sparsity",), prune("--sparsity", "0.5", "--nm", "2:4")),
    ("nm-apoz", ("--nm",), prune("--method", "apoz", "--nm", "2:4")),
    ("apoz-scope-layer", ("--scope",), prune("--method", "apoz", "--sparsity", "0.5", "--scope", "layer")),
    ("apoz-too-sparse", ("--sparsity",), prune("--method", "apoz", "--sparsity", "0.999")),
    ("checkpoint-under-file", ("--checkpoint",), prune("--checkpoint", "afile/ck")),
    ("checkpoint-stale", ("--checkpoint", "run.json"), prune("--checkpoint", "ck-stale-cli")),
    ("sweep-nm-lobs", ("--nm",), sweep("--method", "lobs", "--nm", "2:4")),
    ("sweep-workers-zero", ("--workers",), sweep("--workers", "0")),
    ("sweep-memory-budget", ("--memory-budget",), sweep("--memory-budget", "lots")),
    ("sweep-layers-hash", ("--layers", "#9"), sweep("--layers", "#9")),
    # --- model files of the newer checks ------------------------------------------------------------
    ("npz-csr-column", ("csr_bad.npz", "steps[0]"), prune(model="csr_bad.npz", calib="calib4.npy")),
    ("npz-csr-huge", ("csr_big.npz", "steps[0]"), prune(model="csr_big.npz", calib="calib4.npy")),
    ("onnx-sparse-index", ("sparse_idx.onnx",), prune(model="sparse_idx.onnx", calib="calib4.npy", out="out.onnx")),
    ("onnx-gemm-alpha0", ("fc1", "alpha=0", "--layers"), prune(model="alpha0.onnx", calib="calib4.npy", out="out.onnx")),
    ("inspect-onnx-sparse-index", ("sparse_idx.onnx",), lambda d: ["inspect", d("sparse_idx.onnx")]),
    ("inspect-npz-csr", ("csr_bad.npz",), lambda d: ["inspect", d("csr_bad.npz")]),
]


class Evil:
    """A pickle whose loading writes a file (the marker) instead of giving back a model."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "the payload ran"))


def prepare(folder, digits_mlp):
    """The files the rows read (written once per session)."""
    from nettrim.adapters.sklearn import from_sklearn
    clf, Xtr, ytr, Xte, yte = digits_mlp
    net = from_sklearn(clf)
    net.save_npz(folder / "model.npz")
    os.symlink(folder / "model.npz", folder / "link.npz")
    (folder / "sub").mkdir()
    np.save(folder / "calib.npy", Xtr[:100])
    np.save(folder / "calib_nan.npy", np.where(Xtr[:100] > 0.9, np.nan, Xtr[:100]))
    np.savez(folder / "calib_noX.npz", A=Xtr[:100])
    (folder / "garbage.npy").write_bytes(b"\x93NUMPY this is not an array")
    (folder / "garbage.npz").write_bytes(b"PK\x03\x04 not a zip file at all")
    (folder / "garbage.onnx").write_bytes(b"not an onnx file at all")
    data = (folder / "model.npz").read_bytes()
    (folder / "trunc.npz").write_bytes(data[:len(data) // 2])
    ws = [layer.weight for layer in net.layers]
    arrays = {f"W{i}": w for i, w in enumerate(ws)} | {f"b{i}": layer.bias for i, layer in enumerate(net.layers)}
    arrays["W1"] = np.where(arrays["W1"] > 0.1, np.nan, arrays["W1"])
    np.savez(folder / "nan.npz", **arrays)
    np.savez(folder / "eval.npz", X=Xte, y=yte)
    np.savez(folder / "eval_bad.npz", X=Xte[:, :10], y=yte)
    (folder / "afile").write_text("a file, not a directory")
    (folder / "adir.npz").mkdir()
    (folder / "bad.json").write_text("{not json")
    (folder / "wrong.json").write_text('{"a": 1}')
    digit_named().save_npz(folder / "names.npz")
    np.save(folder / "calib4.npy", X)
    np.savez(folder / "train.npz", X=Xtr[:50], y=ytr[:50])
    csr_npz(folder / "csr_bad.npz", [5])
    csr_npz(folder / "csr_big.npz", [0], None, (200000, 200000))
    stale_checkpoint(folder / "ck-stale-cli")
    try:
        import onnx
        model = onnx_mlp()
        blob = model.SerializeToString()
        (folder / "trunc.onnx").write_bytes(blob[:len(blob) // 2])
        onnx.save(onnx_sparse_index(), folder / "sparse_idx.onnx")
        onnx.save(onnx_alpha0(), folder / "alpha0.onnx")
        del onnx
    except pytest.skip.Exception:
        (folder / "trunc.onnx").write_bytes(b"\x08")
    try:
        import torch
        torch.save(Evil(str(folder / "pwned")), folder / "evil.pt")
    except ImportError:
        pass
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits_mlp):
    return prepare(tmp_path_factory.mktemp("bad"), digits_mlp)


@pytest.fixture(scope="module")
def ctx(files, digits_mlp):
    return Ctx(files, digits_mlp)


def check_api(row, c):
    """None when the row raises its exception naming its names; otherwise what happened."""
    _, exc, names, call = row
    try:
        call(c)
    except exc as e:
        text = str(e)
        missing = [n for n in names if n not in text]
        return f"unclear: {type(e).__name__}: {text!r} does not name {missing}" if missing else None
    except pytest.skip.Exception:
        raise
    except Exception as e:
        return f"unclear: {type(e).__name__} (expected {exc.__name__}): {e}"
    return "silent: no error"


def check_cli(row, folder, timeout=60):
    """None when the command exits 2 with one line on stderr naming the row's names."""
    _, names, make = row
    argv = make(lambda name: str(folder / name))
    try:
        out = subprocess.run([sys.executable, "-m", "nettrim.cli", *argv], capture_output=True, text=True,
                             cwd=folder, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "crash: hang"
    lines = out.stderr.strip().splitlines()
    if out.returncode < 0 or "Traceback" in out.stderr:
        return f"crash: exit {out.returncode}: {out.stderr.strip()[-300:]}"
    if out.returncode == 0:
        return "silent: exit 0"
    missing = [n for n in names if n not in out.stderr]
    if out.returncode != 2 or len(lines) != 1 or missing:
        return f"unclear: exit {out.returncode}, {len(lines)} lines, missing {missing}: {out.stderr.strip()[-300:]}"
    return None


@pytest.mark.parametrize("row", API, ids=[r[0] for r in API])
def test_api_bad_input(row, ctx):
    problem = check_api(row, ctx)
    assert problem is None, problem


@pytest.mark.parametrize("row", CLI, ids=[r[0] for r in CLI])
def test_cli_bad_input(row, files):
    if row[0].endswith("untrusted"):
        pytest.importorskip("torch")
    problem = check_cli(row, files)
    assert problem is None, problem
    assert not (files / "pwned").exists(), "the pickle's payload ran"
    assert not (files / "out.npz").exists() and not list(files.glob(".nettrim-*.part"))


def test_table_is_large_enough():
    assert len(API) + len(CLI) >= 350
    assert len({r[0] for r in API}) == len(API) and len({r[0] for r in CLI}) == len(CLI)
