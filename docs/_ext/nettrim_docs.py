"""Parts of the documentation generated from the code, so that they cannot drift from it.

``.. nettrim-cli:: [COMMAND]``
    The ``--help`` text of ``nettrim`` or of one of its subcommands, from the parser that
    ``nettrim.cli`` builds (80 columns).

``.. nettrim-bench::``
    ``nettrim bench`` run while the docs build, on the digits MLP's second layer (300 samples):
    its table as text and its plot (``_generated/bench.png``), so that the page shows what the
    command prints now.

``.. nettrim-settings::``
    A table of the engine's settings: every name :class:`nettrim.LayerSolver` accepts, its
    default as ``nettrim._core.Settings()`` gives it, and a description kept here.  A
    setting without a description (or a description without a setting) is a warning, which
    fails the build under ``-W``: a new setting cannot go undocumented.
"""
from __future__ import annotations

import argparse
import os

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.util import logging

logger = logging.getLogger(__name__)


class CliHelp(Directive):
    optional_arguments = 1
    has_content = False

    def run(self):
        from nettrim.cli import _parser
        saved = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "80"       # argparse wraps to the terminal's width
        try:
            parser = _parser()
            if self.arguments:
                command = self.arguments[0]
                subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
                if command not in subparsers.choices:
                    raise self.error(f"nettrim-cli: no command {command!r} (have {', '.join(subparsers.choices)})")
                parser = subparsers.choices[command]
            text = parser.format_help().rstrip()
        finally:
            if saved is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = saved
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


# What each engine setting does; the defaults come from the engine itself.
DESCRIPTIONS = {
    "mode": '"relu": a ReLU follows the layer (the Omega / Omega^c split); "linear": sparse least squares '
            "(a logits layer).",
    "constraint": '"joint": one ball of radius eps for the whole layer; "neuron": one ball per output neuron.',
    "inactive": '"bounded": each inactive output (Y = 0) held at or below 0, or V (the papers\' program); '
                '"relu": their ReLU outputs counted in the ball with the active outputs\' errors.',
    "penalty": '"l1": the sum of absolute values; "group": the sum of the rows\' 2-norms (whole input neurons '
               "go), the bias row in l1.",
    "lam": "> 0 selects the regularized form, lam/2 times the squared error on Omega in the objective "
           "instead of the ball (eps is then unused). None: the constrained form.",
    "rho": "Initial penalty rho2 of the split Z2 = U (the soft threshold is 1/rho2).",
    "sigma": "Initial ratio rho2/rho1. None: 0.09 times the largest squared column norm of X.",
    "adaptive_rho": "Residual balancing of rho1 and rho2, each on its own.",
    "adapt_every": "Iterations between convergence checks, penalty updates and progress calls.",
    "adapt_bias": "Bias b toward the primal residual: rho_j is multiplied by clip(b sqrt(r_j/s_j), 0.1, 10).",
    "adapt_threshold": "A penalty changes only when that factor lies outside [1/t, t].",
    "alpha": "Over-relaxation, in (0, 2).",
    "max_iter": "Iteration limit (status max_iterations, a ConvergenceWarning).",
    "time_limit": "Seconds per solve (status time_limit, a ConvergenceWarning). None: no limit.",
    "tol": "Relative tolerance of the primal residuals and of the returned matrix's constraint violations.",
    "dual_tol": "Relative tolerance of the dual residuals (the residual rule only, gap_tol = 0).",
    "gap_tol": "> 0: converge only when the returned matrix is feasible and its relative gap to the dual "
               "bound is at most gap_tol. 0: the residual rule; the gap is reported.",
    "certify_bias": "The balancing bias used instead of adapt_bias once the returned matrix is feasible "
                    "but the gap is still open (LayerSolver and prune_network; prune_layer does not take it).",
    "polish": "Bias shift of the returned matrix, so that inactive outputs are exactly inactive "
              "(needs a bias).",
    "polish_margin": "The ADMM aims at the ball of radius eps (1 - margin), which leaves room for the shift.",
    "threads": "Engine threads per solve. 0: automatic (one for small layers, else the cores no other "
               "process is busy on), or NETTRIM_THREADS when set.",
}


def _default(value):
    name = getattr(value, "name", None)
    if name is not None and not isinstance(value, (int, float)):
        return f'"{name}"'
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class SettingsTable(Directive):
    has_content = False

    def run(self):
        from nettrim.solver import DEFAULTS, SETTINGS
        optional = {"lam", "sigma", "time_limit"}        # the engine's 0 means "none" / "automatic"
        names = list(SETTINGS)
        missing = [n for n in names if n not in DESCRIPTIONS]
        stale = [n for n in DESCRIPTIONS if n not in names]
        for n in missing:
            logger.warning(f"nettrim-settings: the engine setting {n!r} has no description in docs/_ext/nettrim_docs.py",
                           location=self.state.document.current_source)
        for n in stale:
            logger.warning(f"nettrim-settings: {n!r} is described but is no longer a setting",
                           location=self.state.document.current_source)
        order = [n for n in DESCRIPTIONS if n in names] + missing
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        for width in (18, 12, 70):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self._row(["setting", "default", "what it does"], literal=False)
        body = nodes.tbody()
        group += body
        for n in order:
            value = getattr(DEFAULTS, n)
            shown = "None" if n in optional and value == 0 else _default(value)
            body += self._row([n, shown, DESCRIPTIONS.get(n, "")], literal=True)
        return [table]

    @staticmethod
    def _row(cells, literal):
        row = nodes.row()
        for i, text in enumerate(cells):
            entry = nodes.entry()
            if literal and i < 2:
                entry += nodes.paragraph("", "", nodes.literal(text, text))
            else:
                entry += nodes.paragraph(text, text)
            row += entry
        return row


class BenchExample(Directive):
    has_content = False

    def run(self):
        import warnings

        import numpy as np
        from nettrim import benchmark
        from nettrim.adapters.sklearn import from_sklearn
        from nettrim.examples import digits_mlp
        env = self.state.document.settings.env
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf, Xtr, _, _, _ = digits_mlp()
            net = from_sklearn(clf)
            report = benchmark.bench_network_layer(net, Xtr[:300].astype(np.float32), "dense1", eps_rel=0.05,
                                                   solvers=list(benchmark.SOLVERS), time_limit=60, trace=True,
                                                   methods=True, threads=1)
        folder = os.path.join(env.srcdir, "_generated")
        os.makedirs(folder, exist_ok=True)
        report.plot(os.path.join(folder, "bench.png"))
        text = report.table()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        image = nodes.image(uri="_generated/bench.png", alt="objective and violation against time, per solver")
        return [block, image]


def setup(app):
    app.add_directive("nettrim-cli", CliHelp)
    app.add_directive("nettrim-bench", BenchExample)
    app.add_directive("nettrim-settings", SettingsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
