"""The graph benchmark's models: ResNet-20, a small MobileNetV2 and a tiny ViT, trained on Fashion-MNIST.

The architectures are nettrim.zoo's; this script trains each once on one thread (seeded: the
initial weights and the batch order) and caches its state_dict at bench/cache/<name>.pt, with
the epochs and training time beside it in <name>.json.
The epochs are few, sized so that each model trains in about 8 minutes on one CPU thread:
enough for about 0.9 test accuracy, which is what a pruning benchmark needs, not the best
these architectures reach.

    python bench/graph_models.py                   # train what is not cached; accuracy, weights, time
    python bench/graph_models.py --export DIR      # also write DIR/<name>.pt (pickled module) and .onnx

From another bench script: ``from graph_models import trained; model = trained("resnet20")``.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import time
import warnings

from data import CACHE, fashion_mnist, train

# name: (constructor in nettrim.zoo, epochs, peak learning rate, weight decay)
MODELS = {
    "resnet20": ("resnet20", 2, 2e-3, 5e-4),
    "mobilenet": ("mobilenet_v2_small", 2, 3e-3, 5e-4),
    "vit": ("vit_tiny", 6, 2e-3, 5e-2),
}
BATCH = 128
WARMUP = 0.05  # fraction of the steps with a linear warm-up before the cosine decay


@functools.lru_cache(maxsize=1)
def data():
    """Fashion-MNIST as torch tensors, images shaped (N, 1, 28, 28): (Xtr, ytr, Xte, yte)."""
    import torch
    Xtr, ytr, Xte, yte = fashion_mnist()
    return (torch.from_numpy(Xtr).reshape(-1, 1, 28, 28), torch.from_numpy(ytr),
            torch.from_numpy(Xte).reshape(-1, 1, 28, 28), torch.from_numpy(yte))


def build(name):
    """The untrained model, its initial weights seeded."""
    import torch
    from nettrim import zoo
    torch.manual_seed(0)
    return getattr(zoo, MODELS[name][0])()


def fit(model, X, y, *, epochs, lr, weight_decay):
    """AdamW on cross-entropy, batch 128 in a seeded order per epoch, the learning rate warmed up
    linearly then decayed by a cosine to zero, step by step (the transformer needs the warm-up)."""
    import torch
    steps = epochs * math.ceil(len(X) / BATCH)
    warmup = max(1, int(WARMUP * steps))
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
    train(model, X, y, epochs=epochs, batch=BATCH, opt=opt, after_step=schedule.step)


def accuracy(model, X, y):
    import torch
    with torch.no_grad():
        predicted = torch.cat([model(X[i:i + 1000]).argmax(1) for i in range(0, len(X), 1000)])
    return float((predicted == y).float().mean())


def weight_count(model):
    """Entries of the weight matrices and kernels (Linear, Conv2d, and the q, k, v projection that
    nn.MultiheadAttention keeps outside any Linear): what pruning removes from; biases, norms and
    the positional embedding left out."""
    from torch import nn
    count = 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            count += m.weight.numel()
        elif isinstance(m, nn.MultiheadAttention):
            count += m.in_proj_weight.numel()
    return count


def trained(name):
    """The trained model in eval mode: from bench/cache/<name>.pt, else trained now and cached."""
    import torch
    model = build(name)
    path = CACHE / f"{name}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
        model.eval()
        return model
    Xtr, ytr, _, _ = data()
    _, epochs, lr, weight_decay = MODELS[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count the epochs were sized for
    t0 = time.perf_counter()
    try:
        fit(model, Xtr, ytr, epochs=epochs, lr=lr, weight_decay=weight_decay)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    CACHE.mkdir(exist_ok=True)
    torch.save(model.state_dict(), path)
    (CACHE / f"{name}.json").write_text(json.dumps({"epochs": epochs, "training_seconds": seconds,
                                                    "torch": torch.__version__}))
    return model


def export(name, directory):
    """Write <directory>/<name>.pt, the whole module pickled by torch.save (its classes are
    nettrim.zoo's, so it loads wherever nettrim is installed, with weights_only=False), and
    <name>.onnx (opset 17, TorchScript exporter, batch axis dynamic). Returns the two paths."""
    import torch
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = trained(name)
    pt, onnx = directory / f"{name}.pt", directory / f"{name}.onnx"
    torch.save(model, pt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, data()[2][:2], onnx, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return pt, onnx


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    parser.add_argument("--export", metavar="DIR", help="also write DIR/<name>.pt and DIR/<name>.onnx")
    args = parser.parse_args()
    _, _, Xte, yte = data()
    print(f"{'model':10} {'accuracy':>8} {'weights':>8} {'epochs':>6} {'train s':>8}")
    for name in args.models.split(","):
        model = trained(name)
        info = json.loads((CACHE / f"{name}.json").read_text())
        print(f"{name:10} {accuracy(model, Xte, yte):8.4f} {weight_count(model):8d} {info['epochs']:6d} "
              f"{info['training_seconds']:8.0f}", flush=True)
        if args.export:
            print("  wrote", *export(name, args.export))


if __name__ == "__main__":
    main()
