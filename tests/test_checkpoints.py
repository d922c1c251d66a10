"""Checkpoints never mix runs: the fingerprint covers the whole model, the data, every option and
the version; every layer file carries the run it belongs to and a hash of its own arrays, and
is checked against the layer when it is read back."""
import json

import nettrim
import numpy as np
import pytest
from nettrim.checkpoint import CheckpointMismatch
from nettrim.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d
from test_cli import nettrim_cli


def mlp(last_linear=True, seed=0):
    rng = np.random.default_rng(seed)
    return nettrim.from_arrays([rng.standard_normal((8, 6)), rng.standard_normal((6, 3))],
                               [rng.standard_normal(6), rng.standard_normal(3)], last_linear=last_linear)


def stop_after_first(i, report):
    if i == 0:
        raise KeyboardInterrupt


def first_layer_checkpointed(net, X, directory, **kw):
    with pytest.raises(KeyboardInterrupt):
        nettrim.prune_network(net, X, threads=1, checkpoint=directory, on_layer=stop_after_first, **kw)
    assert len(list(directory.glob("layer*.npz"))) == 1


X = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)


def test_another_activation_on_the_last_layer_is_another_model(tmp_path):
    first_layer_checkpointed(mlp(last_linear=True), X, tmp_path / "ck", scheme="cascade", eps_rel=0.1)
    with pytest.raises(CheckpointMismatch, match="holds a run with another model;"):
        nettrim.prune_network(mlp(last_linear=False), X, threads=1, checkpoint=tmp_path / "ck", scheme="cascade",
                              eps_rel=0.1)


def test_max_and_average_pooling_are_other_models(tmp_path):
    rng = np.random.default_rng(2)
    conv = Conv2d(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), np.zeros(3, np.float32), relu=True)
    dense = Dense(rng.standard_normal((3 * 2 * 2, 2)).astype(np.float32), np.zeros(2, np.float32))
    images = rng.standard_normal((100, 1, 6, 6)).astype(np.float32)
    net_max = nettrim.Network([conv, MaxPool2d(2), Flatten(), dense], (1, 6, 6))
    net_avg = nettrim.Network([conv, AvgPool2d(2), Flatten(), dense], (1, 6, 6))
    first_layer_checkpointed(net_max, images, tmp_path / "ck", eps_rel=0.1)
    with pytest.raises(CheckpointMismatch, match="another model"):
        nettrim.prune_network(net_avg, images, threads=1, checkpoint=tmp_path / "ck", eps_rel=0.1)


def test_other_options_and_other_data_are_named(tmp_path):
    first_layer_checkpointed(mlp(), X, tmp_path / "ck", scheme="parallel", eps_rel=0.1, block_outputs=2, workers=1)
    with pytest.raises(CheckpointMismatch, match="another options;"):
        nettrim.prune_network(mlp(), X, threads=1, checkpoint=tmp_path / "ck", scheme="parallel", eps_rel=0.1)
    with pytest.raises(CheckpointMismatch, match="another calibration data, options;"):
        nettrim.prune_network(mlp(), X[:200], threads=1, checkpoint=tmp_path / "ck", scheme="parallel", eps_rel=0.1)


def test_layer_files_without_their_run_json_are_not_reused(tmp_path):
    first_layer_checkpointed(mlp(seed=0), X, tmp_path / "ck", eps_rel=0.1)
    (tmp_path / "ck" / "run.json").unlink()
    with pytest.raises(CheckpointMismatch, match="layer files .* but no run.json"):
        nettrim.prune_network(mlp(seed=3), X, threads=1, checkpoint=tmp_path / "ck", eps_rel=0.1)


def rewrite_layer(path, change):
    with np.load(path) as z:
        arrays = dict(z)
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, says", [
    (lambda a: a.__setitem__("W0", np.full_like(a["W0"], np.nan)), "was changed after it was written"),
    (lambda a: a.__setitem__("W0", a["W0"][:, :2]), "was changed after it was written"),
])
def test_a_rewritten_layer_file_is_refused(tmp_path, change, says):
    first_layer_checkpointed(mlp(), X, tmp_path / "ck", eps_rel=0.1)
    path = next((tmp_path / "ck").glob("layer*.npz"))
    rewrite_layer(path, change)
    with pytest.raises(nettrim.InvalidArgument, match=says):
        nettrim.prune_network(mlp(), X, threads=1, checkpoint=tmp_path / "ck", eps_rel=0.1)


def test_a_layer_file_of_the_wrong_shape_is_refused_even_with_a_matching_hash(tmp_path, monkeypatch):
    from nettrim import checkpoint
    first_layer_checkpointed(mlp(), X, tmp_path / "ck", eps_rel=0.1)
    path = next((tmp_path / "ck").glob("layer*.npz"))

    def bad(a):       # a file written by a bug: the wrong shape, its hash made to match
        a["W0"] = np.zeros((8, 2), np.float32)
        a["hash"] = np.array(checkpoint._hash_arrays({"W0": a["W0"], "b0": a["b0"], "report": a["report"]}))
    rewrite_layer(path, bad)
    with pytest.raises(nettrim.InvalidArgument, match=r"W0 is float32 \(8, 2\), expected finite float32 \(8, 6\)"):
        nettrim.prune_network(mlp(), X, threads=1, checkpoint=tmp_path / "ck", eps_rel=0.1)


def test_the_same_run_resumes_and_force_starts_another_anew(tmp_path):
    net = mlp()
    net.save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", X)
    args = ["prune", "model.npz", "--calib", "calib.npy", "--checkpoint", "ck", "--quiet", "--threads", "1"]
    assert nettrim_cli(*args, "-o", "a.npz", cwd=tmp_path).returncode == 0
    assert nettrim_cli(*args, "-o", "b.npz", cwd=tmp_path).returncode == 0        # resumed: every layer there
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    other = nettrim_cli(*args, "-o", "c.npz", "--eps-rel", "0.2", cwd=tmp_path)
    assert other.returncode == 2 and "--checkpoint: " in other.stderr and "another options" in other.stderr
    assert "--force" in other.stderr
    forced = nettrim_cli(*args, "-o", "c.npz", "--eps-rel", "0.2", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    run = json.loads((tmp_path / "ck" / "run.json").read_text())["run"]
    assert set(run) == {"model", "calibration", "options", "version"} and run["version"] == nettrim.__version__
