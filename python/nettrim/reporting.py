"""Plain-text tables of pruning reports and models, for the command line and notebooks."""
from __future__ import annotations


def format_table(rows, rules=()):
    """Rows of strings as aligned columns (first column left, others right); ``rules`` are
    row indices before which a horizontal line is drawn (1 is always one)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    rule = "-" * len(lines[0])
    for at in sorted(set(rules) | {1}, reverse=True):
        lines.insert(at, rule)
    return "\n".join(lines)


def report_table(report):
    """Per layer: shape, weights before and after, eps, achieved error, iterations and solves, and
    time split into finding the eps (search or solution path) and the final solve with its re-fit.
    "max viol." is the largest violation of the constraints the layer keeps: on Omega only where
    the inactive outputs were not held inactive (``kept_inactive``; the relu re-fit).  A layer
    whose samples the solver held compressed (``form``) is marked with a "*" after its iterations."""
    rows = [("layer", "program", "shape", "weights", "kept", "kept %", "eps_rel", "rel. error", "max viol.",
             "iters", "solves", "search s", "final s", "time s")]
    compressed = any(r.form == "compressed" for r in report.layers)
    for r in report.layers:
        rows.append((r.name, r.program, "x".join(map(str, r.shape)), str(r.nnz_before), str(r.nnz),
                     f"{100 * r.nnz / max(1, r.nnz_before):.1f}",
                     f"{r.eps_rel:.3g}" if r.pruned else "dense", f"{r.relative_error:.4f}",
                     f"{max(r.omega_violation, r.complement_violation if r.kept_inactive else 0.0):.1e}",
                     str(r.iterations) + ("*" if r.form == "compressed" else " " if compressed else ""), str(r.solves),
                     f"{r.search_seconds:.2f}", f"{r.final_seconds:.2f}", f"{r.seconds:.2f}"))
    rows.append(("total", "", "", str(report.nnz_before), str(report.nnz),
                 f"{100 * report.nnz / max(1, report.nnz_before):.1f}", "", "", "",
                 str(sum(r.iterations for r in report.layers)), str(sum(r.solves for r in report.layers)),
                 "", "", f"{report.seconds:.2f}"))
    return format_table(rows, rules=[len(rows) - 1])


def model_table(net):
    """Per prunable layer: its index (``--layers #I``) and name, kind, shape, nonzeros, sparsity,
    bytes dense and as CSR."""
    sizes = net.size_report()
    rows = [("#", "layer", "kind", "shape", "weights", "nonzero", "sparsity %", "dense KiB", "CSR KiB")]
    for index, (layer, size) in enumerate(zip(net.layers, sizes["layers"])):
        rows.append((f"#{index}", layer.name, type(layer).__name__ + (" +ReLU" if layer.relu else ""),
                     "x".join(map(str, layer.shape)), str(layer.size), str(layer.nnz()),
                     f"{100 * (1 - layer.nnz() / max(1, layer.size)):.1f}", f"{size['dense_bytes'] / 1024:.1f}",
                     f"{size['sparse_bytes'] / 1024:.1f}"))
    rows.append(("", "total", "", "", str(net.size()), str(net.nnz()),
                 f"{100 * (1 - net.nnz() / max(1, net.size())):.1f}", f"{sizes['dense_bytes'] / 1024:.1f}",
                 f"{sizes['sparse_bytes'] / 1024:.1f}"))
    return format_table(rows, rules=[len(rows) - 1])


def held_out_words(report):
    """Why a report counts fewer calibration samples than were given, in words."""
    return (f"{report.held_out} more held out to measure how each layer's share of the target costs the "
            "network's outputs")


def report_summary(report):
    """A :class:`~nettrim.report.PruneReport` as text: one line of totals, then the per-layer
    table of ``nettrim prune`` (``PruneReport.summary()`` and ``str(report)``)."""
    kept = 100 * report.nnz / max(1, report.nnz_before)
    method = "Net-Trim" if report.method == "nettrim" else report.method
    head = (f"{method}, {report.scheme} scheme, {report.calibration_samples} calibration samples"
            + (f" ({held_out_words(report)})" if report.held_out else "")
            + f": {report.nnz} of {report.nnz_before} weights kept ({kept:.1f}%) in {report.seconds:.2f} s")
    return "\n".join([head, *run_lines(report), report_table(report)])


def run_lines(report):
    """What a report says of the run beside its totals and table, one line each: the memory
    budget's choice, the inactive outputs' program, the stages, the reconstruction."""
    lines = [line for line in (report.memory, report.inactive_choice) if line]
    lines += [stage.summary() for stage in report.stages]
    if report.stages:
        lines.append(f"per layer below: stage {len(report.stages)}'s eps_rel and errors, on the signals of the network "
                     f"stage {len(report.stages) - 1} left; weights counted from the trained network")
    if report.reconstruction is not None and not report.stages:
        lines.append(report.reconstruction.summary())
    if any(r.form == "compressed" for r in report.layers):
        lines.append("* solved compressed: the linear program from the samples' X^T X and X^T Y, at a cost per "
                     "iteration that does not grow with the samples")
    return lines
