"""The ``nettrim`` command: demo, prune, report."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np


class CliError(Exception):
    """An error the user can act on: printed as one line, exit code 2."""


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("nettrim: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, MemoryError, FileNotFoundError, OSError) as e:
        print(f"nettrim: error: {e}", file=sys.stderr)
        return 2


def _parser():
    p = argparse.ArgumentParser(prog="nettrim", description="Convex layer-wise pruning of trained ReLU networks (Net-Trim).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("demo", help="train a small ReLU network on scikit-learn's digits, prune it, print before/after",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade", help="pruning scheme")
    d.add_argument("--sparsity", type=float, default=0.7, help="fraction of weights to remove (whole network)")
    d.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    d.add_argument("--plot", default="nettrim-demo.png", help="where to write a plot, if matplotlib is installed ('' for none)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("prune", help="prune a model (.npz) on calibration inputs",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("model", help="model file: .npz with W0, b0, W1, b1, ... (W as inputs x outputs)")
    r.add_argument("--calib", required=True, help="calibration inputs: .npy, or .npz with an array 'X' (samples x features)")
    r.add_argument("-o", "--output", required=True, help="pruned model (.npz); a JSON report is written beside it")
    r.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade", help="pruning scheme")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--eps", type=float, default=None, help="relative tolerance per layer (default 0.05)")
    g.add_argument("--sparsity", type=float, default=None, help="fraction of weights to remove (whole network)")
    r.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    r.add_argument("--max-samples", type=int, default=None, help="use at most this many calibration samples (seeded choice)")
    r.add_argument("--sparse", action="store_true", help="store the weights as CSR in the output .npz")
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.set_defaults(func=cmd_prune)

    t = sub.add_parser("report", help="print the per-layer table of a JSON report written by 'prune'")
    t.add_argument("report", help="the .json report")
    t.set_defaults(func=cmd_report)
    return p


def cmd_demo(args):
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    from .adapters.sklearn import from_sklearn
    from .schemes import prune_network

    print("nettrim demo: prune a ReLU network trained on scikit-learn's digits (8x8 images, 10 classes)\n")
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:1347], idx[1347:]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((128, 64), max_iter=300, random_state=0).fit(X[tr], d.target[tr])
    net = from_sklearn(clf)
    print(f"trained a 64-128-64-10 MLP in {time.perf_counter() - t0:.1f} s; test accuracy "
          f"{_accuracy(net, X[te], d.target[te]):.3f}")
    print(f"pruning with Net-Trim ({args.scheme} scheme, removing {100 * args.sparsity:.0f}% of the weights, "
          f"{len(tr)} calibration samples)...")
    pruned, report = prune_network(net, X[tr], scheme=args.scheme, sparsity=args.sparsity, threads=args.threads)
    print()
    print(_table(report))
    acc0, acc1 = _accuracy(net, X[te], d.target[te]), _accuracy(pruned, X[te], d.target[te])
    print(f"\ntest accuracy: {acc0:.3f} before, {acc1:.3f} after; weights kept: {report.nnz_after} of "
          f"{report.nnz_before} ({100 * report.nnz_after / report.nnz_before:.1f}%); {report.seconds:.1f} s")
    if args.plot:
        _demo_plot(net, pruned, args.plot)
    return 0


def _demo_plot(net, pruned, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(2, len(net.layers), figsize=(4 * len(net.layers), 6))
    for j, (a, b) in enumerate(zip(net.layers, pruned.layers)):
        for row, (layer, title) in enumerate(((a, "trained"), (b, "pruned"))):
            ax = axes[row, j]
            ax.imshow(np.abs(layer.matrix) > 0 if row else np.abs(layer.matrix), aspect="auto", cmap="Greys",
                      interpolation="nearest")
            ax.set_title(f"{layer.name} {title}: {layer.nnz()} weights")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    from .io import atomic_write
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)
    print(f"plot of the weight patterns: {path}")


def cmd_prune(args):
    from .io import atomic_json
    from .network import Network
    from .schemes import prune_network

    net = _load_model(args.model)
    X = _load_calibration(args.calib, net)
    if args.max_samples and len(X) > args.max_samples:
        X = X[np.sort(np.random.default_rng(0).choice(len(X), args.max_samples, replace=False))]
    kw = dict(sparsity=args.sparsity) if args.sparsity is not None else dict(eps_rel=args.eps or 0.05)

    def on_layer(i, r):
        if not args.quiet:
            print(f"  {r.name}: {r.nnz_after}/{r.nnz_before} weights kept, eps_rel {r.eps_rel:.3g}, "
                  f"{r.seconds:.1f} s", file=sys.stderr)

    pruned, report = prune_network(net, X, scheme=args.scheme, threads=args.threads, on_layer=on_layer, **kw)
    out = args.output if args.output.endswith(".npz") else args.output + ".npz"
    Network.save_npz(pruned, out, sparse=args.sparse)
    atomic_json(os.path.splitext(out)[0] + ".json", report.to_dict())
    if not args.quiet:
        print(_table(report))
        print(f"wrote {out} and {os.path.splitext(out)[0]}.json")
    return 0


def cmd_report(args):
    from .schemes import LayerReport, PruneReport
    try:
        with open(args.report) as f:
            d = json.load(f)
        layers = [LayerReport(**{**r, "shape": tuple(r["shape"])}) for r in d["layers"]]
    except (ValueError, KeyError, TypeError) as e:  # JSON and Unicode errors are ValueErrors
        raise CliError(f"{args.report}: not a nettrim report ({e})") from None
    print(_table(PruneReport(d["scheme"], layers, d["calibration_samples"], d["seconds"])))
    return 0


def _load_model(path):
    from .network import Network
    if not os.path.exists(path):
        raise CliError(f"model file not found: {path}")
    if not path.endswith(".npz"):
        raise CliError(f"{path}: unsupported model format (expected .npz)")
    try:
        return Network.load_npz(path)
    except (OSError, ValueError, KeyError) as e:
        raise CliError(f"{path}: cannot read the model ({e})") from None


def _load_calibration(path, net):
    if not os.path.exists(path):
        raise CliError(f"calibration file not found: {path}")
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: cannot read calibration inputs ({e})") from None
    if hasattr(data, "files"):
        if "X" not in data.files:
            raise CliError(f"{path}: expected an array named 'X' in the .npz, found {data.files}")
        data = data["X"]
    X = np.asarray(data)
    if X.ndim < 2 or int(np.prod(X.shape[1:])) != net.n_inputs:
        raise CliError(f"{path}: calibration inputs of shape {X.shape} do not match the model's "
                       f"{net.n_inputs} inputs")
    return X.reshape(len(X), -1)


def _accuracy(net, X, y):
    return float(np.mean(net.predict(X) == y))


def _table(report):
    rows = [("layer", "shape", "weights", "kept", "kept %", "eps_rel", "rel. error", "iters", "time s")]
    for r in report.layers:
        rows.append((r.name, "x".join(map(str, r.shape)), str(r.nnz_before), str(r.nnz_after),
                     f"{100 * r.nnz_after / max(1, r.nnz_before):.1f}", f"{r.eps_rel:.3g}",
                     f"{r.relative_error:.4f}", str(r.iterations), f"{r.seconds:.2f}"))
    rows.append(("total", "", str(report.nnz_before), str(report.nnz_after),
                 f"{100 * report.nnz_after / max(1, report.nnz_before):.1f}", "", "", "", f"{report.seconds:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
