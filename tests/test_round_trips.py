"""Writers put the pruned weights back where they came from, on the cases that used to go wrong
silently: an initializer two nodes share, Gemm's alpha and beta, a broadcast bias, a batch
norm after a MatMul or without affine parameters, integer weights in a plain .npz, and
sparse .npz files whose CSR arrays point outside the matrix.  Every written model is run by
its own framework and must give the pruned network's outputs."""
import warnings

import nettrim
import numpy as np
import pytest
from nettrim import adapters
from nettrim.network import Network

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from nettrim.adapters.onnx import run_onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def onnx_model(nodes, inits, n_in, n_out):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_out])],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def pruned_copy(net, seed=0, keep=0.5):
    """``net`` with about half of every layer's weights zeroed and its biases changed: what a
    pruning could return."""
    rng = np.random.default_rng(seed)
    out = net.copy()
    for layer in out.layers:
        w = np.where(rng.random(layer.weight.shape) < keep, layer.weight, 0).astype(np.float32)
        layer.set_groups([w if w.ndim == 2 else w.reshape(layer.group_matrix(0)[0].shape)],
                         [(layer.bias + rng.standard_normal(layer.bias.shape)).astype(np.float32)])
    return out


def assert_written_reproduces(net, provenance, X, tmp_path, name="m.onnx"):
    pruned = pruned_copy(net)
    path = tmp_path / name
    adapters.write(pruned, provenance, path)
    np.testing.assert_allclose(run_onnx(str(path), X), pruned.forward(X), rtol=1e-4, atol=1e-4)
    back, _ = adapters.read(str(path))
    for a, b in zip(back.layers, pruned.layers):
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-5, atol=1e-6)


def test_two_gemms_sharing_one_initializer_keep_their_own_weights(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 4))
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w0", "b1"], ["y"], name="fc2")]
    model = onnx_model(nodes, {"w0": W, "b0": rng.standard_normal(4), "b1": rng.standard_normal(4)}, 4, 4)
    net, provenance = adapters.read(model)
    X = rng.standard_normal((20, 4)).astype(np.float32)
    np.testing.assert_allclose(net.forward(X), run_onnx(model, X), rtol=1e-5, atol=1e-5)
    assert_written_reproduces(net, provenance, X, tmp_path)


@pytest.mark.parametrize("alpha, beta, trans_b", [(1.0, 0.0, 0), (2.0, 0.5, 1), (0.5, 1.0, 1)])
def test_gemm_alpha_beta_and_trans_b(tmp_path, alpha, beta, trans_b):
    rng = np.random.default_rng(1)
    W1 = rng.standard_normal((5, 6) if trans_b else (6, 5))
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", alpha=alpha, beta=beta, transB=trans_b),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2")]
    model = onnx_model(nodes, {"w1": W1, "b1": rng.standard_normal(5), "w2": rng.standard_normal((5, 3)),
                               "b2": rng.standard_normal(3)}, 6, 3)
    net, provenance = adapters.read(model)
    X = rng.standard_normal((20, 6)).astype(np.float32)
    np.testing.assert_allclose(net.forward(X), run_onnx(model, X), rtol=1e-5, atol=1e-5)
    assert_written_reproduces(net, provenance, X, tmp_path)


def test_a_one_element_bias_is_written_as_one_per_output(tmp_path):
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2")]
    model = onnx_model(nodes, {"w1": rng.standard_normal((4, 5)), "b1": [0.3], "w2": rng.standard_normal((5, 2)),
                               "b2": rng.standard_normal(2)}, 4, 2)
    net, provenance = adapters.read(model)
    assert_written_reproduces(net, provenance, rng.standard_normal((20, 4)).astype(np.float32), tmp_path)


def test_matmul_then_batch_norm_writes_its_bias_into_the_batch_norm(tmp_path):
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("BatchNormalization", ["h", "s", "t", "m", "v"], ["hb"], name="bn"),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2")]
    model = onnx_model(nodes, {"w1": rng.standard_normal((4, 5)), "s": rng.random(5) + 0.5,
                               "t": rng.standard_normal(5), "m": rng.standard_normal(5), "v": rng.random(5) + 0.5,
                               "w2": rng.standard_normal((5, 2)), "b2": rng.standard_normal(2)}, 4, 2)
    net, provenance = adapters.read(model)
    X = rng.standard_normal((20, 4)).astype(np.float32)
    np.testing.assert_allclose(net.forward(X), run_onnx(model, X), rtol=1e-4, atol=1e-4)
    pruned = pruned_copy(net)
    adapters.write(pruned, provenance, tmp_path / "bn.onnx")
    np.testing.assert_allclose(run_onnx(str(tmp_path / "bn.onnx"), X), pruned.forward(X), rtol=1e-4, atol=1e-4)


def test_torch_conv_without_bias_and_batch_norm_without_affine(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3, affine=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model.eval()
    net, provenance = adapters.read(model, input_shape=(1, 6, 6))
    pruned = pruned_copy(net)
    written = adapters.write(pruned, provenance)
    X = np.random.default_rng(4).standard_normal((10, 1, 6, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(written(torch.tensor(X)).numpy(), pruned.forward(X), rtol=1e-4, atol=1e-4)


def test_integer_weights_in_a_plain_npz_are_written_as_floats_and_said(tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "m.npz", W0=rng.integers(-3, 4, (4, 5)), b0=np.zeros(5, int), W1=rng.integers(-3, 4, (5, 2)),
             b1=np.zeros(2, int))
    net, provenance = adapters.read(str(tmp_path / "m.npz"))
    pruned = pruned_copy(net)
    with pytest.warns(UserWarning, match="held integers .* written as float32"):
        adapters.write(pruned, provenance, tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as z:
        assert all(z[k].dtype == np.float32 for k in ("W0", "b0", "W1", "b1"))
    back = Network.load_npz(tmp_path / "out.npz")
    X = rng.standard_normal((8, 4)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(X), pruned.forward(X))
    assert back.nnz() == pruned.nnz()


def sparse_npz(tmp_path, indices, indptr=None, rows=(4, 3)):
    """A sparse nettrim .npz with a 4x3 first layer given by CSR arrays."""
    net = nettrim.from_arrays([np.ones((4, 3)), np.ones((3, 2))], [np.zeros(3), np.zeros(2)])
    net.save_npz(tmp_path / "s.npz", sparse=True)
    with np.load(tmp_path / "s.npz") as z:
        arrays = dict(z)
    for key in [k for k in arrays if k.startswith("0.")]:
        del arrays[key]
    n = len(indices)
    arrays.update({"0.data": np.ones(n, np.float32), "0.indices": np.asarray(indices, np.int64),
                   "0.indptr": np.asarray(indptr if indptr is not None else [0, n, n, n, n], np.int64),
                   "0.rows": np.asarray(rows), "0.bias": np.zeros(3, np.float32)})
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("indices, indptr, rows, says", [
    ([5], None, (4, 3), "column index 5 is outside"),
    ([10 ** 8], None, (4, 3), "column index 100000000 is outside"),
    ([2, 1], None, (4, 3), "sorted"),
    ([0], [0, 1, 0, 1, 1], (4, 3), "row pointers"),
    ([0], None, (200000, 200000), "needs .* MiB dense"),
])
def test_csr_arrays_are_checked_before_anything_is_allocated(tmp_path, indices, indptr, rows, says):
    path = sparse_npz(tmp_path, indices, indptr, rows)
    with pytest.raises(nettrim.InvalidArgument, match=says) as e:
        Network.load_npz(path)
    assert str(path) in str(e.value) and "steps[0]" in str(e.value)


def test_a_valid_sparse_npz_still_reads(tmp_path):
    rng = np.random.default_rng(6)
    net = nettrim.from_arrays([np.where(rng.random((40, 30)) < 0.1, rng.standard_normal((40, 30)), 0),
                               rng.standard_normal((30, 2))], [rng.standard_normal(30), np.zeros(2)])
    net.save_npz(tmp_path / "ok.npz", sparse=True)
    with np.load(tmp_path / "ok.npz") as z:
        assert "0.indices" in z.files
    back = Network.load_npz(tmp_path / "ok.npz")
    for a, b in zip(back.layers, net.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Network.load_npz(tmp_path / "ok.npz")


def test_a_sparse_state_dict_with_a_stray_column_index_names_the_file(tmp_path):
    torch = pytest.importorskip("torch")
    from nettrim.adapters.torch import SPARSE_FORMAT, load_sparse, save_sparse
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.mul_(torch.rand(4, 6) < 0.3)
    save_sparse(model, tmp_path / "ok.pt")
    restored = load_sparse(tmp_path / "ok.pt", model)            # (a good file reads back)
    assert torch.equal(restored[0].weight, model[0].weight)
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    name = next(k for k, t in payload["state_dict"].items() if t.layout == torch.sparse_csr)
    t = payload["state_dict"][name]
    cols = t.col_indices().clone()
    cols[0] = 10 ** 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload["state_dict"][name] = torch.sparse_csr_tensor(t.crow_indices(), cols, t.values(), t.shape,
                                                              check_invariants=False)
    assert payload["format"] == SPARSE_FORMAT
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(nettrim.InvalidArgument, match=r"bad\.pt: .*column index 1000000 is outside"):
        load_sparse(tmp_path / "bad.pt", model)


def test_an_onnx_input_too_large_to_check_names_the_file(tmp_path):
    """(A model that declares one sample as 1 x 30000 x 30000: checking nettrim's reading of it on
    a few samples would need 115 GB; said before anything is allocated.)"""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "k"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[29998, 29998]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 30000, 30000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(rng.standard_normal((1, 1, 3, 3)).astype(np.float32), "k"),
                               numpy_helper.from_array(rng.standard_normal((1, 2)).astype(np.float32), "w"),
                               numpy_helper.from_array(np.zeros(2, np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "huge.onnx"))
    with pytest.raises(nettrim.errors.ModelFileError, match=r"huge\.onnx: .*too large: checking the model"):
        adapters.read(str(tmp_path / "huge.onnx"))
