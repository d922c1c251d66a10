"""Masked fine-tuning: the zeros of a pruned network survive training, and accuracy recovers."""
import json

import nettrim
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_cli import nettrim_cli  # noqa: E402


def test_zeros_survive_and_adam_state_stays_zero(digits_cnn, monkeypatch):
    from nettrim.adapters.torch import from_torch
    model, Xtr, ytr, Xte, yte = digits_cnn
    torch.set_num_threads(1)
    net = from_torch(model, (1, 8, 8))
    # (without the final re-fit of the logits layer, which alone brings it to 0.94: a damaged network to tune)
    pruned, _ = nettrim.prune_network(net, Xtr, method="magnitude", sparsity=0.9, scheme="parallel", threads=1,
                                      final_refit=False)
    optimizers = []
    real_adam = torch.optim.Adam

    def spy(*args, **kwargs):
        opt = real_adam(*args, **kwargs)
        optimizers.append(opt)
        return opt

    monkeypatch.setattr(torch.optim, "Adam", spy)
    # A large rate and weight decay: anything that could revive a pruned weight gets its chance.
    tuned, report = nettrim.finetune(pruned, Xtr, ytr, epochs=2, lr=3e-3, weight_decay=1e-3, eval_data=(Xte, yte))
    for before, after in zip(pruned.layers, tuned.layers):
        np.testing.assert_array_equal(before.weight == 0, after.weight == 0)
    assert report.nnz == pruned.nnz() == tuned.nnz()
    # measured: magnitude at 90% removed leaves 0.3-0.5 accuracy; two epochs bring it back above 0.9
    # (torch trains with this CPU's kernels: the bounds leave room for another's)
    assert report.accuracy_after > report.accuracy_before + 0.1 and report.accuracy_after >= 0.8
    assert report.accuracy_after == pytest.approx(float(np.mean(tuned.predict(Xte) == yte)), abs=1e-6)
    assert len(report.losses) == 2 and report.losses[1] < report.losses[0]
    (opt,) = optimizers
    layers = [layer for layer in pruned.layers]
    weights = [p for p in opt.param_groups[0]["params"] if p.dim() >= 2]
    for layer, w in zip(layers, weights):
        zero = torch.as_tensor(layer.weight.T == 0 if isinstance(layer, nettrim.Dense) else layer.weight == 0)
        state = opt.state[w]
        assert not state["exp_avg"][zero].any() and not state["exp_avg_sq"][zero].any()


def test_an_mlp_and_bad_arguments(digits_mlp):
    from nettrim.adapters.sklearn import from_sklearn
    clf, Xtr, ytr, Xte, yte = digits_mlp
    pruned, _ = nettrim.prune_network(from_sklearn(clf), Xtr, method="magnitude", sparsity=0.95, threads=1)
    tuned, report = nettrim.finetune(pruned, Xtr, ytr, epochs=1, lr=1e-3)
    assert tuned.nnz() == pruned.nnz() and report.accuracy_after >= report.accuracy_before - 0.01
    assert "zeros kept" in str(report)
    with pytest.raises(ValueError, match="y: expected 1347 integer class labels"):
        nettrim.finetune(pruned, Xtr, ytr[:10])
    with pytest.raises(ValueError, match="epochs: expected"):
        nettrim.finetune(pruned, Xtr, ytr, epochs=0)
    with pytest.raises(ValueError, match="y: labels up to 12"):
        nettrim.finetune(pruned, Xtr, np.full(len(Xtr), 12))


def test_cli_prunes_then_finetunes(digits_mlp, tmp_path):
    from nettrim.adapters.sklearn import from_sklearn
    clf, Xtr, ytr, Xte, yte = digits_mlp
    from_sklearn(clf).save_npz(tmp_path / "model.npz")
    np.save(tmp_path / "calib.npy", Xtr[:500])
    np.savez(tmp_path / "train.npz", X=Xtr, y=ytr)
    np.savez(tmp_path / "test.npz", X=Xte, y=yte)
    out = nettrim_cli("prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"), "-o",
                      str(tmp_path / "p.npz"), "--method", "magnitude", "--sparsity", "0.95", "--finetune", "2",
                      "--train", str(tmp_path / "train.npz"), "--eval", str(tmp_path / "test.npz"), "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert "epoch 2/2" in out.stderr and "fine-tuned 2 epochs" in out.stdout
    report = json.loads((tmp_path / "p.json").read_text())
    tuned = report["finetune"]
    assert tuned["accuracy_after"] >= tuned["accuracy_before"] - 0.01
    assert tuned["losses"][1] < tuned["losses"][0]
    assert nettrim.Network.load_npz(tmp_path / "p.npz").nnz() == report["nnz"] == tuned["nnz"]
    missing = nettrim_cli("prune", str(tmp_path / "model.npz"), "--calib", str(tmp_path / "calib.npy"), "-o",
                          str(tmp_path / "q.npz"), "--sparsity", "0.5", "--finetune", "1")
    assert missing.returncode == 2 and "--finetune: needs --train" in missing.stderr
