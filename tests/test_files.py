"""Files as a user meets them (issues 11 and 19): modes, layouts, compact (sparse) models in their
own formats, pickles that would run code, reports that match their model, memory refused early."""
import json
import os
import stat
import subprocess
import sys
import warnings

import nettrim
import numpy as np
import pytest
from nettrim.adapters.sklearn import from_sklearn
from nettrim.io import atomic_write
from nettrim.network import Network


def nettrim_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nettrim.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


# --- modes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
        nettrim.from_arrays([np.ones((2, 2))], [np.zeros(2)], last_linear=False).save_npz(tmp_path / "n.npz")
    finally:
        os.umask(old)
    for name in ("a.bin", "n.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_write_errors_name_the_file_not_the_temporary(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        atomic_write(tmp_path / "nodir" / "x.npz", lambda f: f.write(b"x"))
    with pytest.raises(IsADirectoryError) as folder:
        atomic_write(tmp_path, lambda f: f.write(b"x"))
    for e in (missing, folder):
        assert ".part" not in str(e.value) and str(tmp_path) in str(e.value)


# --- .npz layouts ----------------------------------------------------------------------------------
def test_plain_npz_keeps_its_keys_orientation_and_dtypes(digits_mlp, tmp_path):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    arrays = {f"W{i}": W for i, W in enumerate(clf.coefs_)} | {f"b{i}": b for i, b in enumerate(clf.intercepts_)}
    np.savez(tmp_path / "plain.npz", **arrays)                     # float64, inputs x outputs
    np.save(tmp_path / "calib.npy", Xtr)
    out = nettrim_cli("prune", str(tmp_path / "plain.npz"), "--calib", str(tmp_path / "calib.npy"),
                      "-o", str(tmp_path / "pruned.npz"), "--eps-rel", "0.05", "--quiet")
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "pruned.npz") as z:
        assert sorted(z.files) == sorted(arrays)
        for key, value in arrays.items():
            assert z[key].shape == value.shape and z[key].dtype == value.dtype
        pruned = {k: z[k] for k in z.files}
    # Read as the user would: relu(x @ W + b), the last layer linear.
    h = Xte.astype(np.float64)
    for i in range(len(clf.coefs_)):
        h = h @ pruned[f"W{i}"] + pruned[f"b{i}"]
        h = np.maximum(h, 0) if i < len(clf.coefs_) - 1 else h
    assert np.mean(np.argmax(h, 1) == yte) >= 0.95          # measured 0.991
    assert sum(np.count_nonzero(pruned[f"W{i}"]) for i in range(3)) < 0.8 * sum(W.size for W in clf.coefs_)


def test_plain_npz_relu_flags_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    W0, W1 = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    np.savez(tmp_path / "p.npz", W0=W0, b0=np.zeros(3), relu0=True, W1=W1, b1=np.ones(2), relu1=True)
    from nettrim.adapters import read, write
    net, provenance = read(tmp_path / "p.npz")
    assert [layer.relu for layer in net.layers] == [True, True]
    write(net, provenance, tmp_path / "q.npz")
    with np.load(tmp_path / "q.npz") as z:
        assert sorted(z.files) == ["W0", "W1", "b0", "b1", "relu0", "relu1"]
        assert z["W0"].dtype == np.float64 and z["relu1"]
        np.testing.assert_array_equal(z["W0"], W0.astype(np.float32))     # nettrim computes in float32


def test_nettrim_layout_names_its_orientation_and_reads_old_files(tmp_path):
    net = nettrim.from_arrays([np.arange(6.0).reshape(2, 3), np.ones((3, 1))], [np.zeros(3), np.zeros(1)])
    net.save_npz(tmp_path / "n.npz")
    with np.load(tmp_path / "n.npz") as z:
        assert "0.W" in z.files and "0.weight" not in z.files                 # Dense: inputs x outputs
        np.testing.assert_array_equal(z["0.W"], net.layers[0].weight)
        old = {k.replace(".W", ".weight"): z[k] for k in z.files}            # what version 1 wrote
    np.savez(tmp_path / "old.npz", **old)
    np.testing.assert_array_equal(Network.load_npz(tmp_path / "old.npz").layers[0].weight, net.layers[0].weight)


# --- compact models ----------------------------------------------------------------------------------
def onnx_layers(shapes, densities, opset=17):
    """An MLP in ONNX whose weights have the given shapes and fractions of nonzeros."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    nodes, init, current = [], [], "x"
    for i, ((n_in, n_out), d) in enumerate(zip(shapes, densities)):
        W = (rng.standard_normal((n_in, n_out)) * (rng.random((n_in, n_out)) < d)).astype(np.float32)
        init += [numpy_helper.from_array(W, f"w{i}"), numpy_helper.from_array(np.full(n_out, 0.1, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"g{i}"], name=f"fc{i}"))
        current = f"g{i}"
        if i < len(shapes) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", shapes[0][0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", shapes[-1][1]])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def test_compact_onnx_picks_the_smallest_form_and_runs(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    from nettrim.adapters.onnx import load_onnx, run_onnx, save_onnx
    # 1% kept: a sparse initializer; 30% kept: bit mask + values; all kept: dense.
    model = onnx_layers([(300, 100), (100, 80), (80, 10)], [0.01, 0.3, 1.0])
    net = load_onnx(model)
    out = save_onnx(net, model, tmp_path / "c.onnx", sparse=True)
    onnx.checker.check_model(out)
    assert [t.values.name for t in out.graph.sparse_initializer] == ["w0"]
    assert {n.output[0] for n in out.graph.node if n.name.startswith("nettrim_unpack/")} >= {"w1"}
    assert "w2" in {t.name for t in out.graph.initializer}
    dense = save_onnx(net, model, tmp_path / "d.onnx")
    assert (tmp_path / "c.onnx").stat().st_size < 0.45 * (tmp_path / "d.onnx").stat().st_size
    X = np.random.default_rng(1).standard_normal((16, 300)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(str(tmp_path / "c.onnx"), X), run_onnx(dense, X), rtol=1e-6, atol=1e-6)
    back = load_onnx(str(tmp_path / "c.onnx"))                    # nettrim reads its own compact files
    for a, b in zip(back.layers, net.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
    save_onnx(back, str(tmp_path / "c.onnx"), tmp_path / "again.onnx", sparse=True)   # and writes them again


def test_compact_onnx_before_opset_11_uses_no_unpacking_nodes(tmp_path):
    pytest.importorskip("onnxruntime")
    from nettrim.adapters.onnx import load_onnx, run_onnx, save_onnx
    model = onnx_layers([(300, 100), (100, 10)], [0.3, 1.0], opset=10)
    out = save_onnx(load_onnx(model), model, tmp_path / "c.onnx", sparse=True)
    assert not [n for n in out.graph.node if n.name.startswith("nettrim_unpack/")]
    X = np.random.default_rng(1).standard_normal((4, 300)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(out, X), run_onnx(model, X), rtol=1e-6, atol=1e-6)


def test_pruned_cnn_in_onnx_is_smaller_and_runs(digits_cnn, tmp_path):
    """The digits CNN exported by torch, pruned, written with and without --sparse."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from nettrim.adapters.onnx import run_onnx
    model, Xtr, ytr, Xte, yte = digits_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.tensor(Xtr[:2]), str(tmp_path / "cnn.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    np.save(tmp_path / "calib.npy", Xtr[:600])
    sizes = {}
    for name, extra in (("dense", ()), ("sparse", ("--sparse",))):
        out = nettrim_cli("prune", str(tmp_path / "cnn.onnx"), "--calib", str(tmp_path / "calib.npy"), "--scheme",
                          "parallel", "--sparsity", "0.9", "--scope", "layer", "--max-samples", "1500",
                          "-o", str(tmp_path / f"{name}.onnx"), *extra)
        assert out.returncode == 0, out.stderr
        assert "model file:" in out.stdout and "KiB written" in out.stdout
        sizes[name] = json.loads((tmp_path / f"{name}.json").read_text())["files"]
    assert sizes["dense"]["output_bytes"] > 0.9 * sizes["dense"]["input_bytes"]
    assert sizes["sparse"]["output_bytes"] < 0.35 * sizes["dense"]["output_bytes"]   # measured 0.22: 56220 to 12233 B
    np.testing.assert_allclose(run_onnx(str(tmp_path / "sparse.onnx"), Xte), run_onnx(str(tmp_path / "dense.onnx"), Xte),
                               rtol=1e-5, atol=1e-5)


def test_sparse_state_dict_round_trip(digits_cnn, tmp_path):
    torch = pytest.importorskip("torch")
    from nettrim.adapters import read
    from nettrim.adapters.torch import from_torch, load_sparse, save_sparse, to_torch
    model, Xtr, ytr, Xte, yte = digits_cnn
    net = from_torch(model, (1, 8, 8))
    pruned, _ = nettrim.prune_network(net, Xtr[:400], scheme="parallel", sparsity=0.8, scope="layer",
                                      max_samples=1000, method="magnitude")
    small = to_torch(pruned, model)
    save_sparse(small, tmp_path / "s.pt")
    torch.save(small.state_dict(), tmp_path / "d.pt")
    assert (tmp_path / "s.pt").stat().st_size < 0.6 * (tmp_path / "d.pt").stat().st_size
    restored = load_sparse(tmp_path / "s.pt", model)
    with torch.no_grad():
        np.testing.assert_array_equal(restored(torch.tensor(Xte)).numpy(), small(torch.tensor(Xte)).numpy())
    np.testing.assert_allclose(restored(torch.tensor(Xte)).detach().numpy(), pruned.forward(Xte), rtol=1e-4, atol=1e-4)
    state = load_sparse(tmp_path / "s.pt")
    assert all(not t.is_sparse and t.layout == torch.strided for t in state.values())
    with pytest.raises(ValueError, match="load_sparse"):
        read(tmp_path / "s.pt")


def test_cli_sparse_pt(digits_cnn, tmp_path):
    torch = pytest.importorskip("torch")
    from nettrim.adapters.torch import load_sparse
    model, Xtr, ytr, Xte, yte = digits_cnn
    save_script(torch, model, tmp_path / "cnn.pt")                          # TorchScript: no trust needed
    np.save(tmp_path / "calib.npy", Xtr[:400])
    out = nettrim_cli("prune", str(tmp_path / "cnn.pt"), "--calib", str(tmp_path / "calib.npy"), "--scheme", "parallel",
                      "--eps-rel", "0.1", "--max-samples", "1000", "-o", str(tmp_path / "small.pt"), "--sparse")
    assert out.returncode == 0, out.stderr
    assert "load_sparse" in out.stdout
    files = json.loads((tmp_path / "small.json").read_text())["files"]
    assert files["output_bytes"] < files["input_bytes"]
    restored = load_sparse(tmp_path / "small.pt", model)
    with torch.no_grad():
        acc = float((restored(torch.tensor(Xte)).argmax(1).numpy() == yte).mean())
    assert acc >= 0.95


def save_script(torch, model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torch 2.13 deprecates torch.jit.script
        torch.jit.save(torch.jit.script(model), path)


# --- pickles ---------------------------------------------------------------------------------------
class Payload:
    """Unpickling this writes a file: what a crafted .pt could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "the payload ran"))


def test_a_pickle_runs_nothing_without_trust(tmp_path):
    torch = pytest.importorskip("torch")
    from nettrim.adapters import read
    from nettrim.errors import ModelFileError
    marker = tmp_path / "pwned"
    torch.save(Payload(marker), tmp_path / "evil.pt")
    with pytest.raises(ModelFileError) as e:
        read(tmp_path / "evil.pt")
    # The message says what is wrong and how to go on: the risk, the opt-in, the safer formats.
    for words in ("runs whatever code", "--trust-model", "trust=True", "TorchScript"):
        assert words in str(e.value)
    assert not marker.exists()
    out = nettrim_cli("inspect", str(tmp_path / "evil.pt"))
    assert out.returncode == 2 and "--trust-model" in out.stderr and not marker.exists()
    # With the opt-in the pickle is unpickled, and its payload runs: the risk the flag accepts.
    with pytest.raises(ModelFileError, match="expected a torch.nn.Module"):
        read(tmp_path / "evil.pt", trust=True)
    assert marker.read_text() == "the payload ran"


def test_trust_is_needed_for_pickled_modules_only(digits_cnn, tmp_path):
    torch = pytest.importorskip("torch")
    from nettrim.adapters import read
    from nettrim.errors import ModelFileError
    model = digits_cnn[0]
    torch.save(model, tmp_path / "module.pt")
    with pytest.raises(ModelFileError, match="trust"):
        read(tmp_path / "module.pt", input_shape=(1, 8, 8))
    net, provenance = read(tmp_path / "module.pt", input_shape=(1, 8, 8), trust=True)
    assert net.nnz() > 0 and not provenance.details["scripted"]
    save_script(torch, model, tmp_path / "script.pt")
    assert read(tmp_path / "script.pt", input_shape=(1, 8, 8))[1].details["scripted"]
    assert "TorchScript and ONNX models need no such trust" in " ".join(nettrim_cli("prune", "--help").stdout.split())


def test_float64_torch_module_is_read(digits_cnn):
    pytest.importorskip("torch")
    import copy

    from nettrim.adapters.torch import from_torch, to_torch
    model, Xtr, ytr, Xte, yte = digits_cnn
    double = copy.deepcopy(model).double()
    net = from_torch(double, (1, 8, 8))
    np.testing.assert_allclose(net.forward(Xte), from_torch(model, (1, 8, 8)).forward(Xte), rtol=1e-5, atol=1e-5)
    assert next(to_torch(net, double).parameters()).dtype == next(double.parameters()).dtype


# --- reports -----------------------------------------------------------------------------------------
def test_report_records_the_model_it_describes(digits_mlp, tmp_path):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr[:300])
    out = nettrim_cli("prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"),
                      "-o", str(tmp_path / "p.npz"), "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "p.json").read_text())
    from nettrim.io import sha256_file
    assert report["output_sha256"] == sha256_file(tmp_path / "p.npz")
    shown = nettrim_cli("report", str(tmp_path / "p.json"))
    assert shown.returncode == 0 and shown.stderr == ""
    from_sklearn(clf).save_npz(tmp_path / "p.npz")               # another run's model lands on the same name
    shown = nettrim_cli("report", str(tmp_path / "p.json"))
    assert shown.returncode == 0 and "is not the model this report describes" in shown.stderr


def test_force_allows_overwriting_the_input(digits_mlp, tmp_path):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr[:300])
    before = (tmp_path / "model.npz").read_bytes()
    args = ["prune", "model.npz", "--calib", "calib.npy", "-o", "./model.npz", "--quiet"]
    refused = nettrim_cli(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (tmp_path / "model.npz").read_bytes() == before
    forced = nettrim_cli(*args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert Network.load_npz(tmp_path / "model.npz").nnz() < from_sklearn(clf).nnz()


def test_prune_report_prints_as_the_cli_table(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    _, report = nettrim.prune_network(from_sklearn(clf), Xtr[:300], eps_rel=0.1)
    text = str(report)
    assert text == report.summary()
    assert text.splitlines()[0].startswith("Net-Trim, cascade scheme, 300 calibration samples:")
    assert "dense0" in text and "total" in text.splitlines()[-1] and "rel. error" in text


def test_flag_help_shows_no_default_of_its_destination():
    out = nettrim_cli("prune", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "--no-refit nettrim: keep the l1 solution's values (the same as --refit none)" in text


# --- memory ------------------------------------------------------------------------------------------
def test_memory_is_estimated_from_shapes_before_any_work(digits_mlp, monkeypatch, tmp_path):
    from nettrim import _core
    clf, Xtr, *_ = digits_mlp
    net = from_sklearn(clf)
    est = net.memory_estimate(len(Xtr))
    assert [(r["name"], r["P"], r["N"], r["M"]) for r in est["layers"]] == \
        [("dense0", 1347, 65, 128), ("dense1", 1347, 129, 64), ("dense2", 1347, 65, 10)]
    assert 1 << 20 < est["total"] < 64 << 20
    monkeypatch.setattr(_core, "available_memory", lambda: 2 << 20)
    with pytest.raises(MemoryError, match=r"dense\d .*use fewer calibration samples"):
        nettrim.prune_network(net, Xtr, checkpoint=tmp_path / "ck")
    assert not (tmp_path / "ck").exists()


def test_conv_memory_names_max_samples(digits_cnn, monkeypatch):
    pytest.importorskip("torch")
    from nettrim import _core
    from nettrim.adapters.torch import from_torch
    model, Xtr, *_ = digits_cnn
    net = from_torch(model, (1, 8, 8))
    rows = net.memory_estimate(len(Xtr), max_samples=None)["layers"]
    assert [r["P"] for r in rows] == [len(Xtr) * 64, len(Xtr) * 16, len(Xtr), len(Xtr)]
    assert [r["P"] for r in net.memory_estimate(len(Xtr), max_samples=3000)["layers"]][:2] == [3000, 3000]
    monkeypatch.setattr(_core, "available_memory", lambda: 20 << 20)
    with pytest.raises(MemoryError, match=r"layer \d+ \(P=\d+ rows .*lower max_samples \(now None"):
        nettrim.prune_network(net, Xtr, max_samples=None)


def test_damaged_checkpoint_layer_is_one_line(digits_mlp, tmp_path):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr[:200])
    args = ["prune", "model.npz", "--calib", "calib.npy", "-o", "p.npz", "--checkpoint", "ck", "--quiet"]
    assert nettrim_cli(*args, cwd=tmp_path).returncode == 0
    layer = next((tmp_path / "ck").glob("layer1-*.npz"))
    layer.write_bytes(layer.read_bytes()[:100])
    out = nettrim_cli(*args, cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "--checkpoint" in out.stderr and layer.name in out.stderr and "delete it" in out.stderr


# --- the adapter protocol ----------------------------------------------------------------------------
def test_one_adapter_protocol_for_every_format(digits_mlp, digits_cnn, tmp_path):
    # read -> (Network, provenance), write(network, provenance, destination): the same for a
    # scikit-learn estimator, an .npz, a torch module and an ONNX model; nothing is attached to
    # the Network (a network built by hand and one read from a model have the same attributes).
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from nettrim.adapters import Provenance, read, write
    from nettrim.adapters.onnx import run_onnx
    from nettrim.adapters.sklearn import from_sklearn
    clf, Xtr, ytr, Xte, yte = digits_mlp
    model, Ctr, _, Cte, _ = digits_cnn
    plain = nettrim.from_arrays([np.ones((3, 2))], [np.zeros(2)], last_linear=False)
    from_sklearn(clf).save_npz(tmp_path / "m.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.tensor(Cte[:2]), tmp_path / "m.onnx", dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    cases = [(clf, Xtr, Xte, None, None), (str(tmp_path / "m.npz"), Xtr, Xte, "o.npz", None),
             (model, Ctr, Cte, "o.pt", (1, 8, 8)), (str(tmp_path / "m.onnx"), Ctr, Cte, "o.onnx", None)]
    for source, calib, test, filename, shape in cases:
        net, provenance = read(source, input_shape=shape)
        assert isinstance(provenance, Provenance)
        assert set(vars(net)) == set(vars(plain)), (provenance.format, set(vars(net)) ^ set(vars(plain)))
        pruned, _ = nettrim.prune_network(net, calib[:300], method="magnitude", sparsity=0.7)
        out = None if provenance.format == "npz" else write(pruned, provenance)   # the framework object
        if provenance.format == "sklearn":
            np.testing.assert_allclose(out.predict_proba(test), _softmax(pruned.forward(test)), atol=1e-5)
        elif provenance.format == "torch":
            with torch.no_grad():
                np.testing.assert_allclose(out(torch.tensor(test)).numpy(), pruned.forward(test), atol=1e-4)
        elif provenance.format == "onnx":
            np.testing.assert_allclose(run_onnx(out, test), pruned.forward(test), atol=1e-4)
        if filename:                                       # and a file of the same format
            write(pruned, provenance, tmp_path / filename)
            again, _ = read(tmp_path / filename, input_shape=shape, trust=True)
            np.testing.assert_allclose(again.forward(test), pruned.forward(test), atol=1e-4)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
