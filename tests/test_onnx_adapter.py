"""ONNX models: read with onnx, checked against onnxruntime, pruned, written back and run by onnxruntime."""
import nettrim
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from nettrim.adapters import UnsupportedModelError  # noqa: E402
from nettrim.adapters.onnx import load_onnx, run_onnx, save_onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def build_model(nodes, initializers, input_shape, n_out, opset=17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"] + list(input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_out])],
        [numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
         for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def digits_cnn_onnx(rng, data):
    """A CNN in ONNX with a batch norm, MatMul + Add and Gemm(transB): weights fitted by a few
    steps of least squares on digits so that pruning has real structure to keep."""
    init = {
        "w1": rng.standard_normal((8, 1, 3, 3)) * 0.5, "b1": rng.standard_normal(8) * 0.1,
        "g": rng.uniform(0.5, 1.5, 8), "beta": rng.standard_normal(8) * 0.1,
        "mu": rng.standard_normal(8) * 0.1, "var": rng.uniform(0.5, 2, 8),
        "w2": rng.standard_normal((8 * 4 * 4, 32)) / 11, "b2": rng.standard_normal(32) * 0.1,
        "w3": rng.standard_normal((10, 32)) / 6, "b3": np.zeros(10),
        "shape": np.array([0, -1], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mu", "var"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p1", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["m2"], name="fc1"),
        helper.make_node("Add", ["m2", "b2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("Dropout", ["r2"], ["d2"]),
        helper.make_node("Gemm", ["d2", "w3", "b3"], ["y"], transB=1, name="fc2"),
    ]
    return build_model(nodes, init, (1, 8, 8), 10), data


def test_read_prune_write(tmp_path, digits_split):
    model, (Xtr, ytr, Xte, yte) = digits_cnn_onnx(np.random.default_rng(0), digits_split)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    net = load_onnx(str(path))
    assert [type(s).__name__ for s in net.steps] == ["Conv2d", "MaxPool2d", "Flatten", "Dense", "Dense"]
    assert [layer.name for layer in net.layers] == ["conv", "fc1", "fc2"]
    np.testing.assert_allclose(net.forward(Xte), run_onnx(str(path), Xte), rtol=1e-4, atol=1e-4)

    for scheme in ("parallel", "cascade"):
        pruned, report = nettrim.prune_network(net, Xtr, scheme=scheme, eps_rel=0.1, max_samples=2000)
        assert pruned.nnz() < 0.8 * net.nnz()
        out = tmp_path / f"pruned-{scheme}.onnx"
        save_onnx(pruned, str(path), str(out))
        onnx.checker.check_model(onnx.load(str(out)))
        # onnxruntime runs the written file and gives the pruned numpy network's outputs.
        np.testing.assert_allclose(run_onnx(str(out), Xte), pruned.forward(Xte), rtol=1e-4, atol=1e-4)
        reread = load_onnx(str(out))
        assert reread.nnz() == pruned.nnz()
    assert not list(tmp_path.glob("*.part"))


def test_exported_from_torch(digits_cnn, tmp_path):
    torch = pytest.importorskip("torch")
    model, Xtr, ytr, Xte, yte = digits_cnn
    path = tmp_path / "cnn.onnx"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, torch.tensor(Xtr[:2]), str(path), dynamo=False, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}})
        except Exception as e:  # the legacy exporter may be missing in a future torch
            pytest.skip(f"torch.onnx.export unavailable: {e}")
    net = load_onnx(str(path))
    np.testing.assert_allclose(net.forward(Xte), run_onnx(str(path), Xte), rtol=1e-4, atol=1e-4)


def test_unsupported_nodes_are_named():
    rng = np.random.default_rng(0)
    init = {"w": rng.standard_normal((4, 3)), "w2": rng.standard_normal((3, 2))}
    init = {k: v.astype(np.float32) for k, v in init.items()}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["t"], name="act"),
             helper.make_node("MatMul", ["t", "w2"], ["y"])]
    with pytest.raises(UnsupportedModelError, match="act: unsupported ONNX operation Tanh"):
        load_onnx(build_model(nodes, init, (4,), 2))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Add", ["r", "h"], ["s"], name="skip"), helper.make_node("MatMul", ["s", "w2"], ["y"])]
    with pytest.raises(UnsupportedModelError, match="skip"):
        load_onnx(build_model(nodes, init, (4,), 2))
