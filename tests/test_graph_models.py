"""Graph models from PyTorch: residual, depthwise, grouped, GELU, attention and concatenation,
read through torch.fx, pruned in both schemes and written back (nettrim.adapters.torch_graph)."""
import math

import nettrim
import numpy as np
import pytest
from nettrim.errors import InvalidArgument, UnsupportedModelError
from nettrim.methods import NetTrim, Target
from nettrim.methods.masks import most_kept
from nettrim.problem import layer_problems

# (layers of a few dozen weights: a search may land a weight over its target, then trimmed, with a note)
pytestmark = pytest.mark.filterwarnings("ignore::nettrim.errors.TargetWarning")

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
torch_graph = pytest.importorskip("nettrim.adapters.torch_graph")


def _randomize_norms(model):
    """Batch norms with statistics of their own (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.2 * torch.randn(n, generator=g))
    return model.eval()


class Residual(nn.Module):
    """A ResNet basic block between a stem and a head, then a depthwise conv into GELU."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.grouped = nn.Conv2d(c, 2 * c, 1, groups=2)
        self.head = nn.Linear(2 * c, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(y)) + x)
        x = F.gelu(self.depthwise(x))
        x = torch.relu(self.grouped(x))
        return self.head(x.mean((2, 3)))


class GeluMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(12, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.gelu(self.fc1(x)))))


class HandAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.q, self.k, self.v, self.proj = heads, *(nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        n, t, d = x.shape
        split = lambda z: z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2)   # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, d))


class Encoder(nn.Module):
    """Two pre-norm transformer blocks: one with nn.MultiheadAttention, one written by hand."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.ln = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.hand = HandAttention(dim, heads)
        self.up = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(2))
        self.down = nn.ModuleList(nn.Linear(2 * dim, dim) for _ in range(2))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        h = self.ln[0](x)
        x = x + self.mha(h, h, h, need_weights=False)[0]
        x = x + self.down[0](F.gelu(self.up[0](self.ln[1](x))))
        x = x + self.hand(self.ln[2](x))
        x = x + self.down[1](F.gelu(self.up[1](self.ln[3](x))))
        return self.head(x.mean(1))


class Branches(nn.Module):
    """Two convolutions side by side, concatenated (torch.cat), and a Conv1d model's pieces."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 5, padding=2)
        self.mix = nn.Conv2d(8, 6, 3, stride=2)
        self.seq = nn.Conv1d(6, 5, 3, padding=1)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        x = torch.cat([self.left(x), F.relu(self.right(x))], dim=1)
        x = F.relu(self.mix(x))
        x = F.relu(self.seq(x.flatten(2)))
        return self.head(x.mean(2))


MODELS = {
    "residual": (lambda: _randomize_norms(Residual()), (1, 8, 8),
                 {"stem": "relu", "conv1": "relu", "conv2": "residual", "depthwise": "linear", "grouped": "relu",
                  "head": "linear"}),
    "gelu": (lambda: GeluMLP().eval(), (12,), {"fc1": "linear", "fc2": "relu", "fc3": "linear"}),
    "encoder": (lambda: Encoder().eval(), (6, 8),
                {"embed": "linear", "mha.in_proj": "linear", "mha.out_proj": "linear", "up.0": "linear",
                 "down.0": "linear", "hand.q": "linear", "hand.k": "linear", "hand.v": "linear",
                 "hand.proj": "linear", "up.1": "linear", "down.1": "linear", "head": "linear"}),
    "branches": (lambda: Branches().eval(), (1, 8, 8),
                 {"left": "linear", "right": "relu", "mix": "relu", "seq": "relu", "head": "linear"}),
}


def _model(name):
    torch.manual_seed(0)
    build, shape, programs = MODELS[name]
    model = build()
    X = np.random.default_rng(0).standard_normal((120,) + shape).astype(np.float32)
    return model, X, shape, programs


def _run(module, X):
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_layer_gets_the_program_its_consumers_call_for(name):
    model, X, shape, programs = _model(name)
    graph, _ = nettrim.adapters.read(model, input_shape=shape)
    assert graph.programs() == programs
    np.testing.assert_allclose(graph.forward(X[:16]), _run(model, X[:16]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_graph_model_prunes_to_its_target_and_its_written_module_reproduces_it(name, scheme):
    model, X, shape, _ = _model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph, provenance = nettrim.adapters.read(model, input_shape=shape)
    pruned, report = nettrim.prune_network(graph, X, scheme=scheme, sparsity=0.5, max_samples=2000)
    assert pruned.nnz() <= most_kept(graph.size(), 0.5)
    assert all(r.status in ("converged", "done", "dense") for r in report.layers)
    written = nettrim.adapters.write(pruned, provenance)
    assert type(written) is type(model)
    np.testing.assert_allclose(_run(written, X[:16]), pruned.forward(X[:16]), rtol=1e-5, atol=1e-5)
    zeros = sum(int((p == 0).sum()) for p in torch_graph.pruned_weights(written, pruned))
    assert zeros == pruned.size() - pruned.nnz()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())    # the model is untouched


def test_the_residual_program_matches_clarabel():
    """relu(X U + c + S) within eps of relu(X W + b + S): nettrim's engine, through the shifted
    ReLU program, against the program as written, solved by Clarabel.  The engine's l1 norm
    counts the bias too, the shifted one: the objective is ||U||_1 + ||c + shift||_1."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(3)
    P, n, M = 60, 6, 3
    X = rng.standard_normal((P, n)).astype(np.float32)
    W = rng.standard_normal((n, M)).astype(np.float32)
    b = (0.3 * rng.standard_normal(M)).astype(np.float32)
    S = np.maximum(rng.standard_normal((P, M)), 0).astype(np.float32)       # a skip after a ReLU
    layer = nettrim.Dense(W, b, relu=True, name="residual")
    layer.residual = True
    problem, = layer_problems(layer, np.hstack([X, S]))
    eps_rel = 0.3
    eps = problem.eps(eps_rel)
    out = NetTrim(refit="none", dtype="float64", options=dict(tol=1e-7, gap_tol=1e-7, max_iter=20000)).prune(
        problem, Target(eps_rel=eps_rel))
    U, c = out.weight.astype(np.float64), problem.layer_bias(out.bias).astype(np.float64)

    Xd, Z, Sd = X.astype(np.float64), X.astype(np.float64) @ W + b, S.astype(np.float64)
    omega = (Z + Sd) > 0
    u, cc = cp.Variable((n, M)), cp.Variable(M)
    A = Xd @ u + np.ones((P, 1)) @ cp.reshape(cc, (1, M), order="C")
    constraints = [cp.norm(cp.multiply(omega, A - Z), "fro") <= eps,
                   cp.multiply(~omega, A + Sd) <= 0]
    shift = problem.shift.astype(np.float64)
    cp.Problem(cp.Minimize(cp.sum(cp.abs(u)) + cp.sum(cp.abs(cc + shift))), constraints).solve(solver=cp.CLARABEL)
    # nettrim's answer is feasible for the program as written (float64 re-check) ...
    A_ours = Xd @ U + c
    assert np.linalg.norm(np.where(omega, A_ours - Z, 0)) <= eps * (1 + 1e-4)
    assert np.max(np.where(omega, -np.inf, A_ours + Sd)) <= 1e-4 * np.abs(Z).max()
    # ... and at Clarabel's optimum
    ours, theirs = np.abs(U).sum() + np.abs(c + shift).sum(), np.abs(u.value).sum() + np.abs(cc.value + shift).sum()
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_a_model_in_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(12, 8), nn.GELU(), nn.Dropout(0.1), nn.Linear(8, 2))   # (fresh: training)
    with pytest.raises(InvalidArgument, match=r"2 \(Dropout\) is in training mode.*eval"):
        torch_graph.read(model, (12,))
    torch_graph.read(model.eval(), (12,))


def test_a_forward_pass_that_changes_between_calls_is_refused():
    class Noisy(GeluMLP):
        def forward(self, x):
            return F.dropout(super().forward(x), 0.5, training=True)      # (dropout forced on)

    with pytest.raises(InvalidArgument, match="different outputs"):
        torch_graph.read(Noisy().eval(), (12,))


def test_a_layer_that_cannot_be_pruned_is_named_and_layers_leaves_it_alone():
    model, X, shape, _ = _model("branches")
    model.left.padding_mode = "reflect"
    graph, _ = nettrim.adapters.read(model, input_shape=shape)
    with pytest.raises(UnsupportedModelError, match=r"'left'.*reflect.*layers="):
        nettrim.prune_network(graph, X, sparsity=0.5)
    with pytest.raises(InvalidArgument, match="apoz.*chain"):
        nettrim.prune_network(graph, X, sparsity=0.5, layers=["mix", "seq"], method="apoz")
    pruned, _ = nettrim.prune_network(graph, X, sparsity=0.5, layers=["mix", "seq"])
    assert pruned.nnz() < graph.nnz()
    np.testing.assert_allclose(graph.forward(X[:4]), _run(model, X[:4]), rtol=1e-5, atol=1e-5)


def test_masks_and_finetuning_keep_the_zeros():
    model, X, shape, _ = _model("residual")
    graph, _ = nettrim.adapters.read(model, input_shape=shape)
    pruned, _ = nettrim.prune_network(graph, X, scheme="parallel", sparsity=0.6, method="magnitude")
    masked = torch_graph.to_module(pruned, masks=True)
    assert hasattr(masked.conv2, "weight_mask") and float(masked.conv2.weight_mask.mean()) < 1
    y = np.random.default_rng(1).integers(0, 10, len(X))
    tuned, report = nettrim.finetune(pruned, X, y, epochs=1)
    assert tuned.nnz() <= pruned.nnz() and report.nnz == pruned.nnz()
    for before, after in zip(pruned.layers, tuned.layers):
        assert not np.any(after.matrix[before.matrix == 0])


@pytest.mark.parametrize("name, build", [
    ("resnet20", lambda zoo: zoo.resnet20(width=4)),
    ("mobilenet", lambda zoo: zoo.mobilenet_v2_small()),
    ("vit", lambda zoo: zoo.vit_tiny(dim=16, depth=1, heads=2, image_size=8)),
])
def test_the_benchmark_architectures_prune_from_a_pickled_file_through_the_cli(name, build, tmp_path):
    """nettrim.zoo's ResNet-20, MobileNetV2 and ViT, small: read from a .pt file by the command
    line (a pickled module: --trust-model), pruned, written, and the written file reproduces
    the pruned graph."""
    import subprocess
    import sys
    zoo = pytest.importorskip("nettrim.zoo")
    torch.manual_seed(0)
    model = _randomize_norms(build(zoo))
    programs = torch_graph.read(model, (1, 8, 8))[0].programs()
    if name == "resnet20":      # every block's second conv and the shortcut convs feed the add before a ReLU
        assert programs["layer1.0.conv2"] == "residual" and programs["layer2.0.downsample.0"] == "residual"
        assert programs["layer1.0.conv1"] == "relu"
    if name == "vit":
        assert {p for k, p in programs.items() if "attn" in k} == {"linear"}
    torch.save(model, tmp_path / "model.pt")
    X = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "calib.npy", X)
    out = subprocess.run([sys.executable, "-m", "nettrim.cli", "prune", str(tmp_path / "model.pt"), "--trust-model",
                          "--calib", str(tmp_path / "calib.npy"), "--input-shape", "1,8,8", "--eps-rel", "0.2",
                          "--scheme", "parallel", "--quiet", "-o", str(tmp_path / "small.pt")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    small = torch.load(tmp_path / "small.pt", weights_only=False)
    graph = torch_graph.read(small, (1, 8, 8))[0]
    assert graph.nnz() < graph.size()
    np.testing.assert_allclose(graph.forward(X[:4]), _run(small, X[:4]), rtol=1e-5, atol=1e-5)

    # ... and from an ONNX file of the same model, run by onnxruntime
    pytest.importorskip("onnxruntime")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # (the TorchScript-based exporter's deprecation notices)
        torch.onnx.export(model, torch.from_numpy(X[:2]), str(tmp_path / "model.onnx"), dynamo=False,
                          opset_version=17, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    out = subprocess.run([sys.executable, "-m", "nettrim.cli", "prune", str(tmp_path / "model.onnx"),
                          "--calib", str(tmp_path / "calib.npy"), "--eps-rel", "0.2", "--scheme", "parallel",
                          "--quiet", "-o", str(tmp_path / "small.onnx")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    written, _ = nettrim.adapters.read(str(tmp_path / "small.onnx"))
    assert written.nnz() < written.size()
    from nettrim.adapters.onnx import run_onnx
    np.testing.assert_allclose(written.forward(X[:4]), run_onnx(str(tmp_path / "small.onnx"), X[:4]),
                               rtol=1e-4, atol=1e-4)


def test_a_held_out_pass_that_starts_part_way_gives_the_whole_pass_result():
    """The allocation's held-out passes of a graph start from cached values (the trained
    model's, or refine's current allocation's): the same discrepancy as a whole pass."""
    from nettrim.allocation import held_out
    model, X, shape, _ = _model("residual")
    graph, _ = nettrim.adapters.read(model, input_shape=shape)
    pruned, _ = nettrim.prune_network(graph, X, scheme="parallel", sparsity=0.7, method="magnitude")
    other, _ = nettrim.prune_network(graph, X, scheme="parallel", sparsity=0.3, method="magnitude")
    cached = held_out(graph, X[:50])
    assert cached.trained is not None
    everything = {k: pruned.layers[k] for k in range(len(graph.layers))}
    trial = {**everything, 2: other.layers[2]}
    whole = np.sum((pruned.forward(X[:50]).astype(np.float64) - cached.reference) ** 2) / cached.norm2
    assert cached.discrepancy(everything) == pytest.approx(whole, rel=1e-6)
    cached.rebase(everything)
    mixed = graph.copy()
    for k, layer in trial.items():
        mixed.layers[k] = layer
    want = np.sum((mixed.forward(X[:50]).astype(np.float64) - cached.reference) ** 2) / cached.norm2
    assert cached.discrepancy(trial, changed=[2]) == pytest.approx(want, rel=1e-6)
    assert cached.discrepancy({2: other.layers[2]}) == pytest.approx(
        np.sum((graph_with(graph, {2: other.layers[2]}).forward(X[:50]).astype(np.float64) - cached.reference) ** 2)
        / cached.norm2, rel=1e-6)


def graph_with(graph, replaced):
    out = graph.copy()
    for k, layer in replaced.items():
        out.layers[k] = layer
    return out
