"""What a new user tripped over (issue "What a new user tripped over, part 2"): their own torch
module, a pickled module whose class is not importable, --quiet, --max-iter, a closed pipe,
the progress line's width, a TorchScript model calling F.relu."""
import io
import json
import os
import subprocess
import sys
import warnings

import nettrim
import numpy as np
import pytest
from nettrim.progress import Progress
from test_cli import digits_prune_args, nettrim_cli

torch = pytest.importorskip("torch")
F = torch.nn.functional


class Net(torch.nn.Module):
    """A module of the user's own class (read by nettrim.adapters.read as any torch module)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))

    def forward(self, x):
        return self.body(x)


def test_a_module_of_the_users_own_class_is_read():
    torch.manual_seed(0)
    model = Net().eval()
    net, provenance = nettrim.adapters.read(model, input_shape=(6,))
    X = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(X), model(torch.tensor(X)).numpy(), rtol=1e-5, atol=1e-5)
    assert provenance.format == "torch"


def test_a_pickled_module_whose_class_is_gone_says_what_to_do(tmp_path):
    code = ("import torch\n"
            "class Gone(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__(); self.fc = torch.nn.Linear(3, 2)\n"
            "    def forward(self, x): return torch.relu(self.fc(x))\n"
            f"torch.save(Gone(), {str(tmp_path / 'gone.pt')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.save(tmp_path / "calib.npy", np.zeros((5, 3), np.float32))
    out = nettrim_cli("prune", str(tmp_path / "gone.pt"), "--calib", str(tmp_path / "calib.npy"), "-o",
                      str(tmp_path / "out.pt"), "--trust-model")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "gone.pt" in out.stderr and "TorchScript" in out.stderr and "ONNX" in out.stderr


def test_quiet_means_quiet_and_the_limit_options_exist(digits_mlp, tmp_path):
    base = digits_prune_args(digits_mlp, tmp_path, 300) + ["--threads", "1", "--max-iter", "3"]
    base.remove("--quiet")
    loud = nettrim_cli(*base, "-o", str(tmp_path / "a.npz"))
    assert loud.returncode == 0, loud.stderr
    warned = [line for line in loud.stderr.splitlines() if line.startswith("nettrim: warning:")]
    assert warned and any("--max-iter" in line for line in warned), loud.stderr
    quiet = nettrim_cli(*base, "-o", str(tmp_path / "b.npz"), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == "", quiet.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert max(r["iterations"] for r in report["layers"]) <= 3 * max(r["solves"] for r in report["layers"])


def test_a_reader_that_went_away_is_no_error(digits_mlp, tmp_path):
    base = digits_prune_args(digits_mlp, tmp_path, 200) + ["--threads", "1"]
    assert nettrim_cli(*base, "-o", str(tmp_path / "p.npz")).returncode == 0
    read, write = os.pipe()
    os.close(read)                         # the reader is gone before anything is written
    try:
        out = subprocess.run([sys.executable, "-m", "nettrim.cli", "report", str(tmp_path / "p.json")],
                             stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert out.returncode == 0 and out.stderr == "", out.stderr


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_line_fits_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    stream = Terminal()
    progress = Progress(4, stream=stream)
    progress.trial("a-layer-with-a-long-name" * 3, "search trial", 12, 0.0123, 0.4567)
    progress.solver_callback(1234, 1.5e-3, 2e-4, 3.0)
    progress.close()
    pieces = stream.getvalue().split("\r")
    assert max(len(p) for p in pieces) <= 80


def test_the_samples_held_out_are_said(digits_mlp, tmp_path):
    base = digits_prune_args(digits_mlp, tmp_path, 500) + ["--threads", "1", "--inactive", "bounded"]
    base.remove("--quiet")
    out = nettrim_cli(*base, "-o", str(tmp_path / "p.npz"), "--sparsity", "0.8")
    assert out.returncode == 0, out.stderr
    assert "400 calibration samples solved on, 100 more held out" in out.stdout, out.stdout
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["calibration_samples"] == 400 and report["held_out"] == 100
    assert "100 more held out" in nettrim.PruneReport.from_dict(report).summary()


class FunctionalMLP(torch.nn.Module):
    """The layers of ``seq`` (Linear, ReLU, Linear), the ReLU called as a function."""

    def __init__(self, seq):
        super().__init__()
        self.fc1, self.fc2 = seq[0], seq[2]

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class FunctionalCNN(torch.nn.Module):
    """The layers of ``seq`` (Conv2d, ReLU, MaxPool2d, Flatten, Linear, ReLU, Linear), every
    parameter-free one called as a function."""

    def __init__(self, seq):
        super().__init__()
        self.conv, self.fc1, self.fc2 = seq[0], seq[4], seq[6]

    def forward(self, x):
        x = torch.flatten(F.max_pool2d(F.relu(self.conv(x)), 2), 1)
        return self.fc2(torch.relu(self.fc1(x)))


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(12, 9), torch.nn.ReLU(), torch.nn.Linear(9, 3)).eval()


def cnn():
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10),
                         nn.ReLU(), nn.Linear(10, 3)).eval()


@pytest.mark.parametrize("compile_", ["script", "trace"])
@pytest.mark.parametrize("build, functional, input_shape", [(mlp, FunctionalMLP, (12,)),
                                                            (cnn, FunctionalCNN, (1, 8, 8))])
def test_a_torchscript_model_calling_f_relu_reads_as_its_sequential(tmp_path, compile_, build, functional,
                                                                     input_shape):
    torch.manual_seed(0)
    seq = build()
    model = functional(seq).eval()
    example = torch.randn(2, *input_shape)
    path = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torch 2.13 deprecates TorchScript
        compiled = torch.jit.script(model) if compile_ == "script" else torch.jit.trace(model, example)
        torch.jit.save(compiled, str(path))
    net, provenance = nettrim.adapters.read(str(path), input_shape=input_shape)
    want, _ = nettrim.adapters.read(seq, input_shape=input_shape)
    assert [(type(s).__name__, getattr(s, "relu", None)) for s in net.steps] == \
        [(type(s).__name__, getattr(s, "relu", None)) for s in want.steps]
    for got, expected in zip(net.layers, want.layers):
        np.testing.assert_array_equal(got.weight, expected.weight)
        np.testing.assert_array_equal(got.bias, expected.bias)
    X = np.random.default_rng(1).standard_normal((16, *input_shape)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(X), want.forward(X))
    # and the weights go back where they came from: a zeroed first layer reads back zero
    net.layers[0].weight[...] = 0
    nettrim.adapters.write(net, provenance, str(tmp_path / "out.pt"))
    again, _ = nettrim.adapters.read(str(tmp_path / "out.pt"), input_shape=input_shape)
    assert not again.layers[0].weight.any() and again.layers[1].weight.any()


def test_a_torchscript_residual_names_the_operation():
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.b(F.relu(self.a(x)) + x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torch 2.13 deprecates TorchScript
        scripted = torch.jit.script(Residual())
    with pytest.raises(nettrim.adapters.UnsupportedModelError, match="aten::add.*residual"):
        nettrim.adapters.read(scripted)


def test_a_layer_filled_to_its_target_is_told_plainly_and_is_no_convergence_warning(digits_mlp, tmp_path):
    # 40 samples for 64 inputs: each neuron's l1 solution keeps at most about 40 of its 64
    # weights, so asking to keep 75% makes nettrim fill the layer, and say so
    clf, Xtr, *_ = digits_mlp
    net = nettrim.adapters.read(clf)[0]
    with pytest.warns(nettrim.TargetWarning) as caught:
        nettrim.prune_network(net, Xtr[:40], sparsity=0.25, layers=[0], threads=1)
    assert not issubclass(nettrim.TargetWarning, nettrim.ConvergenceWarning)
    assert all(w.category is nettrim.TargetWarning for w in caught)     # (no other warning)
    base = digits_prune_args(digits_mlp, tmp_path, 40) + ["--threads", "1", "--layers", "0", "--sparsity", "0.25"]
    base.remove("--quiet")
    out = nettrim_cli(*base, "-o", str(tmp_path / "p.npz"))
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stderr.splitlines() if line.startswith("nettrim: warning:")]
    assert len(said) == 1 and "asked to keep 75.0% of its weights" in said[0] and "Nothing failed" in said[0], said
    assert "l1" not in said[0]


def test_inspect_reads_nettrims_own_sparse_pt_quietly(digits_cnn, tmp_path):
    from nettrim.adapters.torch import load_sparse
    model, Xtr, ytr, Xte, yte = digits_cnn                  # (conv, batch norm, pooling, dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torch 2.13 deprecates TorchScript
        torch.jit.save(torch.jit.script(model), str(tmp_path / "cnn.pt"))
    np.save(tmp_path / "calib.npy", Xtr[:400])
    out = nettrim_cli("prune", str(tmp_path / "cnn.pt"), "--calib", str(tmp_path / "calib.npy"), "--scheme",
                      "parallel", "--eps-rel", "0.1", "--max-samples", "1000", "--threads", "1", "-o",
                      str(tmp_path / "small.pt"), "--sparse", "--quiet")
    assert out.returncode == 0, out.stderr
    shown = nettrim_cli("inspect", str(tmp_path / "small.pt"))
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr      # (torch's CSR beta notice included)
    assert "small.pt: torch model, input shape (1, 8, 8)" in shown.stdout
    # the network read from the file is the pruned module's, which load_sparse restores
    net, _ = nettrim.adapters.read(str(tmp_path / "small.pt"))
    want, _ = nettrim.adapters.read(load_sparse(tmp_path / "small.pt", model), input_shape=(1, 8, 8))
    assert [layer.name for layer in net.layers] == [layer.name for layer in want.layers]
    assert [np.count_nonzero(layer.weight) for layer in net.layers] == \
        [np.count_nonzero(layer.weight) for layer in want.layers]
    assert net.nnz() < 0.9 * net.size()
    np.testing.assert_allclose(net.forward(Xte[:50]), want.forward(Xte[:50]), rtol=1e-5, atol=1e-5)
    # it holds no module to write a pruned copy into: said before any pruning
    again = nettrim_cli("prune", str(tmp_path / "small.pt"), "--calib", str(tmp_path / "calib.npy"), "-o",
                        str(tmp_path / "again.pt"), "--quiet")
    assert again.returncode == 2 and "load_sparse" in again.stderr and len(again.stderr.splitlines()) == 1


def test_two_runs_on_other_thread_counts_write_the_same_weights(digits_mlp, tmp_path):
    # What README "Threads" claims: two processes on the same processors, any --threads, the
    # same pruned weights bit for bit (the engine cuts its products per processor, not per
    # thread).  One solve per layer (--eps-rel): two threads on a busy 2-core machine wait at
    # every barrier, and a search's dozens of solves took minutes there.
    base = digits_prune_args(digits_mlp, tmp_path, 400) + ["--scheme", "cascade", "--eps-rel", "0.1"]
    for threads in ("1", "2"):
        out = nettrim_cli(*base, "--threads", threads, "-o", str(tmp_path / f"t{threads}.npz"))
        assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "t1.npz") as one, np.load(tmp_path / "t2.npz") as two:
        assert one.files == two.files and any(one[k].size > 1 and not one[k].all() for k in one.files)
        for k in one.files:
            np.testing.assert_array_equal(one[k], two[k], err_msg=k)
