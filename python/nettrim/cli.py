"""The ``nettrim`` command: demo, prune, report, inspect, sweep."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from .methods import METHODS
from .reporting import format_table, model_table, report_table


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


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
    except (CliError, ValueError, TypeError, MemoryError, OSError, ImportError, EOFError) as e:
        print(f"nettrim: error: {e}", file=sys.stderr)
        return 2


def _parser():
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(prog="nettrim", formatter_class=fmt,
                                description="Convex layer-wise pruning of trained ReLU networks (Net-Trim). "
                                            "Run 'nettrim demo' to see it work, 'nettrim COMMAND --help' for details.")
    p.add_argument("--version", action="version", version=f"nettrim {__import__('nettrim').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", formatter_class=fmt,
                       help="train a small ReLU network on scikit-learn's digits, prune it, print before/after")
    d.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade", help="pruning scheme")
    d.add_argument("--sparsity", type=float, default=0.7, help="fraction of weights to remove (whole network)")
    d.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    d.add_argument("--plot", default="nettrim-demo.png", help="where to write a plot, if matplotlib is installed ('' for none)")
    d.add_argument("--quiet", action="store_true", help="no progress display")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("prune", formatter_class=fmt, help="prune a model (.npz, .onnx, PyTorch .pt/.pth) on calibration inputs")
    _model_arguments(r)
    r.add_argument("-o", "--output", required=True,
                   help="pruned model, in the input model's format; a JSON report is written beside it (.json)")
    _pruning_arguments(r)
    r.add_argument("--checkpoint", metavar="DIR", default=None,
                   help="save every finished layer in DIR; rerunning the same command resumes after the last one")
    r.add_argument("--sparse", action="store_true", help="also write the weights as CSR matrices to OUTPUT.sparse.npz")
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.set_defaults(func=cmd_prune)

    t = sub.add_parser("report", formatter_class=fmt, help="print the per-layer table of a JSON report written by 'prune'")
    t.add_argument("report", help="the .json report")
    t.set_defaults(func=cmd_report)

    n = sub.add_parser("inspect", formatter_class=fmt,
                       help="print a model's layers: shapes, nonzeros, sparsity, size dense and as CSR")
    n.add_argument("model", help="model file: .npz, .onnx or PyTorch .pt/.pth")
    n.add_argument("--input-shape", default=None, help="one sample's shape, e.g. 1,28,28 (convolutional PyTorch models)")
    n.set_defaults(func=cmd_inspect)

    w = sub.add_parser("sweep", formatter_class=fmt,
                       help="accuracy (or output error) against weights kept, over a range of eps or target sparsities")
    _model_arguments(w)
    w.add_argument("--eval", required=True, help="evaluation data: .npz with 'X' and (for accuracy) labels 'y', or .npy")
    w.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade", help="pruning scheme")
    g = w.add_mutually_exclusive_group()
    g.add_argument("--eps", default="0.02,0.05,0.1,0.2", help="comma-separated relative tolerances")
    g.add_argument("--sparsity", default=None, help="comma-separated target sparsities instead, e.g. 0.5,0.8,0.9")
    w.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    w.add_argument("--max-samples", type=int, default=8000, help="rows per convolution problem (seeded choice of positions)")
    w.add_argument("--seed", type=int, default=0, help="seed of the sampled positions")
    w.add_argument("--plot", default=None, help="PNG to write (default: MODEL-sweep.png beside the model)")
    w.add_argument("--quiet", action="store_true", help="print nothing but the table")
    w.set_defaults(func=cmd_sweep)
    return p


def _model_arguments(p):
    p.add_argument("model", help="model file: .npz (nettrim, or W0, b0, W1, b1, ... as inputs x outputs), "
                                 ".onnx, or PyTorch .pt/.pth (a pickled module or TorchScript)")
    p.add_argument("--calib", required=True,
                   help="calibration inputs: .npy, or .npz with an array 'X' (samples first, flat or the model's shape)")
    p.add_argument("--input-shape", default=None,
                   help="one sample's shape, e.g. 1,28,28; default: the calibration array's, or the model's")


def _pruning_arguments(p):
    p.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade",
                   help="cascade: each layer on the pruned network's signals (closer outputs); "
                        "parallel: every layer on the original's (independent)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--eps", type=float, default=None, help="relative error allowed per layer (default 0.05)")
    g.add_argument("--sparsity", type=float, default=None, help="fraction of weights to remove, e.g. 0.9")
    p.add_argument("--scope", choices=["network", "layer"], default="network",
                   help="with --sparsity: one tolerance for all layers that meets the target for the whole "
                        "network, or the target in every layer")
    p.add_argument("--method", choices=list(METHODS), default="nettrim",
                   help="nettrim, or another method for comparison (they need --sparsity or --nm)")
    p.add_argument("--nm", default=None, metavar="N:M",
                   help="N nonzeros in every M inputs of each neuron, e.g. 2:4 (nettrim, magnitude, wanda, sparsegpt)")
    p.add_argument("--structured", action="store_true",
                   help="nettrim: remove whole neurons (group penalty); their weights become zero")
    p.add_argument("--no-refit", dest="refit", action="store_false",
                   help="nettrim: keep the l1 solution's values (default: re-fit the kept weights)")
    p.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores)")
    p.add_argument("--max-samples", type=int, default=8000,
                   help="rows per convolution problem (a seeded choice of sample x pixel positions)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled positions")


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
    from .progress import Progress
    progress = Progress(len(net.layers), enabled=False if args.quiet else None)
    try:
        pruned, report = prune_network(net, X[tr], scheme=args.scheme, sparsity=args.sparsity, threads=args.threads,
                                       on_layer=progress.layer_done, progress=progress.solver_callback)
    finally:
        progress.close()
    print()
    print(report_table(report))
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
    from .models import model_format, save_model
    from .progress import Progress
    from .schemes import prune_network

    out = args.output
    fmt = model_format(args.model)
    if model_format(out) != fmt:      # before any work is done
        raise CliError(f"{out}: the output must have the model's format ({fmt}), e.g. "
                       f"{os.path.splitext(out)[0]}{os.path.splitext(args.model)[1]}")
    loaded, X = _load_model_and_data(args, args.model, args.calib)
    progress = Progress(len(loaded.net.layers), enabled=False if args.quiet else None)
    kw = _target(args)
    try:
        pruned, report = prune_network(loaded.net, X, scheme=args.scheme, threads=args.threads,
                                       max_samples=args.max_samples, seed=args.seed, checkpoint=args.checkpoint,
                                       on_layer=progress.layer_done, progress=progress.solver_callback, **kw)
    finally:
        progress.close()
    save_model(loaded, pruned, out)
    base = os.path.splitext(out)[0]
    written = [out]
    if args.sparse:
        pruned.save_npz(base + ".sparse.npz", sparse=True)
        written.append(base + ".sparse.npz")
    sizes = pruned.size_report()
    atomic_json(base + ".json", {**report.to_dict(), "model": args.model, "output": out,
                                 "size": sizes, "options": kw})
    written.append(base + ".json")
    if not args.quiet:
        print(report_table(report))
        print(f"size: {sizes['dense_bytes'] / 1024:.1f} KiB dense, {sizes['sparse_bytes'] / 1024:.1f} KiB as CSR")
        print("wrote " + ", ".join(written))
    return 0


def _target(args):
    kw = {"method": args.method}
    if args.nm:
        kw["nm"] = args.nm
    if args.method == "nettrim":
        kw.update(structured=args.structured, refit=args.refit)
    if args.sparsity is not None:
        return {**kw, "sparsity": args.sparsity, "sparsity_scope": args.scope}
    return {**kw, "eps_rel": 0.05 if args.eps is None else args.eps}


def cmd_report(args):
    from .schemes import PruneReport
    if not os.path.exists(args.report):
        raise CliError(f"report file not found: {args.report}")
    try:
        with open(args.report) as f:
            d = json.load(f)
        report = PruneReport.from_dict(d)
    except (ValueError, KeyError, TypeError) as e:  # JSON and Unicode errors are ValueErrors
        raise CliError(f"{args.report}: not a nettrim report ({e})") from None
    print(f"{d.get('model', '')} -> {d.get('output', '')}: {report.scheme} scheme, "
          f"{report.calibration_samples} calibration samples")
    print(report_table(report))
    if "size" in d:
        print(f"size: {d['size']['dense_bytes'] / 1024:.1f} KiB dense, "
              f"{d['size']['sparse_bytes'] / 1024:.1f} KiB as CSR")
    return 0


def cmd_inspect(args):
    from .models import load_model
    loaded = load_model(args.model, input_shape=_shape(args.input_shape))
    print(f"{args.model}: {loaded.format} model, input shape {loaded.net.input_shape}")
    print(model_table(loaded.net))
    return 0


def cmd_sweep(args):
    from .models import load_arrays
    from .progress import Progress
    from .schemes import prune_network

    loaded, X = _load_model_and_data(args, args.model, args.calib)
    net = loaded.net
    Xe, ye = load_arrays(args.eval, "evaluation data")
    _check_matches(net, Xe, args.eval)
    reference = net.forward(Xe)
    if args.sparsity:
        settings = [{"sparsity": float(v)} for v in args.sparsity.split(",")]
    else:
        settings = [{"eps_rel": float(v)} for v in args.eps.split(",")]
    rows = [("setting", "kept %", "accuracy" if ye is not None else "", "output error", "time s")]
    points = []
    base = f"{np.mean(np.argmax(reference, 1) == ye):.4f}" if ye is not None else ""
    rows.append(("trained", "100.0", base, "0", ""))
    for setting in settings:
        progress = Progress(len(net.layers), enabled=False if args.quiet else None)
        try:
            pruned, report = prune_network(net, X, scheme=args.scheme, threads=args.threads,
                                           max_samples=args.max_samples, seed=args.seed,
                                           on_layer=progress.layer_done, progress=progress.solver_callback,
                                           **setting)
        finally:
            progress.close()
        out = pruned.forward(Xe)
        err = float(np.linalg.norm(out - reference) / max(np.linalg.norm(reference), 1e-30))
        acc = float(np.mean(np.argmax(out, 1) == ye)) if ye is not None else None
        kept = pruned.nnz() / net.size()
        name, value = next(iter(setting.items()))
        rows.append((f"{name}={value:g}", f"{100 * kept:.1f}", "" if acc is None else f"{acc:.4f}",
                     f"{err:.4f}", f"{report.seconds:.1f}"))
        points.append((kept, acc if acc is not None else err))
    print(f"{args.model}: {args.scheme} scheme, {len(X)} calibration samples, {len(Xe)} evaluation samples")
    print(format_table(rows))
    plot = args.plot if args.plot is not None else os.path.splitext(args.model)[0] + "-sweep.png"
    if plot and _sweep_plot(points, ye is not None, float(base) if base else None, plot, args):
        print(f"plot: {plot}")
    return 0


def _sweep_plot(points, accuracy, base, path, args):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from .io import atomic_write
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = sorted(points)
    ax.plot([100 * k for k, _ in pts], [v for _, v in pts], "o-", label=f"Net-Trim, {args.scheme}")
    if accuracy and base is not None:
        ax.axhline(base, color="grey", lw=0.8, label="trained")
    ax.set_xlabel("weights kept (%)")
    ax.set_ylabel("test accuracy" if accuracy else "relative output error")
    ax.set_title(os.path.basename(args.model))
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
    return True


def _shape(text):
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise CliError(f"--input-shape: expected integers such as 1,28,28, got {text!r}") from None


def _load_model_and_data(args, model_path, calib_path):
    """The model and its calibration inputs, checked against each other."""
    from .models import load_arrays, load_model, model_format
    model_format(model_path)                      # unsupported extension: say so before reading data
    if not os.path.exists(model_path):
        raise CliError(f"model file not found: {model_path}")
    X, _ = load_arrays(calib_path, "calibration inputs")
    shape = _shape(args.input_shape) or (tuple(X.shape[1:]) if X.ndim > 2 else None)
    loaded = load_model(model_path, input_shape=shape)
    _check_matches(loaded.net, X, calib_path)
    return loaded, X


def _check_matches(net, X, path):
    if int(np.prod(X.shape[1:])) != net.n_inputs:
        raise CliError(f"{path}: inputs of shape {X.shape} do not match the model's input "
                       f"{'x'.join(map(str, net.input_shape))} ({net.n_inputs} values per sample)")


def _accuracy(net, X, y):
    return float(np.mean(net.predict(X) == y))


if __name__ == "__main__":
    sys.exit(main())
