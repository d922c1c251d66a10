"""Pruning methods compared at matched nonzeros: test accuracy against sparsity, no retraining.

Every method of ``nettrim.prune_network(method=...)`` (Net-Trim, magnitude, Wanda, L-OBS,
SparseGPT, APoZ) prunes the same trained models in the same scheme from the same
calibration samples, at each target sparsity and at 2:4.  Scopes:

  --scope layer    every layer loses the same fraction (Net-Trim by a per-layer eps search)
  --scope network  Net-Trim shares one eps between layers; the other methods then get the
                   per-layer nonzeros Net-Trim ended with (matched layer by layer), except
                   magnitude (one global threshold) and APoZ (one neuron ranking)

Models: the digits MLP (64-128-64-10) and CNN (trained here in seconds, cached), and the
Fashion-MNIST MLP and CNN of bench_network.py (Debian's dataset-fashion-mnist).
``--finetune EPOCHS`` adds a masked fine-tuning pass (Adam, same for every method) for the
PyTorch models.  Without labels: ``--reconstruct LOSS`` re-fits every row's kept weights to the
trained network's outputs on the calibration inputs (``nettrim.reconstruct``, the same for
every method) and reports both accuracies; ``--stages K`` adds Net-Trim in K stages (with
``--reconstruct``, each stage reconstructed: ``prune_network(stages=K, reconstruct=LOSS)``).
Prints a table and writes bench/results/bench_methods_<models>.{json,png}.

    python bench/bench_methods.py                                   # digits models (a few minutes)
    python bench/bench_methods.py --models fashion-mlp --sparsities 0.9,0.95
    python bench/bench_methods.py --models fashion-mlp,fashion-cnn --sparsities 0.9,0.95,0.98 --nm "" \
        --scope network --methods nettrim,magnitude,lobs,sparsegpt --stages 3 --reconstruct kl --calibration 10000
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings

import nettrim  # noqa: E402
import numpy as np
from data import CACHE, accuracy_axes, digits, fashion_mnist, train, trained_mlp  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
METHODS = ["nettrim", "magnitude", "wanda", "lobs", "sparsegpt", "apoz"]


def digits_cnn(Xtr, ytr):
    """The test suite's digits CNN (conv-bn-relu-pool, conv-relu-pool, 128-64-10), cached."""
    import torch
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    path = CACHE / "digits_cnn.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        CACHE.mkdir(exist_ok=True)
        train(model, Xtr, ytr, epochs=20, lr=3e-3, batch=32)
        torch.save(model.state_dict(), path)
    model.eval()
    return model


def load(name, calibration=2000):
    """(network, torch module or None, Xcal, Xtr, ytr, Xte, yte) with inputs in the model's shape;
    ``calibration`` Fashion-MNIST training samples (digits: its whole training split)."""
    if name.startswith("digits"):
        Xtr, ytr, Xte, yte = digits()
        cal = np.arange(len(Xtr))
    else:
        Xtr, ytr, Xte, yte = fashion_mnist()
        cal = np.sort(np.random.default_rng(0).choice(len(Xtr), calibration, replace=False))
    if name == "digits-mlp":
        Ws, bs = trained_mlp("digits_mlp_128_64", (128, 64), Xtr, ytr, max_iter=300)
        return nettrim.from_arrays(Ws, bs), None, Xtr[cal], Xtr, ytr, Xte, yte
    if name == "fashion-mlp":
        Ws, bs = trained_mlp("fashion_mlp", (300, 100), Xtr, ytr)
        return nettrim.from_arrays(Ws, bs), None, Xtr[cal], Xtr, ytr, Xte, yte
    from nettrim.adapters.torch import from_torch
    side = 8 if name == "digits-cnn" else 28
    Xtr, Xte = Xtr.reshape(-1, 1, side, side), Xte.reshape(-1, 1, side, side)
    if name == "digits-cnn":
        model = digits_cnn(Xtr, ytr)
    else:
        from bench_network import fashion_cnn_module
        model = fashion_cnn_module(Xtr, ytr)
    return from_torch(model, (1, side, side)), model, Xtr[cal], Xtr, ytr, Xte, yte


def finetune(pruned, model, Xtr, ytr, epochs):
    """Masked fine-tuning of the pruned network written back into a copy of ``model``."""
    import torch
    from nettrim.adapters.torch import to_torch
    module = to_torch(pruned, model)
    masks = {m.weight: (m.weight != 0).float() for m in module.modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
    train(module, Xtr, ytr, epochs=epochs, lr=3e-4, batch=64, masks=masks)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="digits-mlp,digits-cnn")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98")
    ap.add_argument("--nm", default="2:4", help="N:M pattern to compare too ('' for none)")
    ap.add_argument("--scheme", default="cascade", choices=["parallel", "cascade"])
    ap.add_argument("--scope", default="layer", choices=["layer", "network"])
    ap.add_argument("--finetune", type=int, default=0, help="epochs of masked fine-tuning (PyTorch models)")
    ap.add_argument("--reconstruct", choices=["mse", "kl"], default=None,
                    help="also every row reconstructed without labels (nettrim.reconstruct with this loss)")
    ap.add_argument("--stages", type=int, default=0, help="also Net-Trim in this many stages (0: not)")
    ap.add_argument("--max-samples", type=int, default=4000)
    ap.add_argument("--calibration", type=int, default=2000, help="Fashion-MNIST calibration samples")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    methods = args.methods.split(",")
    if args.stages > 1:
        methods.insert(methods.index("nettrim") + 1 if "nettrim" in methods else 0, f"nettrim-{args.stages}-stages")
    targets = [float(s) for s in args.sparsities.split(",") if s] + ([args.nm] if args.nm else [])
    results = {}
    for name in args.models.split(","):
        net, model, Xcal, Xtr, ytr, Xte, yte = load(name, args.calibration)
        base = float(np.mean(net.predict(Xte) == yte))
        print(f"\n{name}: {net.size()} weights, test accuracy {base:.4f}, {len(Xcal)} calibration samples", flush=True)
        rows = []
        for target in targets:
            allocation = None
            for label in methods:
                method, stages = ("nettrim", args.stages) if label.endswith("-stages") else (label, 1)
                if isinstance(target, str) and (stages > 1 or not nettrim.methods.METHODS[method].nm):
                    continue
                kw = {"nm": target} if isinstance(target, str) else {"sparsity": target, "scope": args.scope}
                if (args.scope == "network" and allocation is not None and method not in ("magnitude", "apoz", "nettrim")
                        and not isinstance(target, str)):
                    kw = {"sparsity": allocation}           # Net-Trim's per-layer nonzeros
                if stages > 1:
                    kw["stages"] = stages
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
                    pruned, report = nettrim.prune_network(net, Xcal, scheme=args.scheme, method=method,
                                                           max_samples=args.max_samples, threads=args.threads, **kw)
                seconds = time.perf_counter() - t0
                rebuilt = None
                if args.reconstruct:
                    t1 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
                        if stages > 1:      # (each stage reconstructed, as prune_network does it)
                            rebuilt, _ = nettrim.prune_network(net, Xcal, scheme=args.scheme, method=method,
                                                               max_samples=args.max_samples, threads=args.threads,
                                                               reconstruct=args.reconstruct, **kw)
                        else:
                            rebuilt, _ = nettrim.reconstruct(pruned, net, Xcal, loss=args.reconstruct)
                    rebuilt_seconds = time.perf_counter() - t1 + (0 if stages > 1 else seconds)
                if label == "nettrim" and stages == 1:
                    # (a layer Net-Trim emptied stays just inside [0, 1) for the others: none kept)
                    allocation = [min(1 - r.density, 1 - 1e-9) for r in report.layers]
                row = {"method": label, "target": target, "kept": pruned.nnz() / net.size(),
                       "layer_kept": [r.density for r in report.layers],
                       "accuracy": float(np.mean(pruned.predict(Xte) == yte)), "seconds": seconds}
                if method == "nettrim":
                    row["inactive"] = report.inactive         # the program "auto" kept
                if rebuilt is not None:   # (time: the pruning and the reconstruction)
                    row.update(reconstructed=float(np.mean(rebuilt.predict(Xte) == yte)),
                               reconstructed_kept=rebuilt.nnz() / net.size(), reconstructed_seconds=rebuilt_seconds,
                               loss=args.reconstruct)
                if args.finetune and model is not None:
                    import torch
                    module = finetune(pruned, model, Xtr, ytr, args.finetune)
                    with torch.no_grad():
                        row["finetuned"] = float(np.mean(module(torch.tensor(Xte)).argmax(1).numpy() == yte))
                rows.append(row)
                print(_line(name, row), flush=True)
        results[name] = {"accuracy": base, "weights": net.size(), "calibration": len(Xcal), "scheme": args.scheme,
                         "scope": args.scope, "rows": rows}
        print("\n" + table(name, base, rows))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / (f"bench_methods_{args.models.replace(',', '_')}_{args.scheme}_{args.scope}"
                      + (f"_{args.calibration}" if args.calibration != 2000 and "fashion" in args.models else "")
                      + (f"_stages{args.stages}" if args.stages > 1 else "")
                      + (f"_{args.reconstruct}" if args.reconstruct else ""))
    with open(f"{stem}.json", "w") as f:
        json.dump(results, f, indent=1)
    try:
        plot(results, f"{stem}.png")
        print(f"plot: {stem}.png")
    except ImportError:
        print("(matplotlib not installed: no plot)")


def _line(name, r):
    tuned = f"  fine-tuned {r['finetuned']:.3f}" if "finetuned" in r else ""
    if "reconstructed" in r:
        tuned += f"  reconstructed {r['reconstructed']:.4f} ({r['reconstructed_seconds']:.1f} s)"
    program = f"  inactive {r['inactive']}" if r.get("inactive") else ""
    return (f"{name:12} {str(r['target']):5} {r['method']:10} kept {100 * r['kept']:5.1f}%  "
            f"acc {r['accuracy']:.3f}  {r['seconds']:6.1f} s{tuned}{program}")


def table(name, base, rows):
    """Accuracy per target (rows) and method (columns), each with its time."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    targets = list(dict.fromkeys(str(r["target"]) for r in rows))
    width = 30 if any("reconstructed" in r for r in rows) else 18
    head = f"{name + f' ({base:.3f})':22}" + "".join(f"{m:>{width}}" for m in methods)
    lines = [head, "-" * len(head)]
    for t in targets:
        cells = []
        for m in methods:
            r = next((r for r in rows if r["method"] == m and str(r["target"]) == t), None)
            cells.append(f"{'-':>18}" if r is None else _cell(r).rjust(18 if "reconstructed" not in r else 30))
        label = t if ":" in t else f"{100 * float(t):.0f}% removed"
        lines.append(f"{label:22}" + "".join(cells))
    return "\n".join(lines)


def _cell(r):
    """A row's accuracy and time; reconstructed: one-shot / reconstructed (their times)."""
    if "reconstructed" not in r:
        return f"{r['accuracy']:.3f} ({r['seconds']:.1f}s)"
    return f"{r['accuracy']:.3f} / {r['reconstructed']:.3f} ({r['seconds']:.0f}/{r['reconstructed_seconds']:.0f}s)"


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        for method in dict.fromkeys(r["method"] for r in res["rows"]):
            pts = sorted((100 * r["kept"], r["accuracy"]) for r in res["rows"]
                         if r["method"] == method and not isinstance(r["target"], str))
            ax.plot(*zip(*pts), marker="o", label=method, lw=2.5 if method == "nettrim" else 1.2)
        accuracy_axes(ax, res["accuracy"], "test accuracy (no retraining)",
                      f"{name}, {res['scheme']}, {res['scope']} scope")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
