"""The ``nettrim`` command: demo, prune, report, inspect, sweep."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
import traceback
import warnings

import numpy as np

from . import benchmark
from ._threads import blas_threads
from ._validate import MAX_THREADS, check_int, check_output_path, check_threads
from .adapters import check_writable, file_format, write
from .adapters import read as read_model
from .adapters.sklearn import from_sklearn
from .checkpoint import CheckpointMismatch
from .checkpoint import clear as clear_checkpoint
from .distributed import connect, disconnect
from .errors import NettrimError
from .examples import digits_mlp
from .finetuning import finetune
from .io import atomic_json, atomic_write, load_arrays, sha256_file
from .methods import METHODS
from .options import PruneOptions
from .progress import Progress
from .prune import prune_network
from .report import PruneReport
from .reporting import format_table, held_out_words, model_table, report_table, run_lines


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where there is none to show: no value (None, False) and on/off
    flags (``--no-refit`` would otherwise read "(default: True)", the default of its
    destination, not of the flag)."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line ('nettrim: error: ...'), exit code 2, like every other error."""

    def error(self, message):
        command = self.prog.split()[-1] if " " in self.prog else ""
        hint = f" (see 'nettrim {command} --help')" if command else " (see 'nettrim --help')"
        self.exit(2, f"nettrim: error: {message}{hint}\n")


class CliError(NettrimError):
    """An error the user can act on: printed as one line, exit code 2."""


_FLAGS = {"eps_rel": "--eps-rel", "sparsity": "--sparsity", "scope": "--scope", "method": "--method",
          "allocation": "--allocation", "layers": "--layers", "floor": "--floor",
          "nm": "--nm", "structured": "--structured", "threads": "--threads", "max_samples": "--max-samples",
          "seed": "--seed", "checkpoint": "--checkpoint", "scheme": "--scheme", "input_shape": "--input-shape",
          "refit": "--refit", "block_outputs": "--block-outputs", "memory_budget": "--memory-budget",
          "scheduler": "--scheduler", "workers": "--workers", "backend": "--backend",
          "final_refit": "--no-final-refit", "reconstruct": "--reconstruct", "stages": "--stages", "inactive": "--inactive", "max_iter": "--max-iter",
          "time_limit": "--time-limit", "layer": "--layer", "solvers": "--solvers"}


def _message(e, args):
    """One line; an API argument's name replaced by the option or file the user gave."""
    text = " ".join(str(e).strip().splitlines()) or type(e).__name__
    head, sep, rest = text.partition(": ")
    names = dict(_FLAGS)
    if getattr(args, "calib", None):
        names["calibration_inputs"] = args.calib
    if getattr(args, "input_shape", None) is None and getattr(args, "calib", None):
        names["input_shape"] = f"the samples of {args.calib} (or --input-shape)"
    if sep and head in names:
        return f"{names[head]}: {rest}"
    return text


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        if getattr(args, "quiet", False):
            warnings.simplefilter("ignore")        # (--quiet: nothing but errors, and what was asked for)
        warnings.showwarning = _one_line_warning
        return _run(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line on stderr (Python's format adds the source line that raised it)."""
    print(f"nettrim: warning: {message}", file=sys.stderr)


def _run(args):
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("nettrim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away ('nettrim report ... | head'): not an error of ours.  Python
        # would report the failed flush at exit; stdout goes to /dev/null instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (NettrimError, MemoryError, OSError, ImportError) as e:
        # What the user can act on: nettrim's own errors (bad arguments, files, models, numerics)
        # and the documented built-ins (memory, files, a missing optional package).
        print(f"nettrim: error: {_message(e, args)}", file=sys.stderr)
        return 2
    except Exception:
        # Anything else is a bug in nettrim: the traceback, and where to report it.
        traceback.print_exc()
        print("nettrim: internal error (a bug): please report it with the command and the traceback above",
              file=sys.stderr)
        return 70


TRUST_HELP = ("read a pickled PyTorch module (torch.save(model, path)). Unpickling runs whatever code the file "
              "names, so a crafted .pt file can do anything your account can: use this only for files from a "
              "source you trust. Without it .pt files are read with torch.load(weights_only=True), which runs "
              "no code (TorchScript and ONNX models need no such trust)")


def _parser():
    fmt = _HelpFormatter
    p = _Parser(prog="nettrim", formatter_class=fmt,
                                description="Convex layer-wise pruning of trained ReLU networks (Net-Trim). "
                                            "Run 'nettrim demo' to see it work, 'nettrim COMMAND --help' for details.")
    p.add_argument("--version", action="version", version=f"nettrim {__import__('nettrim').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", formatter_class=fmt,
                       help="train a small ReLU network on scikit-learn's digits, prune it, print before/after")
    d.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade", help="pruning scheme")
    d.add_argument("--sparsity", type=float, default=0.7, help="fraction of weights to remove (whole network)")
    d.add_argument("--threads", type=int, default=0,
                   help="engine threads (0: automatic, following the machine's load)")
    d.add_argument("--plot", default="nettrim-demo.png", help="where to write a plot, if matplotlib is installed ('' for none)")
    d.add_argument("--quiet", action="store_true", help="print nothing but the result and errors")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("prune", formatter_class=fmt, help="prune a model (.npz, .onnx, PyTorch .pt/.pth) on calibration inputs")
    _model_arguments(r)
    r.add_argument("-o", "--output", required=True,
                   help="pruned model, in the input model's format; a JSON report is written beside it (.json)")
    _pruning_arguments(r)
    r.add_argument("--checkpoint", metavar="DIR", default=None,
                   help="save every finished layer in DIR; rerunning the same command resumes after the last one")
    r.add_argument("--sparse", action="store_true",
                   help="write the model so that its file shrinks with the pruning: .onnx with compact "
                        "initializers (runs in onnxruntime as it is), .npz with CSR weights (nettrim's layout), "
                        ".pt as a sparse state dict (restore with nettrim.adapters.torch.load_sparse(path, model))")
    r.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                   help="after pruning, train the remaining weights for EPOCHS epochs with the zeros held fixed "
                        "(PyTorch; needs --train)")
    r.add_argument("--train", default=None, metavar="DATA",
                   help="training data for --finetune: .npz with 'X' and integer labels 'y'")
    r.add_argument("--eval", default=None, metavar="DATA",
                   help="with --finetune: .npz with 'X' and 'y' on which accuracy is reported before and after "
                        "(default: the training data)")
    r.add_argument("--force", action="store_true",
                   help="allow OUTPUT to be the input model (or the calibration file), overwriting it; and start a "
                        "--checkpoint folder that holds another run's layers anew")
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.set_defaults(func=cmd_prune)

    t = sub.add_parser("report", formatter_class=fmt, help="print the per-layer table of a JSON report written by 'prune'")
    t.add_argument("report", help="the .json report")
    t.set_defaults(func=cmd_report)

    n = sub.add_parser("inspect", formatter_class=fmt,
                       help="print a model's layers: shapes, nonzeros, sparsity, size dense and as CSR")
    n.add_argument("model", help="model file: .npz, .onnx or PyTorch .pt/.pth")
    n.add_argument("--input-shape", default=None, help="one sample's shape, e.g. 1,28,28 (convolutional PyTorch models)")
    n.add_argument("--trust-model", action="store_true", help=TRUST_HELP)
    n.set_defaults(func=cmd_inspect)

    w = sub.add_parser("sweep", formatter_class=fmt,
                       help="accuracy (or output error) against weights kept, over several eps or target sparsities")
    _model_arguments(w)
    w.add_argument("--eval", required=True, help="evaluation data: .npz with 'X' and (for accuracy) labels 'y', or .npy")
    _pruning_arguments(w, several=True)
    w.add_argument("--plot", default=None, help="PNG to write (default: MODEL-sweep.png beside the model)")
    w.add_argument("--quiet", action="store_true", help="print nothing but the table")
    w.set_defaults(func=cmd_sweep)

    bb = sub.add_parser("bench", formatter_class=fmt,
                        help="one layer's program solved by nettrim and by the reference solvers, side by side")
    _model_arguments(bb)
    bb.add_argument("--layer", required=True, help="the layer: its name or index (as 'nettrim inspect' lists them)")
    bb.add_argument("--eps-rel", default="0.05", help="relative tolerance(s), comma-separated: a table for each")
    bb.add_argument("--solvers", default=",".join(benchmark.SOLVERS),
                    help="comma-separated, from: " + ", ".join(benchmark.SOLVERS) + " (cvxpy's need "
                         "'pip install \"nettrim[bench]\"'; those not installed are skipped with a note)")
    bb.add_argument("--time-limit", type=float, default=60.0, help="seconds per solver")
    bb.add_argument("--threads", type=int, default=0, help="engine threads (0: automatic)")
    bb.add_argument("--max-samples", type=int, default=8000, help="rows of a convolution's program (sampled positions)")
    bb.add_argument("--methods", action="store_true",
                    help="also prune the layer by magnitude, Wanda, L-OBS and SparseGPT to nettrim's nonzeros")
    bb.add_argument("--plot", default=None, help="PNG: objective and violation against time for each solver "
                                                  "(one file per eps, suffixed when there are several)")
    bb.add_argument("--json", default=None, help="write the tables as JSON")
    bb.add_argument("--quiet", action="store_true", help="print nothing but the tables")
    bb.set_defaults(func=cmd_bench)
    return p


def _model_arguments(p):
    p.add_argument("model", help="model file: .npz (nettrim, or W0, b0, W1, b1, ... as inputs x outputs), "
                                 ".onnx, or PyTorch .pt/.pth (a pickled module or TorchScript)")
    p.add_argument("--calib", required=True,
                   help="calibration inputs: .npy, or .npz with an array 'X' (samples first, flat or the model's shape)")
    p.add_argument("--input-shape", default=None,
                   help="one sample's shape, e.g. 1,28,28 (convolutional models that do not state it); default: "
                        "the calibration array's, or the model's")
    p.add_argument("--trust-model", action="store_true", help=TRUST_HELP)


def _pruning_arguments(p, several=False):
    """The options of pruning, the same for every command that prunes.  A comma-separated list
    gives one value per pruned layer; with ``several`` (sweep), space-separated values are
    separate runs."""
    runs = dict(nargs="+") if several else {}
    what = " (several, space-separated: one run each)" if several else ""
    p.add_argument("--scheme", choices=["parallel", "cascade"], default="cascade",
                   help="cascade: each layer on the pruned network's signals (closer outputs); "
                        "parallel: every layer on the original's (independent)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--eps-rel", default=None, metavar="EPS_REL", **runs,
                   help="relative error allowed per layer (default 0.05)" + what)
    g.add_argument("--eps", dest="eps_deprecated", default=None, help=argparse.SUPPRESS)
    g.add_argument("--sparsity", default=None, metavar="FRACTION", **runs,
                   help="fraction of weights to remove, e.g. 0.9 (of the pruned layers together; with --scope "
                        "layer, of each), or one per pruned layer, comma-separated, e.g. 0.5,0.9,0.2" + what)
    p.add_argument("--scope", choices=["network", "layer"], default="network",
                   help="with one --sparsity: for the pruned layers together (shared out by --allocation), or "
                        "for every layer")
    p.add_argument("--allocation", choices=["curves", "shared", "uniform"], default="curves",
                   help="nettrim, --scope network: how the target is shared out among layers: each layer's "
                        "solution path and the least output discrepancy (curves), one eps for all (shared), or "
                        "the same fraction everywhere (uniform)")
    p.add_argument("--layers", default=None, metavar="NAMES",
                   help="the layers to prune, comma-separated names or indices (see 'nettrim inspect'): a name "
                        "first; 'name:N' or '#I' where a name is also another layer's index. The others stay "
                        "dense. Default: all")
    p.add_argument("--method", choices=list(METHODS), default="nettrim",
                   help="nettrim, or another method for comparison (they need --sparsity or --nm)")
    p.add_argument("--nm", default=None, metavar="N:M",
                   help="N nonzeros in every M inputs of each neuron, e.g. 2:4 (nettrim, magnitude, wanda, sparsegpt)")
    p.add_argument("--structured", action="store_true",
                   help="nettrim: remove whole neurons (group penalty); their weights become zero")
    p.add_argument("--refit", choices=["relu", "bounded", "none"], default="relu",
                   help="nettrim: re-fit the kept weights by least squares with the inactive outputs' ReLU error "
                        "counted (relu, default), or kept inactive (bounded, Net-Trim's program), or not (none)")
    p.add_argument("--no-refit", dest="refit", action="store_const", const="none",
                   help="nettrim: keep the l1 solution's values (the same as --refit none)")
    p.add_argument("--no-final-refit", dest="final_refit", action="store_false",
                   help="parallel scheme: keep the last layer as pruned (without it, its kept weights are "
                        "re-fitted at the end to the pruned network's signals)")
    p.add_argument("--reconstruct", nargs="?", const="mse", choices=["mse", "kl"], default=None, metavar="LOSS",
                   help="after the layer-wise pruning, re-fit every kept weight at once so that the pruned network's "
                        "outputs match the trained one's on the calibration inputs (no labels; needs torch): their "
                        "squared error (mse, the default) or, for a classifier's logits, the divergence of its class "
                        "probabilities (kl)")
    p.add_argument("--stages", type=int, default=1, metavar="K",
                   help="reach --sparsity in K whole-network targets on a cubic schedule, each stage pruning the "
                        "network the last one left (with --reconstruct, re-fitted after every stage); default 1")
    p.add_argument("--inactive", choices=["auto", "relu", "bounded"], default=None,
                   help="nettrim: the outputs a ReLU sets to 0 on the calibration data: their ReLU outputs "
                        "counted in the error (relu), or each held at or below 0 (bounded, the papers' program); "
                        "auto: a network-wide --sparsity (--allocation curves) is met with each, and the network that "
                        "errs less on held-out samples is kept (twice the time); for other targets, bounded. "
                        "Default: auto")
    p.add_argument("--floor", choices=["refit", "trained"], default="refit",
                   help="nettrim, cascade: the tolerance floor from the trained weights re-fitted to the pruned "
                        "signals, or from the trained weights (the papers')")
    p.add_argument("--threads", type=int, default=0,
                   help="engine threads (0: automatic, following the machine's load; on one machine Net-Trim's "
                        "result is the same bit for bit with any number)")
    p.add_argument("--max-samples", type=int, default=8000,
                   help="rows per convolution problem (a seeded choice of sample x pixel positions)")
    p.add_argument("--max-iter", type=int, default=None, metavar="N",
                   help="nettrim: the most ADMM iterations of one solve (default: the engine's)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="nettrim: the most seconds one solve may take (default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled positions and held-out samples")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the parallel scheme's layers (and the allocation's curves) on a Dask cluster: its "
                        "scheduler's address (tcp://host:port), or 'local' for --workers processes here")
    p.add_argument("--workers", type=int, default=None,
                   help="with --scheduler local: worker processes; otherwise the parallel scheme's layers "
                        "solved at a time in threads (default 1)")
    p.add_argument("--block-outputs", type=int, default=None, metavar="N",
                   help="parallel scheme: solve layers in blocks of N output neurons, each a job of its own")
    p.add_argument("--backend", default="cpu",
                   help="nettrim: the engine's backend ('cpu'; 'cuda' or 'cuda:tf32' in a CUDA build on a machine "
                        "with a GPU: see nettrim.backends())")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="e.g. 4GiB: use at most as many calibration rows per layer as fit (a seeded subset)")


def cmd_demo(args):
    if not 0 < args.sparsity < 1:
        raise CliError(f"--sparsity: expected a fraction in (0, 1) of the weights to remove, got {args.sparsity:g}")
    check_threads("--threads", args.threads)
    if args.plot:
        check_output_path("--plot", args.plot)
    print("nettrim demo: prune a ReLU network trained on scikit-learn's digits (8x8 images, 10 classes)\n")
    t0 = time.perf_counter()
    with blas_threads():
        clf, Xtr, ytr, Xte, yte = digits_mlp()
    net = from_sklearn(clf)
    print(f"trained a 64-128-64-10 MLP in {time.perf_counter() - t0:.1f} s; test accuracy "
          f"{_accuracy(net, Xte, yte):.3f}")
    print(f"pruning with Net-Trim ({args.scheme} scheme, removing {100 * args.sparsity:.0f}% of the weights, "
          f"{len(Xtr)} calibration samples)...")
    progress = Progress(len(net.layers), enabled=False if args.quiet else None)
    try:
        pruned, report = prune_network(net, Xtr, scheme=args.scheme, sparsity=args.sparsity, threads=args.threads,
                                       on_layer=progress.layer_done, on_trial=progress.trial,
                                       progress=progress.solver_callback)
    finally:
        progress.close()
    print()
    _print_table(report)
    acc0, acc1 = _accuracy(net, Xte, yte), _accuracy(pruned, Xte, yte)
    print(f"\ntest accuracy: {acc0:.3f} before, {acc1:.3f} after; weights kept: {report.nnz} of "
          f"{report.nnz_before} ({100 * report.nnz / report.nnz_before:.1f}%); {report.seconds:.1f} s")
    if args.plot:
        _demo_plot(net, Xtr, Xte, yte, (report.nnz / report.nnz_before, acc1), args)
    return 0


def _demo_plot(net, X, Xte, yte, result, args):
    """Accuracy against weights kept, Net-Trim (a few eps_rel) and magnitude pruning (one global
    threshold) at the same nonzeros, on the demo's model; the demo's own result marked."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install matplotlib)")
        return
    nettrim_points, magnitude_points = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rel in (0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6):
            pruned, report = prune_network(net, X, scheme=args.scheme, eps_rel=rel, threads=args.threads)
            kept = report.nnz / report.nnz_before
            nettrim_points.append((kept, _accuracy(pruned, Xte, yte)))
            other, _ = prune_network(net, X, scheme=args.scheme, method="magnitude", sparsity=1 - kept)
            magnitude_points.append((kept, _accuracy(other, Xte, yte)))
    fig, ax = plt.subplots(figsize=(6, 4))
    for points, label, style in ((nettrim_points, f"Net-Trim ({args.scheme}, eps_rel 0.02-0.6)", "o-"),
                                 (magnitude_points, "magnitude (global threshold)", "s--")):
        kept, acc = zip(*sorted(points))
        ax.plot(100 * np.array(kept), acc, style, label=label)
    ax.plot([100 * result[0]], [result[1]], "*", markersize=14, label="this run (allocation across layers)")
    ax.axhline(_accuracy(net, Xte, yte), color="grey", lw=0.8, ls=":", label="trained")
    ax.set_xscale("log")
    ax.set_xticks([2, 5, 10, 20, 50, 100])
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("weights kept (%)")
    ax.set_ylabel("test accuracy")
    ax.set_title("digits MLP, no retraining")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(args.plot, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    print(f"plot of accuracy against weights kept, Net-Trim and magnitude pruning: {args.plot}")


def cmd_prune(args):

    out = args.output
    fmt = file_format(args.model)
    if file_format(out) != fmt:      # before any work is done
        raise CliError(f"{out}: the output must have the model's format ({fmt}), e.g. "
                       f"{os.path.splitext(out)[0]}{os.path.splitext(args.model)[1]}")
    (kw, options), = _check_options(args)
    _check_outputs(args, _prune_outputs(args))
    tuning = _finetune_data(args)
    net, provenance, X = _load_model_and_data(args, args.model, args.calib)
    check_writable(provenance)
    progress = Progress(len(net.layers) * options.stages, enabled=False if args.quiet else None)
    try:
        with _cluster(args):
            try:
                pruned, report = prune_network(net, X, options=_with_progress(options, progress, args))
            except CheckpointMismatch:
                if not args.force:
                    raise
                clear_checkpoint(args.checkpoint)       # (refused before any work: start it anew)
                pruned, report = prune_network(net, X, options=_with_progress(options, progress, args))
    finally:
        progress.close()
    tuned = None
    if tuning:
        Xt, yt, eval_data = tuning
        say = (lambda e, n, loss: None) if args.quiet else \
            (lambda e, n, loss: print(f"fine-tuning: epoch {e}/{n}, loss {loss:.4f}", file=sys.stderr))
        pruned, tuned = finetune(pruned, Xt, yt, epochs=args.finetune, eval_data=eval_data, seed=args.seed,
                                 progress=say)
    digest = write(pruned, provenance, out, sparse=args.sparse)
    base = os.path.splitext(out)[0]
    sizes = pruned.size_report()
    files = {"input_bytes": os.path.getsize(args.model), "output_bytes": os.path.getsize(out), "sparse": args.sparse}
    # The report names the model file by its hash: two runs writing the same OUTPUT at once
    # can interleave their renames, and 'nettrim report' then says that the pair does not match.
    atomic_json(base + ".json", {**report.to_dict(), "model": args.model, "output": out, "output_sha256": digest,
                                 "files": files, "size": sizes,
                                 "options": {**kw, "scheduler": args.scheduler},
                                 **({"finetune": vars(tuned)} if tuned else {})})
    if not args.quiet:
        _print_table(report)
        print(f"weights: {sizes['dense_bytes'] / 1024:.1f} KiB dense, {sizes['sparse_bytes'] / 1024:.1f} KiB as CSR")
        if tuned:
            print(tuned.summary())
        print(_file_line(files, args))
        print(f"wrote {out}, {base}.json" + (_restore_hint(out) if args.sparse and fmt == "torch" else ""))
    return 0


def _file_line(files, args):
    return (f"model file: {files['input_bytes'] / 1024:.1f} KiB in, {files['output_bytes'] / 1024:.1f} KiB written"
            + (" (--sparse)" if files["sparse"] else " (dense; --sparse writes a file that shrinks with the pruning)"))


def _restore_hint(out):
    return f" (a sparse state dict: nettrim.adapters.torch.load_sparse({out!r}, model) restores it)"


def _check_options(args, several=False):
    """The runs of a command, ``[(kw, options)]``: prune_network's keyword arguments and the
    same options checked by :class:`~nettrim.PruneOptions` (the rules of every pruning run, in
    one place), before anything is read; errors named as on the command line."""
    if args.layers is not None and not [v for v in args.layers.split(",") if v.strip()]:
        raise CliError(f"--layers: expected comma-separated layer names or indices, got {args.layers!r}")
    if args.workers is not None:
        check_int("--workers", args.workers, low=1, high=MAX_THREADS, what="a number of workers")
    if args.scheduler is not None and args.workers is not None and args.scheduler != "local":
        raise CliError("--workers: a number of local worker processes goes with --scheduler local, not with the "
                       f"cluster at {args.scheduler}")
    runs = []
    for eps_rel, sparsity in _runs(args, several):
        kw = _target(args, eps_rel, sparsity)
        runs.append((kw, PruneOptions.checked(threads=args.threads, max_samples=args.max_samples, seed=args.seed,
                                              checkpoint=getattr(args, "checkpoint", None), **kw)))
    return runs


def _with_progress(options, progress, args):
    """The run's options with the command's progress display and Dask client."""
    return dataclasses.replace(options, on_layer=progress.layer_done, on_trial=progress.trial,
                               executor=getattr(args, "client", None),
                               solver_options={**options.solver_options, "progress": progress.solver_callback})


@contextlib.contextmanager
def _cluster(args):
    """The Dask client of --scheduler for the whole command (args.client), closed after it."""
    if args.scheduler is None:
        yield
        return
    try:
        args.client = connect(args.scheduler, workers=args.workers)
    except ImportError as e:
        raise CliError(f"--scheduler: {e}") from None
    try:
        yield
    finally:
        disconnect(args.client)
        args.client = None


def _finetune_data(args):
    """``(X, y, eval_data)`` for --finetune, read and checked before any pruning; None without it."""
    if not args.finetune:
        if args.train or args.eval:
            raise CliError(f"{'--train' if args.train else '--eval'}: only with --finetune EPOCHS")
        return None
    if args.finetune < 0:
        raise CliError(f"--finetune: expected a number of epochs >= 1, got {args.finetune}")
    if not args.train:
        raise CliError("--finetune: needs --train DATA (an .npz with 'X' and labels 'y')")
    X, y = load_arrays(args.train, "training data", need_labels=True)
    eval_data = load_arrays(args.eval, "evaluation data", need_labels=True) if args.eval else None
    return X, y, eval_data


def _inputs(args):
    """``[(what, path)]``: every file or folder the command reads (model, calibration, training
    and evaluation data, checkpoint)."""
    named = (("model", "model"), ("calib", "calibration file"), ("train", "training data"),
             ("eval", "evaluation data"), ("checkpoint", "checkpoint folder"))
    return [(what, getattr(args, attr)) for attr, what in named if getattr(args, attr, None)]


def cmd_bench(args):
    eps_values = _numbers("--eps-rel", args.eps_rel, 0.0, None, "relative tolerances > 0")
    if any(v <= 0 for v in eps_values):
        raise CliError(f"--eps-rel: expected relative tolerances > 0, got {args.eps_rel!r}")
    if not (np.isfinite(args.time_limit) and args.time_limit > 0):
        raise CliError(f"--time-limit: expected seconds > 0, got {args.time_limit}")
    plots = [] if not args.plot else [args.plot] if len(eps_values) == 1 else [
        f"{os.path.splitext(args.plot)[0]}-eps{v:g}.png" for v in eps_values]
    _check_outputs(args, [("--plot", p) for p in plots] + ([("--json", args.json)] if args.json else []))
    net, _, X = _load_model_and_data(args, args.model, args.calib)
    solvers = [name.strip() for name in args.solvers.split(",") if name.strip()]
    say = None if args.quiet else (lambda message: print(f"nettrim: {message}", file=sys.stderr, flush=True))
    reports = []
    for i, rel in enumerate(eps_values):
        report = benchmark.bench_network_layer(
            net, X, args.layer, max_samples=args.max_samples, eps_rel=rel, solvers=solvers,
            time_limit=args.time_limit, threads=check_threads("--threads", args.threads), trace=bool(plots),
            methods=args.methods, progress=say)
        print(("\n" if i else "") + report.table(), flush=True)
        reports.append(report)
        if plots:
            report.plot(plots[i])
        if report.interrupted:
            break
    if args.json:
        atomic_json(args.json, [r.to_dict() for r in reports])
    return 130 if reports[-1].interrupted else 0


def _check_outputs(args, outputs):
    """Each of ``outputs`` (``[(flag, path)]``) can be written and overwrites none of the inputs,
    compared by resolved path and by inode, before any work starts.  ``-o`` may replace the
    model or the calibration file with ``--force``; nothing else replaces an input."""
    for flag, out in outputs:
        for what, path in _inputs(args):
            if not _same_file(out, path):
                continue
            if flag == "-o" and what in ("model", "calibration file") and args.force:
                continue
            hint = "; pass --force to overwrite it" if flag == "-o" and what in ("model", "calibration file") else \
                "; choose another name"
            raise CliError(f"{flag}: {out} is the {what} {path}{hint}")
        check_output_path(flag, out)


def _prune_outputs(args):
    """The files ``nettrim prune`` writes: the model and its report."""
    return [("-o", args.output), ("-o (its report)", os.path.splitext(args.output)[0] + ".json")]


def _same_file(a, b):
    """Whether two paths name the same file: symbolic links and relative paths resolved."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _target(args, eps_rel=None, sparsity=None):
    """prune_network's keyword arguments for one run: the options and its eps_rel or sparsity."""
    kw = {"method": args.method, "scheme": args.scheme, "scope": args.scope, "allocation": args.allocation,
          "floor": args.floor, "block_outputs": args.block_outputs, "memory_budget": args.memory_budget,
          "final_refit": args.final_refit, "reconstruct": args.reconstruct or False, "stages": args.stages}
    if args.inactive is not None:
        kw["inactive"] = args.inactive
    if args.workers is not None and args.scheduler is None:
        kw["workers"] = args.workers
    if args.layers:
        kw["layers"] = [v.strip() for v in args.layers.split(",")]   # (names first: see check_layer_selection)
    if args.nm:
        kw["nm"] = args.nm
    if args.method == "nettrim" or args.refit != "relu":       # (another method refuses a re-fit)
        kw["refit"] = args.refit
    if args.method == "nettrim" or args.structured:
        kw["structured"] = args.structured
    if args.backend != "cpu":
        kw["backend"] = args.backend
    for flag in ("max_iter", "time_limit"):             # (the engine's; another method refuses them)
        if getattr(args, flag, None) is not None:
            kw[flag] = getattr(args, flag)
    if sparsity is not None:
        return {**kw, "sparsity": sparsity}
    return {**kw, "eps_rel": 0.05 if eps_rel is None else eps_rel}


def _fractions(flag, text):
    """One fraction in (0, 1), or a comma-separated list of fractions in [0, 1), one per layer."""
    values = _numbers(flag, text, 0, None, "fractions of the weights to remove")
    if len(values) == 1:
        if not 0 < values[0] < 1:
            raise CliError(f"{flag}: expected a fraction in (0, 1) of the weights to remove, got {text}")
        return values[0]
    if any(v >= 1 for v in values):
        raise CliError(f"{flag}: expected fractions in [0, 1), one per pruned layer, got {text}")
    return values


def _runs(args, several=False):
    """``[(eps_rel, sparsity)]``, one per run, checked and named as on the command line.
    ``--eps`` (deprecated: it always meant the relative tolerance) still works, with a warning."""
    eps = args.eps_rel
    if args.eps_deprecated is not None:
        print("nettrim: warning: --eps is deprecated (it always meant the relative tolerance): use --eps-rel",
              file=sys.stderr)
        eps = args.eps_deprecated.split(",") if several else args.eps_deprecated
    if args.sparsity is not None:
        return [(None, _fractions("--sparsity", t)) for t in (args.sparsity if several else [args.sparsity])]
    if eps is None:
        return [(e, None) for e in ((0.02, 0.05, 0.1, 0.2) if several else (0.05,))]
    values = [v for t in (eps if several else [eps]) for v in _numbers("--eps-rel", t, 0, None, "relative tolerances")]
    if not several and len(values) != 1:
        raise CliError(f"--eps-rel: expected one relative tolerance, got {eps}")
    return [(v, None) for v in values]


def _print_table(report):
    """The per-layer table, after the lines saying which samples were solved on and what the run
    did beside the layers (the program inactive="auto" kept, the stages, the reconstruction)."""
    if report.held_out:
        print(f"{report.calibration_samples} calibration samples solved on, {held_out_words(report)}")
    for line in run_lines(report):
        print(line)
    print(report_table(report))


def cmd_report(args):
    if not os.path.exists(args.report):
        raise CliError(f"report file not found: {args.report}")
    try:
        with open(args.report) as f:
            d = json.load(f)
        report = PruneReport.from_dict(d)
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSON and Unicode errors are ValueErrors
        raise CliError(f"{args.report}: not a nettrim report ({type(e).__name__}: {e})") from None
    print(f"{d.get('model', '')} -> {d.get('output', '')}: {report.scheme} scheme, "
          f"{report.calibration_samples} calibration samples")
    _print_table(report)
    if "size" in d:
        print(f"weights: {d['size']['dense_bytes'] / 1024:.1f} KiB dense, "
              f"{d['size']['sparse_bytes'] / 1024:.1f} KiB as CSR")
    if "files" in d:
        print(_file_line(d["files"], args))
    output, digest = d.get("output"), d.get("output_sha256")
    if output and digest:
        path = output if os.path.isabs(output) else os.path.join(os.path.dirname(os.path.abspath(args.report)), output)
        if not os.path.exists(path) and os.path.exists(output):
            path = output
        if not os.path.exists(path):
            print(f"nettrim: note: the model {output} is not there any more", file=sys.stderr)
        elif sha256_file(path) != digest:
            print(f"nettrim: note: {output} is not the model this report describes (its sha256 differs: "
                  f"rewritten since, by another run?)", file=sys.stderr)
    return 0


def cmd_inspect(args):
    net, provenance = read_model(args.model, input_shape=_shape(args.input_shape), trust=args.trust_model)
    print(f"{args.model}: {provenance.format} model, input shape {net.input_shape}, "
          f"{os.path.getsize(args.model) / 1024:.1f} KiB")
    print(model_table(net))
    return 0


def cmd_sweep(args):

    runs = _check_options(args, several=True)
    plot = args.plot if args.plot is not None else os.path.splitext(args.model)[0] + "-sweep.png"
    _check_outputs(args, [("--plot", plot)] if plot else [])
    net, _, X = _load_model_and_data(args, args.model, args.calib)
    Xe, ye = load_arrays(args.eval, "evaluation data")
    _check_matches(net, Xe, args.eval)
    reference = net.forward(Xe)
    rows = [("setting", "kept %", "accuracy" if ye is not None else "", "output error", "time s")]
    points = []
    base = f"{np.mean(np.argmax(reference, 1) == ye):.4f}" if ye is not None else ""
    rows.append(("trained", "100.0", base, "0", ""))
    with _cluster(args):
        for kw, options in runs:
            progress = Progress(len(net.layers) * options.stages, enabled=False if args.quiet else None)
            setting = {"eps_rel": kw["eps_rel"]} if "sparsity" not in kw else {"sparsity": kw["sparsity"]}
            try:
                pruned, report = prune_network(net, X, options=_with_progress(options, progress, args))
            finally:
                progress.close()
            out = pruned.forward(Xe)
            err = float(np.linalg.norm(out - reference) / max(np.linalg.norm(reference), 1e-30))
            acc = float(np.mean(np.argmax(out, 1) == ye)) if ye is not None else None
            kept = pruned.nnz() / net.size()
            name, value = next(iter(setting.items()))
            label = f"{name}={value:g}" if np.ndim(value) == 0 else f"{name}={','.join(f'{v:g}' for v in value)}"
            rows.append((label, f"{100 * kept:.1f}", "" if acc is None else f"{acc:.4f}",
                         f"{err:.4f}", f"{report.seconds:.1f}"))
            points.append((kept, acc if acc is not None else err))
    print(f"{args.model}: {args.scheme} scheme, {len(X)} calibration samples, {len(Xe)} evaluation samples")
    print(format_table(rows))
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
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = sorted(points)
    ax.plot([100 * k for k, _ in pts], [v for _, v in pts], "o-", label=f"{'Net-Trim' if args.method == 'nettrim' else args.method}, {args.scheme}")
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


def _numbers(flag, text, low, high, what):
    """A comma-separated list of numbers, each in range, or an error naming the flag and the value."""
    values = []
    for item in text.split(","):
        try:
            v = float(item)
        except ValueError:
            raise CliError(f"{flag}: expected comma-separated {what}, got {item.strip()!r} in {text!r}") from None
        if not np.isfinite(v) or v < low or (high is not None and not low < v < high) or (high is None and v < low):
            raise CliError(f"{flag}: expected comma-separated {what}, got {item.strip()} in {text!r}")
        values.append(v)
    return values


def _shape(text):
    if not text:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise CliError(f"--input-shape: expected positive integers such as 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise CliError(f"--input-shape: expected positive integers such as 1,28,28, got {text!r}")
    return shape


def _load_model_and_data(args, model_path, calib_path):
    """The model and its calibration inputs, checked against each other."""
    file_format(model_path)                      # unsupported extension: say so before reading data
    if not os.path.exists(model_path):
        raise CliError(f"model file not found: {model_path}")
    given = _shape(args.input_shape)
    X, _ = load_arrays(calib_path, "calibration inputs")
    shape = given or (tuple(X.shape[1:]) if X.ndim > 2 else None)
    net, provenance = read_model(model_path, input_shape=shape, trust=args.trust_model)
    _check_matches(net, X, calib_path)
    return net, provenance, X


def _check_matches(net, X, path):
    if int(np.prod(X.shape[1:])) != net.n_inputs:
        raise CliError(f"{path}: inputs of shape {X.shape} do not match the model's input "
                       f"{'x'.join(map(str, net.input_shape))} ({net.n_inputs} values per sample)")


def _accuracy(net, X, y):
    return float(np.mean(net.predict(X) == y))


if __name__ == "__main__":
    sys.exit(main())
