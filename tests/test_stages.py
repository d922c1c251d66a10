"""Staged pruning (``prune_network(stages=k)``): a whole-network sparsity reached through k
targets on a cubic schedule, each stage pruning the network the last one left; with
``reconstruct``, each stage's network re-fitted to the trained network's outputs."""
import json
import sys

import nettrim
import numpy as np
import pytest
from conftest import residual_module
from nettrim.errors import InvalidArgument
from nettrim.methods.masks import most_kept
from nettrim.prune import stage_sparsities
from nettrim.report import PruneReport


@pytest.fixture(scope="module")
def digits_net(digits_mlp):
    clf, Xtr, *_ = digits_mlp
    return nettrim.adapters.sklearn.from_sklearn(clf), Xtr


def _weights(net):
    return [(layer.matrix.copy(), np.asarray(layer.bias).copy()) for layer in net.layers]


def test_the_schedule_is_cubic_and_ends_at_the_target_itself():
    targets = stage_sparsities(0.95, 3)
    assert targets[-1] == 0.95 and targets == sorted(targets)
    np.testing.assert_allclose(targets[:2], [0.95 * (1 - (2 / 3) ** 3), 0.95 * (1 - (1 / 3) ** 3)])
    assert stage_sparsities(0.9, 1) == [0.9]
    per_layer = stage_sparsities((0.5, 0.8), 2)
    np.testing.assert_allclose(per_layer[0], (0.5 * 7 / 8, 0.8 * 7 / 8))
    assert per_layer[-1] == (0.5, 0.8)


def test_one_stage_is_the_one_shot_run_bit_for_bit(digits_net, monkeypatch):
    net, X = digits_net
    one_shot, report = nettrim.prune_network(net, X, sparsity=0.9, inactive="relu")

    def no_schedule(*args):
        raise AssertionError("stages=1 went through the staged loop")
    monkeypatch.setattr(nettrim.prune, "stage_sparsities", no_schedule)
    staged, staged_report = nettrim.prune_network(net, X, sparsity=0.9, inactive="relu", stages=1)
    for (Wa, ba), (Wb, bb) in zip(_weights(one_shot), _weights(staged)):
        assert np.array_equal(Wa, Wb) and np.array_equal(ba, bb)
    assert staged_report.stages == [] and report.stages == []


@pytest.mark.parametrize("scheme", ["cascade", "parallel"])
def test_every_stage_meets_its_target_as_a_ceiling(digits_net, scheme):
    net, X = digits_net
    sizes = [layer.size for layer in net.layers]
    pruned, report = nettrim.prune_network(net, X, sparsity=0.9, stages=3, scheme=scheme, inactive="relu")
    assert pruned.nnz() <= most_kept(net.size(), 1 - 0.9)
    assert [s.stage for s in report.stages] == [1, 2, 3]
    for stage, asked in zip(report.stages, stage_sparsities(0.9, 3)):
        assert stage.sparsity == pytest.approx(asked)
        assert round((1 - stage.removed) * sum(sizes)) <= most_kept(sum(sizes), 1 - asked)
    # the report counts from the trained network, and its layers carry every stage's solves
    assert report.nnz_before == net.nnz() and report.nnz == pruned.nnz()
    assert all(r.solves >= 3 for r in report.layers)
    assert report.seconds >= sum(s.seconds for s in report.stages)
    assert "stage 3: 90% asked" in report.summary()
    # checked apart, in float64: the pruned network's outputs are finite and still near the trained one's
    out, want = pruned.forward(X).astype(np.float64), net.forward(X).astype(np.float64)
    assert np.all(np.isfinite(out)) and np.linalg.norm(out - want) < np.linalg.norm(want)


def test_stages_with_reconstruction_refit_each_stage_and_keep_the_zeros(digits_net):
    pytest.importorskip("torch")
    net, X = digits_net
    pruned, report = nettrim.prune_network(net, X, sparsity=0.9, stages=2, reconstruct=True, method="magnitude")
    assert pruned.nnz() <= most_kept(net.size(), 1 - 0.9)
    for stage in report.stages:
        rebuilt = stage.reconstruction
        assert rebuilt is not None and rebuilt.discrepancy_after <= rebuilt.discrepancy_before
    assert report.reconstruction == report.stages[-1].reconstruction
    again = PruneReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.stages == report.stages


def test_without_torch_a_convolution_is_a_clear_error_before_any_pruning(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)       # (as if torch were not installed)
    rng = np.random.default_rng(0)
    net = nettrim.Network([nettrim.Conv2d(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), np.zeros(4)),
                           nettrim.Flatten(), nettrim.Dense(rng.standard_normal((144, 3)).astype(np.float32),
                                                            np.zeros(3), relu=False)], (1, 8, 8))
    X = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
    done = []
    with pytest.raises(ImportError, match="reconstruct: the reconstruction of a network with convolutions.*needs "
                                          "PyTorch"):
        nettrim.prune_network(net, X, sparsity=0.5, reconstruct=True, method="magnitude", stages=2,
                              on_layer=lambda k, r: done.append(k))
    assert done == []
    with pytest.raises(ImportError, match="pruned: .*needs PyTorch"):
        nettrim.reconstruct(net, net, X)


def test_without_torch_a_dense_chain_is_reconstructed_in_numpy(digits_net, monkeypatch):
    net, X = digits_net
    monkeypatch.setitem(sys.modules, "torch", None)
    pruned, report = nettrim.prune_network(net, X, sparsity=0.9, stages=2, reconstruct="kl", method="magnitude")
    assert pruned.nnz() <= most_kept(net.size(), 1 - 0.9)
    assert all(s.reconstruction.discrepancy_after < s.reconstruction.discrepancy_before for s in report.stages)


def test_a_kl_reconstruction_of_outputs_that_are_not_logits_is_refused_before_any_pruning(digits_net):
    _, X = digits_net
    rng = np.random.default_rng(0)
    one_output = nettrim.from_arrays([rng.standard_normal((64, 8)).astype(np.float32),
                                      rng.standard_normal((8, 1)).astype(np.float32)])
    done = []
    with pytest.raises(InvalidArgument, match="reconstruct: 'kl' reads the outputs as a classifier's logits"):
        nettrim.prune_network(one_output, X, sparsity=0.5, reconstruct="kl", stages=2,
                              on_layer=lambda k, r: done.append(k))
    assert done == []


def test_bad_stages_are_named(digits_net, tmp_path):
    net, X = digits_net
    with pytest.raises(InvalidArgument, match="stages"):
        nettrim.prune_network(net, X, sparsity=0.9, stages=0)
    with pytest.raises(InvalidArgument, match="sparsity: needed with stages=3"):
        nettrim.prune_network(net, X, stages=3)
    with pytest.raises(InvalidArgument, match="checkpoint: not with stages"):
        nettrim.prune_network(net, X, sparsity=0.9, stages=2, checkpoint=str(tmp_path / "ck"))


@pytest.mark.filterwarnings("ignore::nettrim.TargetWarning")     # (this toy's layers could lose more)
def test_a_graph_model_is_pruned_in_stages():
    pytest.importorskip("torch")
    X = np.random.default_rng(0).standard_normal((600, 6)).astype(np.float32)
    graph, _ = nettrim.adapters.read(residual_module(), input_shape=(6,))
    pruned, report = nettrim.prune_network(graph, X, sparsity=0.7, stages=2, reconstruct="kl")
    assert isinstance(pruned, nettrim.GraphModel) and pruned.nnz() <= most_kept(graph.nnz(), 0.3)
    assert len(report.stages) == 2 and all(s.reconstruction.loss == "kl" for s in report.stages)
    assert [r.program for r in report.layers] == ["relu", "residual", "linear"]


def test_the_command_line_prunes_in_stages_and_shows_them(digits_mlp, tmp_path):
    import subprocess
    clf, Xtr, *_ = digits_mlp
    nettrim.adapters.sklearn.from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr)
    run = subprocess.run([sys.executable, "-m", "nettrim.cli", "prune", str(tmp_path / "model.npz"), "--calib",
                          str(tmp_path / "calib.npy"), "-o", str(tmp_path / "small.npz"), "--sparsity", "0.9",
                          "--method", "magnitude", "--stages", "2", "--reconstruct", "kl", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "small.json").read_text())
    assert [s["stage"] for s in report["stages"]] == [1, 2] and report["stages"][1]["reconstruction"]["loss"] == "kl"
    assert report["nnz"] <= most_kept(report["nnz_before"], 1 - 0.9)
    shown = subprocess.run([sys.executable, "-m", "nettrim.cli", "report", str(tmp_path / "small.json")],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "stage 2: 90% asked" in shown.stdout and "held-out KL divergence" in shown.stdout
