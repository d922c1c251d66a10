"""Whole networks on Fashion-MNIST: test accuracy against the fraction of weights kept.

A 784-300-100-10 ReLU MLP (scikit-learn) and a small CNN (conv 5x5 16, pool, conv 5x5 32,
pool, dense 512-128-10; PyTorch CPU), both trained once and cached in bench/cache/, are
pruned with the parallel and cascade schemes at fixed eps_rel and at target sparsities for
the whole network.  Prints a table (accuracy, kept %, time per layer and in total, peak
memory, calibration rows) and writes bench/results/bench_network.{json,png}.

    python bench/bench_network.py            # both models, the full grid (over an hour on 2 cores; --models picks one)
    python bench/bench_network.py --quick    # MLP only, a short grid (a few minutes)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import resource
import time
import warnings

import nettrim  # noqa: E402
import numpy as np
from data import CACHE, accuracy_axes, fashion_mnist, train, trained_mlp  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def fashion_cnn_module(Xtr, ytr):
    """The benchmark CNN as a PyTorch module, trained (3 epochs, seeded) and cached."""
    import torch
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10))
    path = CACHE / "fashion_cnn.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        CACHE.mkdir(exist_ok=True)
        train(model, Xtr.reshape(-1, 1, 28, 28), ytr, epochs=3, lr=1e-3, batch=128)
        torch.save(model.state_dict(), path)
    model.eval()
    return model


def fashion_cnn(Xtr, ytr):
    """The benchmark CNN as a nettrim network."""
    from nettrim.adapters.torch import from_torch
    return from_torch(fashion_cnn_module(Xtr, ytr), (1, 28, 28))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(net, Xcal, Xte, yte, scheme, setting, max_samples, threads):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        pruned, report = nettrim.prune_network(net, Xcal, scheme=scheme, max_samples=max_samples,
                                               threads=threads, **setting)
    seconds = time.perf_counter() - t0
    return {"scheme": scheme, **setting, "kept": pruned.nnz() / net.size(),
            "accuracy": float(np.mean(pruned.predict(Xte) == yte)), "seconds": seconds,
            "layer_seconds": [r.seconds for r in report.layers], "layer_kept": [r.density for r in report.layers],
            "iterations": [r.iterations for r in report.layers], "rows": [r.samples for r in report.layers],
            "peak_rss_mib": peak_rss_mib(), "size": pruned.size_report()}


def table(model, base_acc, rows):
    head = f"{'model':5} {'scheme':8} {'setting':15} {'kept %':>7} {'acc':>6} {'Δacc':>6} {'time s':>7}  per layer s (kept %)"
    lines = [head, "-" * len(head)]
    for r in rows:
        setting = f"eps_rel={r['eps_rel']}" if "eps_rel" in r else f"sparsity={r['sparsity']}"
        layers = ", ".join(f"{s:.1f} ({100 * k:.0f})" for s, k in zip(r["layer_seconds"], r["layer_kept"]))
        lines.append(f"{model:5} {r['scheme']:8} {setting:15} {100 * r['kept']:7.1f} {r['accuracy']:6.3f} "
                     f"{r['accuracy'] - base_acc:+6.3f} {r['seconds']:7.1f}  {layers}")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (model, res) in zip(axes[0], results.items()):
        for scheme, marker in (("parallel", "o"), ("cascade", "s")):
            for kind, style in (("eps_rel", "--"), ("sparsity", "-")):
                pts = sorted((100 * r["kept"], r["accuracy"]) for r in res["runs"]
                             if r["scheme"] == scheme and kind in r)
                if pts:
                    how = "eps sweep" if kind == "eps_rel" else "target sparsity"
                    ax.plot(*zip(*pts), style, marker=marker, label=f"{scheme}, {how}")
        accuracy_axes(ax, res["accuracy"], "test accuracy",
                      f"Fashion-MNIST {model} ({res['calibration']} calibration samples)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="MLP only, a short grid")
    ap.add_argument("--calibration", type=int, default=2000, help="calibration samples (from the training set)")
    ap.add_argument("--max-samples", type=int, default=4000, help="rows per convolution problem")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--schemes", default="parallel,cascade")
    ap.add_argument("--eps", default="0.02,0.05,0.1", help="eps_rel values of the sweep")
    ap.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98", help="target sparsities (whole network)")
    args = ap.parse_args()
    Xtr, ytr, Xte, yte = fashion_mnist()
    cal = np.sort(np.random.default_rng(0).choice(len(Xtr), args.calibration, replace=False))
    eps_grid = [float(v) for v in args.eps.split(",") if v]
    sparsity_grid = [float(v) for v in args.sparsities.split(",") if v]
    models = ["mlp"] if args.quick else args.models.split(",")
    if args.quick:
        eps_grid, sparsity_grid = [0.05], [0.8, 0.95]
    stem = "bench_network_" + "_".join(models) + ("" if args.schemes == "parallel,cascade"
                                                  else "_" + args.schemes.replace(",", "_"))
    results = {}
    for model in models:
        if model == "mlp":
            Ws, bs = trained_mlp("fashion_mlp", (300, 100), Xtr, ytr)
            net, Xcal, Xev = nettrim.from_arrays(Ws, bs), Xtr[cal], Xte
        else:
            net = fashion_cnn(Xtr, ytr)
            Xcal, Xev = Xtr[cal].reshape(-1, 1, 28, 28), Xte.reshape(-1, 1, 28, 28)
        acc = float(np.mean(net.predict(Xev) == yte))
        print(f"\n{model}: {net}\n  {net.size()} weights, test accuracy {acc:.4f}", flush=True)
        runs = []
        results[model] = {"accuracy": acc, "weights": net.size(), "calibration": len(cal), "runs": runs}
        for scheme in args.schemes.split(","):
            for setting in [{"eps_rel": e} for e in eps_grid] + [{"sparsity": s} for s in sparsity_grid]:
                r = run(net, Xcal, Xev, yte, scheme, setting, args.max_samples, args.threads)
                runs.append(r)
                print(table(model, acc, [r]).splitlines()[-1], flush=True)
                save(results, stem)    # after every run: a long grid cut short keeps what it measured
        print()
        print(table(model, acc, runs))
        print(f"calibration samples: {len(cal)}; rows per layer: {runs[0]['rows']}; "
              f"peak RSS {max(r['peak_rss_mib'] for r in runs):.0f} MiB")
    png = save(results, stem)
    print(f"plot: {png}" if png else "(matplotlib not installed: no plot)")


def save(results, stem):
    """Write the results so far to ``stem``.json and .png; the PNG's path, or None without matplotlib."""
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{stem}.json", "w") as f:
        json.dump(results, f, indent=1)
    try:
        plot(results, RESULTS / f"{stem}.png")
    except ImportError:
        return None
    return RESULTS / f"{stem}.png"


if __name__ == "__main__":
    main()
