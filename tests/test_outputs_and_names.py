"""The command line never writes over what it reads, and a layer argument that could mean two
layers is an error that asks which, never a silent choice."""
import json
import warnings

import nettrim
import numpy as np
import pytest
from nettrim.options import check_layer_selection
from test_cli import digits_prune_args, nettrim_cli


@pytest.mark.parametrize("command, extra, flag, input_name", [
    ("prune", ["-o", "{model}"], "-o", "model"),
    ("prune", ["-o", "out.npz", "--finetune", "1", "--train", "out.npz"], "-o", "training data"),
    ("prune", ["-o", "out.npz", "--finetune", "1", "--train", "{train}", "--eval", "out.json"],
     "-o (its report)", "evaluation data"),
    ("sweep", ["--eval", "{eval}", "--plot", "{model}"], "--plot", "model"),
    ("sweep", ["--eval", "{eval}", "--plot", "{eval}"], "--plot", "evaluation data"),
])
def test_no_output_replaces_an_input(digits_mlp, tmp_path, command, extra, flag, input_name):
    clf, Xtr, ytr, Xte, yte = digits_mlp
    base = digits_prune_args(digits_mlp, tmp_path, 200)
    base[0] = command
    np.savez(tmp_path / "train.npz", X=Xtr[:50], y=ytr[:50])
    np.savez(tmp_path / "eval.npz", X=Xte[:50], y=yte[:50])
    names = {"model": str(tmp_path / "model.npz"), "calib": str(tmp_path / "calib.npy"),
             "train": str(tmp_path / "train.npz"), "eval": str(tmp_path / "eval.npz")}
    if "out.npz" in extra and "--train" in extra and extra[extra.index("--train") + 1] == "out.npz":
        np.savez(tmp_path / "out.npz", X=Xtr[:50], y=ytr[:50])      # training data named like the output
    if "out.json" in extra:
        np.savez(tmp_path / "out.json", X=Xte[:50], y=yte[:50])     # evaluation data where the report goes
    args = [a.format(**names) for a in extra]
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    out = nettrim_cli(*base, *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith(f"nettrim: error: {flag}:") and input_name in line, line
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before    # nothing was written


def scripted_sequential(tmp_path):
    """A TorchScript Sequential: its layers are named "0", "2", "4"."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    path = tmp_path / "seq.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # (torch 2.13 deprecates TorchScript)
        torch.jit.save(torch.jit.script(model), str(path))
    return path


def test_a_name_that_is_another_layers_index_asks_which(tmp_path):
    path = scripted_sequential(tmp_path)
    net, _ = nettrim.adapters.read(str(path))
    assert [layer.name for layer in net.layers] == ["0", "2", "4"]
    with pytest.raises(nettrim.InvalidArgument, match=r"layers: '2' names layer #1 and is the index of layer '4'; "
                                                       r"write 'name:2' or '#2'"):
        check_layer_selection(net, ["2"])
    assert check_layer_selection(net, ["name:2"]) == [1]
    assert check_layer_selection(net, ["#2"]) == [2]
    assert check_layer_selection(net, ["0", "4"]) == [0, 2]       # names that are no other layer's index
    assert check_layer_selection(net, [2]) == [2]                  # an integer is an index
    assert check_layer_selection(net, ["#-1"]) == [2]
    with pytest.raises(nettrim.InvalidArgument, match="layers: 'name:7' is not one of"):
        check_layer_selection(net, ["name:7"])

    X = np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32)
    np.save(tmp_path / "calib.npy", X)
    base = ["prune", str(path), "--calib", str(tmp_path / "calib.npy"), "--quiet", "--threads", "1"]
    out = nettrim_cli(*base, "-o", str(tmp_path / "a.pt"), "--layers", "2")
    assert out.returncode == 2 and "--layers: '2' names layer #1" in out.stderr, out.stderr
    out = nettrim_cli(*base, "-o", str(tmp_path / "b.pt"), "--layers", "name:2", "--sparsity", "0.5")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert [r["pruned"] for r in report["layers"]] == [False, True, False]
    shown = nettrim_cli("inspect", str(path))
    assert shown.returncode == 0 and "#1" in shown.stdout and "#2" in shown.stdout, shown.stdout
