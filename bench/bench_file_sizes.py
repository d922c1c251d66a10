"""File sizes of pruned models written dense and with --sparse, in each format (issue 19).

    PYTHONPATH=python python bench/bench_file_sizes.py [--epochs 2]

A LeNet-5-like CNN (conv 1->20 5x5, pool, conv 20->50 5x5, pool, dense 800->500->10: 431k
weights, 1.7 MB as float32) trained on Fashion-MNIST, exported to ONNX, TorchScript and .npz
(nettrim's layout); pruned by magnitude at 50-98% (the file size depends on the nonzeros, not
on the method) and by Net-Trim at one eps; each pruned model written dense and with
``sparse=True``; the compact files are run (onnxruntime, torch after load_sparse) and compared
with the pruned network's own outputs.  Prints one table.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np


def lenet(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def train(torch, model, X, y, epochs):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for epoch in range(epochs):
        perm = torch.randperm(len(Xt), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(Xt), 128):
            batch = perm[i:i + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(Xt[batch]), yt[batch]).backward()
            opt.step()
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train", type=int, default=20000, help="training images used")
    args = ap.parse_args()
    import nettrim
    import torch
    from data import fashion_mnist
    from nettrim.adapters import read, write
    from nettrim.adapters.onnx import run_onnx
    from nettrim.adapters.torch import load_sparse
    torch.manual_seed(0)
    torch.set_num_threads(2)
    Xtr, ytr, Xte, yte = fashion_mnist()
    Xtr, Xte = Xtr.reshape(-1, 1, 28, 28)[:args.train], Xte.reshape(-1, 1, 28, 28)[:2000]
    ytr, yte = ytr[:args.train], yte[:2000]
    t0 = time.perf_counter()
    model = train(torch, lenet(torch), Xtr, ytr, args.epochs)
    with torch.no_grad():
        acc = float((model(torch.tensor(Xte)).argmax(1).numpy() == yte).mean())
    print(f"LeNet trained in {time.perf_counter() - t0:.0f} s, test accuracy {acc:.3f}")
    d = tempfile.mkdtemp(prefix="nettrim-sizes-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.tensor(Xte[:2]), f"{d}/m.onnx", dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
        torch.jit.save(torch.jit.script(model), f"{d}/m.pt")
    sources = {fmt: read(f"{d}/m.{ext}", input_shape=(1, 28, 28)) for fmt, ext in
               (("onnx", "onnx"), ("torch", "pt"))}
    sources["npz"] = read(_npz(sources["onnx"][0], f"{d}/m.npz"))
    calib = Xtr[:2000]
    runs = [(f"magnitude {s:.0%}", dict(method="magnitude", sparsity=s)) for s in (0.5, 0.8, 0.9, 0.95, 0.98)]
    runs.append(("Net-Trim eps 0.05", dict(eps_rel=0.05, scheme="parallel", max_samples=4000)))
    rows = [("pruning", "kept", "format", "input B", "dense B", "sparse B", "sparse/dense", "max |diff|")]
    for label, kw in runs:
        t = time.perf_counter()
        pruned, report = nettrim.prune_network(sources["onnx"][0], calib, **kw)
        kept = report.nnz / report.nnz_before
        print(f"{label}: {kept:.1%} kept, {time.perf_counter() - t:.0f} s", flush=True)
        ref = pruned.forward(Xte[:256])
        for fmt, (source, provenance) in sources.items():
            ext = {"onnx": "onnx", "torch": "pt", "npz": "npz"}[fmt]
            net = _with_weights(pruned, source)
            write(net, provenance, f"{d}/dense.{ext}")
            write(net, provenance, f"{d}/sparse.{ext}", sparse=True)
            if fmt == "onnx":
                got = run_onnx(f"{d}/sparse.onnx", Xte[:256])
            elif fmt == "torch":
                with torch.no_grad():
                    got = load_sparse(f"{d}/sparse.pt", model)(torch.tensor(Xte[:256])).numpy()
            else:
                got = nettrim.Network.load_npz(f"{d}/sparse.npz").forward(Xte[:256])
            sizes = [os.path.getsize(f"{d}/{n}.{ext}") for n in ("m", "dense", "sparse")]
            rows.append((label, f"{kept:.1%}", fmt, *map(str, sizes), f"{sizes[2] / sizes[1]:.3f}",
                         f"{np.abs(got - ref).max():.1e}"))
    from nettrim.reporting import format_table
    print(format_table(rows))


def _npz(net, path):
    net.save_npz(path)
    return path


def _with_weights(pruned, like):
    """The pruned weights in a copy of ``like`` (a network read from another file of the same model)."""
    out = like.copy()
    for a, b in zip(out.layers, pruned.layers):
        a.weight, a.bias = b.weight.copy(), b.bias.copy()
    return out


if __name__ == "__main__":
    main()
