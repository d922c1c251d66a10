"""A one-line progress display on stderr: layers done, the eps trial or curve point being solved,
and the ADMM iteration of the solve running.

It draws only on a terminal (and not with ``--quiet``); otherwise it stays silent, so logs
and pipes get the final table alone.  Redraws are throttled to ten a second.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time


class Progress:
    def __init__(self, total_layers, *, enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = (self.stream.isatty() if enabled is None else enabled)
        self.total, self.done, self.solves = total_layers, 0, 0
        self.status = self.iteration = ""
        self._last = 0.0
        # One line of the terminal's width (a longer one wraps at every redraw and fills the
        # screen with its pieces), read when the display starts.
        self.width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        self._lock = threading.Lock()
        self._start = time.perf_counter()

    def solver_callback(self, iteration, primal, dual, elapsed):
        """For ``prune_layer(progress=...)``: called by the engine as it iterates."""
        self.iteration = f"ADMM iteration {iteration:5d}, primal residual {primal:.1e}"
        self._draw()

    def trial(self, layer, kind, number, eps_rel, density):
        """For ``prune_network(on_trial=...)``: a solve of an eps search or a curve finished."""
        with self._lock:
            self.status = f"{layer}: {kind} {number}, eps_rel {eps_rel:.3g} keeps {100 * density:.1f}%"
        self._draw(force=True)

    def layer_done(self, index, report):
        with self._lock:
            self.done += 1
            self.status = f"{report.name}: {report.nnz}/{report.nnz_before} weights kept"
            self.iteration = ""
        self._draw(force=True)

    def _draw(self, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 20
        filled = int(width * self.done / max(1, self.total))
        line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} layers "
                f"{now - self._start:6.1f} s  {self.status}" + (f"; {self.iteration}" if self.iteration else ""))
        self.stream.write(line[:self.width + 1].ljust(self.width + 1))
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
