"""The command line, driven as a user would: subprocesses, files, exit codes."""
import json
import subprocess
import sys

import numpy as np
import pytest

from nettrim.adapters.sklearn import from_sklearn


def nettrim_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nettrim.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_demo_prints_its_table(tmp_path):
    out = nettrim_cli("demo", "--plot", str(tmp_path / "demo.png"))
    assert out.returncode == 0, out.stderr
    assert "test accuracy:" in out.stdout and "total" in out.stdout
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_prune_and_report(digits_mlp, tmp_path):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr)
    out = nettrim_cli("prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"),
                      "-o", str(tmp_path / "pruned.npz"), "--eps", "0.05", "--quiet")
    assert out.returncode == 0, out.stderr
    from nettrim.network import Network
    pruned = Network.load_npz(tmp_path / "pruned.npz")
    assert np.mean(pruned.predict(Xte) == yte) >= 0.97
    report = json.loads((tmp_path / "pruned.json").read_text())
    assert report["nnz_after"] == pruned.nnz()
    shown = nettrim_cli("report", str(tmp_path / "pruned.json"))
    assert shown.returncode == 0 and "dense0" in shown.stdout and "total" in shown.stdout


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ("prune", str(d / "missing.npz"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.npz")),
     "model file not found"),
    (lambda d: ("prune", str(d / "model.npz"), "--calib", str(d / "bad.npy"), "-o", str(d / "o.npz")),
     "do not match the model's 64 inputs"),
    (lambda d: ("prune", str(d / "model.txt"), "--calib", str(d / "calib.npy"), "-o", str(d / "o.npz")),
     "unsupported model format"),
    (lambda d: ("report", str(d / "calib.npy")), "not a nettrim report"),
])
def test_errors_are_one_line(digits_mlp, tmp_path, make_args, message):
    clf, Xtr, *_ = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    (tmp_path / "model.txt").write_text("x")
    np.save(tmp_path / "calib.npy", Xtr[:50])
    np.save(tmp_path / "bad.npy", Xtr[:50, :10])
    out = nettrim_cli(*make_args(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "o.npz").exists()
