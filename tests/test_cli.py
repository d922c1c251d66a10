"""The command line, driven as a user would: subprocesses, files, exit codes."""
import json
import subprocess
import sys

import numpy as np
import pytest
from nettrim.adapters.sklearn import from_sklearn
from nettrim.methods.masks import most_kept


def nettrim_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nettrim.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_demo_prints_its_table(tmp_path):
    out = nettrim_cli("demo", "--plot", str(tmp_path / "demo.png"))
    assert out.returncode == 0, out.stderr
    assert "test accuracy:" in out.stdout and "total" in out.stdout
    assert (tmp_path / "demo.png").stat().st_size > 1000
    # warnings (the cascade may remove a little more than asked, and says so) are one line each
    assert all(line.startswith("nettrim: warning: ") for line in out.stderr.splitlines()), out.stderr


def digits_prune_args(digits_mlp, tmp_path, samples):
    """``nettrim prune`` arguments for the digits MLP saved in ``tmp_path`` and its first
    ``samples`` training samples as calibration inputs (quiet; add -o and the target)."""
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr[:samples])
    return ["prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"), "--quiet"]


def test_prune_and_report(digits_mlp, tmp_path):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr)
    out = nettrim_cli("prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"),
                      "-o", str(tmp_path / "pruned.npz"), "--eps-rel", "0.05", "--quiet")
    assert out.returncode == 0, out.stderr
    from nettrim.network import Network
    pruned = Network.load_npz(tmp_path / "pruned.npz")
    assert np.mean(pruned.predict(Xte) == yte) >= 0.95          # measured 0.991
    report = json.loads((tmp_path / "pruned.json").read_text())
    assert report["nnz"] == pruned.nnz()
    shown = nettrim_cli("report", str(tmp_path / "pruned.json"))
    assert shown.returncode == 0 and "dense0" in shown.stdout and "total" in shown.stdout


def tanh_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal((64, 8)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal((8, 10)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("MatMul", ["t", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ("prune", str(d / "missing.npz"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.npz")),
     "model file not found"),
    (lambda d: ("prune", str(d / "model.npz"), "--calib", str(d / "bad.npy"), "-o", str(d / "o.npz")),
     "do not match the model's input 64"),
    (lambda d: ("prune", str(d / "model.npz"), "--calib", str(d / "missing.npy"), "-o", str(d / "o.npz")),
     "calibration inputs file not found"),
    (lambda d: ("prune", str(d / "garbage.onnx"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.onnx")),
     "not a readable ONNX model"),
    (lambda d: ("prune", str(d / "tanh.onnx"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.onnx"),
                "--checkpoint", str(d / "ck")), "checkpoint: not available for graph models"),
    (lambda d: ("prune", str(d / "model.npz"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.onnx")),
     "must have the model's format (npz)"),
    (lambda d: ("prune", str(d / "model.npz"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.npz"),
                "--sparsity", "1.5"), "sparsity: expected a fraction in (0, 1)"),
    (lambda d: ("prune", str(d / "model.txt"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.npz")),
     "unsupported model format"),
    (lambda d: ("report", str(d / "calib.npy")), "not a nettrim report"),
])
def test_errors_are_one_line(digits_mlp, tmp_path, make_args, message):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    (tmp_path / "model.txt").write_text("x")
    (tmp_path / "garbage.onnx").write_bytes(b"not an onnx file at all")
    tanh_onnx(tmp_path / "tanh.onnx")
    np.save(tmp_path / "calib.npy", Xtr[:50])
    np.save(tmp_path / "bad.npy", Xtr[:50, :10])
    out = nettrim_cli(*make_args(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "o.npz").exists()


def test_help_explains_options():
    out = nettrim_cli("prune", "--help")
    assert out.returncode == 0
    for option in ("--calib", "--scheme", "--eps-rel", "--sparsity", "--checkpoint", "--threads", "--max-samples",
                   "--quiet", "(default: cascade)", "(default: 8000)"):
        assert option in out.stdout


def test_onnx_prune_inspect_sweep(digits_cnn, tmp_path):
    """A PyTorch CNN exported to ONNX: pruned by the command, run by onnxruntime."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import warnings
    model, Xtr, ytr, Xte, yte = digits_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.tensor(Xtr[:2]), str(tmp_path / "cnn.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    np.save(tmp_path / "calib.npy", Xtr)
    np.savez(tmp_path / "eval.npz", X=Xte, y=yte)
    out = nettrim_cli("prune", str(tmp_path / "cnn.onnx"), "--calib", str(tmp_path / "calib.npy"),
                      "-o", str(tmp_path / "small.onnx"), "--eps-rel", "0.05", "--max-samples", "3000", "--sparse")
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout and out.stderr == ""          # no progress display when not a terminal
    from nettrim.adapters.onnx import run_onnx
    acc = np.mean(np.argmax(run_onnx(str(tmp_path / "small.onnx"), Xte), 1) == yte)
    assert acc >= 0.96                                          # measured 0.991, as before pruning
    report = json.loads((tmp_path / "small.json").read_text())
    assert report["nnz"] <= 0.6 * report["nnz_before"]
    # --sparse: the model itself is smaller (compact initializers that onnxruntime runs, above)
    assert report["files"]["output_bytes"] < report["files"]["input_bytes"] == (tmp_path / "cnn.onnx").stat().st_size
    assert not list(tmp_path.glob("*.sparse.npz"))
    shown = nettrim_cli("inspect", str(tmp_path / "small.onnx"))
    assert shown.returncode == 0 and "CSR KiB" in shown.stdout and str(report["nnz"]) in shown.stdout
    sweep = nettrim_cli("sweep", str(tmp_path / "cnn.onnx"), "--calib", str(tmp_path / "calib.npy"),
                        "--eval", str(tmp_path / "eval.npz"), "--eps-rel", "0.05", "0.2", "--max-samples", "2000",
                        "--plot", str(tmp_path / "sweep.png"))
    assert sweep.returncode == 0, sweep.stderr
    assert "eps_rel=0.05" in sweep.stdout and "eps_rel=0.2" in sweep.stdout
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_torch_module_round_trip(digits_cnn, tmp_path):
    torch = pytest.importorskip("torch")
    model, Xtr, ytr, Xte, yte = digits_cnn
    torch.save(model, tmp_path / "cnn.pt")
    np.save(tmp_path / "calib.npy", Xtr)
    out = nettrim_cli("prune", str(tmp_path / "cnn.pt"), "--calib", str(tmp_path / "calib.npy"), "--trust-model",
                      "-o", str(tmp_path / "small.pt"), "--eps-rel", "0.05", "--max-samples", "3000", "--quiet")
    assert out.returncode == 0, out.stderr
    small = torch.load(tmp_path / "small.pt", weights_only=False)
    with torch.no_grad():
        acc = float((small(torch.tensor(Xte)).argmax(1).numpy() == yte).mean())
    assert acc >= 0.96            # measured 0.991


@pytest.fixture(scope="module")
def wide_mlp(tmp_path_factory, digits_split):
    """A 64-512-512-10 MLP on digits: its second layer takes a few seconds, long enough to kill."""
    import warnings

    from sklearn.neural_network import MLPClassifier

    Xtr, ytr, Xte, yte = digits_split
    Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((512, 512), max_iter=40, random_state=0).fit(Xtr, ytr)
    d = tmp_path_factory.mktemp("wide")
    from_sklearn(clf).save_npz(d / "model.npz")
    np.save(d / "calib.npy", Xtr)
    return d


def test_killed_cascade_resumes_to_the_same_bytes(wide_mlp, tmp_path):
    import os
    import signal
    import time
    d = wide_mlp
    base = ["prune", str(d / "model.npz"), "--calib", str(d / "calib.npy"), "--scheme", "cascade", "--eps-rel", "0.05",
            "--quiet"]
    full = nettrim_cli(*base, "-o", str(tmp_path / "full.npz"))
    assert full.returncode == 0, full.stderr
    ck = tmp_path / "ck"
    cmd = [sys.executable, "-m", "nettrim.cli", *base, "-o", str(tmp_path / "resumed.npz"), "--checkpoint", str(ck)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(ck.glob("layer0-*.npz")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert list(ck.glob("layer0-*.npz")) and not list(ck.glob("layer2-*.npz"))
    assert not (tmp_path / "resumed.npz").exists() and not list(tmp_path.glob("*.part"))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "resumed.npz").read_bytes() == (tmp_path / "full.npz").read_bytes()


def test_same_inputs_give_the_same_bytes(digits_mlp, tmp_path):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr)
    for name in ("a", "b"):
        out = nettrim_cli("prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"),
                          "-o", str(tmp_path / f"{name}.npz"), "--sparsity", "0.7", "--quiet")
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_interrupted_write_keeps_the_old_file(tmp_path):
    from nettrim.io import atomic_write
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_progress_line_on_a_terminal_only(monkeypatch):
    import io
    monkeypatch.setenv("COLUMNS", "200")             # (a wide terminal: the line is cut at its width)

    from nettrim.progress import Progress
    from nettrim.report import LayerReport
    report = LayerReport("dense0", (4, 3), 12, 5, 0.1, 0.05, 0.05, 0.0, 0.0, 100, 1, "converged", 0.1)
    shown = io.StringIO()
    bar = Progress(3, enabled=True, stream=shown)
    bar.solver_callback(120, 3e-3, 1e-2, 0.5)
    bar.trial("dense1", "search trial", 3, 0.052, 0.231)
    bar.layer_done(0, report)
    bar.close()
    assert "ADMM iteration   120" in shown.getvalue() and "1/3 layers" in shown.getvalue()
    assert "dense1: search trial 3, eps_rel 0.052 keeps 23.1%" in shown.getvalue()
    silent = io.StringIO()
    bar = Progress(3, stream=silent)                 # StringIO is not a terminal
    bar.layer_done(0, report)
    bar.close()
    assert silent.getvalue() == ""


def test_a_bug_shows_its_traceback_not_a_user_error(tmp_path):
    # Only nettrim's own errors (and memory, file, missing-package errors) are one-line user
    # errors; a TypeError from a programming mistake must not pass for one.
    script = ("import sys, nettrim.cli as cli\n"
              "def broken(args):\n"
              "    return len(None)\n"
              "cli.cmd_report = broken\n"
              "sys.exit(cli.main(['report', 'anything.json']))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 70
    assert "Traceback" in out.stderr and "TypeError" in out.stderr
    assert "please report" in out.stderr
    user = nettrim_cli("report", str(tmp_path / "missing.json"))
    assert user.returncode == 2 and "Traceback" not in user.stderr


def test_options_shared_by_prune_and_sweep():
    # One set of pruning options: sweep has what prune has (--method among them), and
    # --eps (which always meant --eps-rel) still works with a warning.
    prune, sweep = (nettrim_cli(cmd, "--help").stdout for cmd in ("prune", "sweep"))
    for option in ("--eps-rel", "--sparsity", "--scope", "--allocation", "--layers", "--method", "--nm",
                   "--structured", "--refit", "--no-refit", "--no-final-refit", "--floor", "--threads", "--max-samples",
                   "--seed"):
        assert option in prune and option in sweep, option


def test_per_layer_sparsity_layers_and_deprecated_eps(digits_mlp, tmp_path):
    base = digits_prune_args(digits_mlp, tmp_path, 400) + ["--threads", "1"]
    out = nettrim_cli(*base, "-o", str(tmp_path / "a.npz"), "--sparsity", "0.5,0.8", "--layers", "dense0,dense1")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "a.json").read_text())
    kept = [r["nnz"] / r["nnz_before"] for r in report["layers"]]
    assert 0.48 <= kept[0] and 0.18 <= kept[1] and kept[2] == 1.0   # the last layer untouched
    assert all(r["nnz"] <= most_kept(r["nnz_before"], keep)      # the targets are ceilings
               for r, keep in zip(report["layers"], (0.5, 0.2)))
    assert [r["pruned"] for r in report["layers"]] == [True, True, False]
    old = nettrim_cli(*base, "-o", str(tmp_path / "b.npz"), "--eps", "0.1")
    assert old.returncode == 0 and "--eps is deprecated" in old.stderr and "use --eps-rel" in old.stderr
    bad = nettrim_cli(*base, "-o", str(tmp_path / "c.npz"), "--sparsity", "0.5,0.8", "--layers", "dense7")
    assert bad.returncode == 2 and "--layers: 'dense7' is not one of" in bad.stderr


def test_no_final_refit_keeps_the_parallel_logits_layer_as_pruned(digits_mlp, tmp_path):
    from nettrim.network import Network
    base = digits_prune_args(digits_mlp, tmp_path, 400) + ["--threads", "1", "--scheme", "parallel", "--sparsity", "0.5", "--scope", "layer", "--method", "magnitude"]
    for name, extra in (("a", ()), ("b", ("--no-final-refit",))):
        out = nettrim_cli(*base, "-o", str(tmp_path / f"{name}.npz"), *extra)
        assert out.returncode == 0, out.stderr
    a, b = (Network.load_npz(tmp_path / f"{name}.npz") for name in "ab")
    np.testing.assert_array_equal(a.layers[0].weight, b.layers[0].weight)
    assert not np.array_equal(a.layers[-1].weight, b.layers[-1].weight)
    assert np.all(a.layers[-1].weight[b.layers[-1].weight == 0] == 0)     # within the support kept


def test_backend_block_and_budget_options(digits_mlp, tmp_path):
    import nettrim
    base = digits_prune_args(digits_mlp, tmp_path, 300) + ["--threads", "1"]
    if "cuda" not in nettrim.backends():
        out = nettrim_cli(*base, "-o", str(tmp_path / "a.npz"), "--backend", "cuda")
        assert out.returncode == 2 and out.stderr.startswith("nettrim: error: --backend:"), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    out = nettrim_cli(*base, "-o", str(tmp_path / "b.npz"), "--block-outputs", "16")
    assert out.returncode == 2 and "--block-outputs:" in out.stderr and "parallel" in out.stderr
    out = nettrim_cli(*base, "-o", str(tmp_path / "c.npz"), "--scheme", "parallel", "--block-outputs", "16",
                      "--memory-budget", "1MiB")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["rows"] is not None and report["rows"] < 300 and "rows" in report["memory"]
    out = nettrim_cli(*base, "-o", str(tmp_path / "d.npz"), "--memory-budget", "lots")
    assert out.returncode == 2 and "--memory-budget:" in out.stderr


def test_refit_option(digits_mlp, tmp_path):
    """--refit bounded keeps every inactive output inactive (the report says so, layer by
    layer); the default (relu) may not, and reports its layers as such; --refit is refused
    with another method, in one line."""
    base = digits_prune_args(digits_mlp, tmp_path, 400)
    for refit in ("bounded", "relu"):
        out = nettrim_cli(*base, "-o", str(tmp_path / f"{refit}.npz"), "--eps-rel", "0.2", "--refit", refit)
        assert out.returncode == 0, out.stderr
        layers = json.loads((tmp_path / f"{refit}.json").read_text())["layers"]
        assert [layer["kept_inactive"] for layer in layers[:2]] == [refit == "bounded"] * 2
        if refit == "bounded":
            assert max(layer["complement_violation"] for layer in layers) <= 1e-3
        assert all(layer["relative_error"] <= layer["eps_rel"] * (1 + 1e-3) for layer in layers)
    out = nettrim_cli(*base, "-o", str(tmp_path / "m.npz"), "--method", "magnitude", "--sparsity", "0.5",
                      "--refit", "bounded")
    assert out.returncode == 2 and out.stderr.strip() == ("nettrim: error: --refit: 'bounded' is a Net-Trim option, not for "
                                                      "method 'magnitude'")   # (PruneOptions' rule, named as a flag)


def test_inactive_option(digits_mlp, tmp_path):
    """--inactive chooses Net-Trim's program for the inactive outputs; the report says which
    (per layer, and why with auto); refused in one line with another method."""
    base = digits_prune_args(digits_mlp, tmp_path, 400)
    for program in ("bounded", "relu"):
        out = nettrim_cli(*base, "-o", str(tmp_path / f"{program}.npz"), "--eps-rel", "0.2", "--inactive", program)
        assert out.returncode == 0, out.stderr
        report = json.loads((tmp_path / f"{program}.json").read_text())
        assert report["inactive"] == program and report["inactive_choice"] is None
        assert [layer["inactive"] for layer in report["layers"][:2]] == [program] * 2
    out = nettrim_cli(*base, "-o", str(tmp_path / "auto.npz"), "--sparsity", "0.9", "--threads", "1")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "auto.json").read_text())
    assert report["inactive"] in ("bounded", "relu") and "inactive='auto'" in report["inactive_choice"]
    shown = nettrim_cli("report", str(tmp_path / "auto.json"))
    assert "chosen by inactive='auto'" in shown.stdout
    out = nettrim_cli(*base, "-o", str(tmp_path / "m.npz"), "--method", "magnitude", "--sparsity", "0.5",
                      "--inactive", "relu")
    assert out.returncode == 2 and out.stderr.strip().startswith("nettrim: error: --inactive: a setting of Net-Trim")
