"""Graph models (ResNet-20, a small MobileNetV2, a tiny ViT) pruned on Fashion-MNIST: test
accuracy without fine-tuning and after one epoch of masked fine-tuning (over 10,000 training
images by default, ``--finetune-samples``), per method, with time
and peak memory.  The models are bench/graph_models.py's (trained once, cached).

    python bench/bench_graph.py                              # every model, 50/70/90%
    python bench/bench_graph.py --models resnet20 --sparsities 0.9 --methods nettrim,magnitude

Each method runs in its scheme (``--schemes``, default cascade for every method; the cascade
was the better scheme of every method on the chains measured, docs/benchmarks.rst), on
``--calibration`` training images (2000 by default) and at most ``--max-samples`` rows per
layer.  ``*-alloc`` rows are Wanda, SparseGPT and L-OBS given nettrim's per-layer densities.
Results go to bench/results/graph.json and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import resource
import time
import warnings

import nettrim
import numpy as np
import torch
from data import fashion_mnist
from graph_models import trained

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def accuracy(model, X, y, batch=1000):
    right = 0
    with torch.no_grad():
        for s in range(0, len(X), batch):
            right += int((model(torch.from_numpy(X[s:s + batch])).argmax(1).numpy() == y[s:s + batch]).sum())
    return right / len(X)


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(name, sparsity, method, scheme, X, Xtr, ytr, Xte, yte, densities=None, max_samples=4000):
    graph, provenance = nettrim.adapters.read(trained(name), input_shape=(1, 28, 28))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if densities is None:
            pruned, report = nettrim.prune_network(graph, X, scheme=scheme, sparsity=sparsity, method=method,
                                                   max_samples=max_samples)
        else:
            pruned, report = nettrim.prune_network(graph, X, scheme=scheme, sparsity=[1 - d for d in densities],
                                                   scope="layer", method=method, max_samples=max_samples)
    seconds = time.perf_counter() - t0
    module = nettrim.adapters.write(pruned, provenance)
    one_shot = accuracy(module.eval(), Xte, yte)
    print(f"  ({name} {method}{'-alloc' if densities is not None else ''} {sparsity}: pruned in {seconds:.1f} s, "
          f"accuracy {one_shot:.4f})", flush=True)
    tuned, _ = nettrim.finetune(pruned, Xtr, ytr, epochs=1, lr=1e-4, batch_size=128, eval_data=(Xte[:500], yte[:500]))
    tuned_acc = accuracy(nettrim.adapters.torch_graph.to_module(tuned).eval(), Xte, yte)
    return dict(model=name, sparsity=sparsity, method=method + ("-alloc" if densities is not None else ""),
                scheme=scheme, removed=1 - pruned.nnz() / graph.size(), accuracy=one_shot, finetuned=tuned_acc,
                seconds=seconds, peak_mib=peak_mib(),
                densities=[r.nnz / max(1, r.nnz_before) for r in report.layers])


def summary_table(rows):
    """The README's table: per model and method, test accuracy at each sparsity, one-shot and
    after the fine-tuning epoch, and the pruning time at the highest sparsity."""
    sparsities = sorted({r["sparsity"] for r in rows})
    head = ("| model (dense) | method | " + " | ".join(f"{s:.0%} removed: one-shot / fine-tuned" for s in sparsities)
            + f" | time at {sparsities[-1]:.0%} |")
    lines = [head, "|" + "---|" * (3 + len(sparsities))]
    for model in dict.fromkeys(r["model"] for r in rows):
        for method, scheme in dict.fromkeys((r["method"], r["scheme"]) for r in rows if r["model"] == model):
            cells = {r["sparsity"]: r for r in rows
                     if r["model"] == model and r["method"] == method and r["scheme"] == scheme}
            accs = [f"{cells[s]['accuracy']:.3f} / {cells[s]['finetuned']:.3f}" if s in cells else "" for s in sparsities]
            last = cells.get(sparsities[-1])
            time = "" if last is None else f"{last['seconds']:.0f} s"
            dense = next(r["dense"] for r in rows if r["model"] == model)
            lines.append(f"| {model} ({dense:.3f}) | {method}, {scheme} | " + " | ".join(accs) + f" | {time} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,mobilenet,vit")
    parser.add_argument("--sparsities", default="0.5,0.7,0.9")
    parser.add_argument("--methods", default="nettrim,magnitude,wanda,sparsegpt,lobs")
    parser.add_argument("--scheme", default="cascade")
    parser.add_argument("--calibration", type=int, default=2000)
    parser.add_argument("--max-samples", type=int, default=4000)
    parser.add_argument("--table", action="store_true", help="print the summary table of the results and stop")
    parser.add_argument("--results", default="graph.json", help="file under bench/results/ to write (or --table)")
    parser.add_argument("--densities-from", default=None,
                        help="results file whose nettrim rows give the -alloc rows their densities (without "
                             "running nettrim again)")
    parser.add_argument("--finetune-samples", type=int, default=10000,
                        help="training images of the one epoch of masked fine-tuning")
    args = parser.parse_args()
    if args.table:       # (several files, comma-separated: their rows together)
        print(summary_table([r for name in args.results.split(",") for r in json.loads((RESULTS / name).read_text())]))
        return
    given = {} if args.densities_from is None else {
        (r["model"], r["sparsity"]): r["densities"] for r in json.loads((RESULTS / args.densities_from).read_text())
        if r["method"] == "nettrim"}
    torch.set_num_threads(2)
    Xtr, ytr, Xte, yte = fashion_mnist()
    Xtr, Xte = Xtr.reshape(-1, 1, 28, 28), Xte.reshape(-1, 1, 28, 28)
    rng = np.random.default_rng(0)
    X = Xtr[rng.choice(len(Xtr), args.calibration, replace=False)]
    ft = rng.choice(len(Xtr), min(args.finetune_samples, len(Xtr)), replace=False)
    rows = []
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / args.results
    for name in args.models.split(","):
        dense = accuracy(trained(name).eval(), Xte, yte)
        print(f"\n## {name}: dense test accuracy {dense:.4f}\n")
        print("| removed | method | scheme | accuracy | fine-tuned 1 epoch | time s | peak MiB |")
        print("|---|---|---|---|---|---|---|")
        for sparsity in map(float, args.sparsities.split(",")):
            densities = given.get((name, sparsity))
            for method in args.methods.split(","):
                r = run(name, sparsity, method, args.scheme, X, Xtr[ft], ytr[ft], Xte, yte,
                        max_samples=args.max_samples)
                r["dense"] = dense
                rows.append(r)
                print(f"| {r['removed']:.1%} | {r['method']} | {r['scheme']} | {r['accuracy']:.4f} | "
                      f"{r['finetuned']:.4f} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |", flush=True)
                if method == "nettrim":
                    densities = r["densities"]
                elif method in ("wanda", "sparsegpt", "lobs") and densities is not None:
                    r = run(name, sparsity, method, args.scheme, X, Xtr[ft], ytr[ft], Xte, yte, densities,
                            max_samples=args.max_samples)
                    r["dense"] = dense
                    rows.append(r)
                    print(f"| {r['removed']:.1%} | {r['method']} | {r['scheme']} | {r['accuracy']:.4f} | "
                          f"{r['finetuned']:.4f} | {r['seconds']:.1f} | {r['peak_mib']:.0f} |", flush=True)
                out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
