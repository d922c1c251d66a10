"""Thread counts for numpy's BLAS, chosen by the machine's load.

Multi-threaded BLAS on a busy machine waits for descheduled threads at every barrier:
measured on 2 cores beside two busy processes, re-fitting the support of a Fashion-MNIST
first layer (785 x 2000 x 300) took 59 s with numpy's default threads and 0.87 s with one.
The engine chooses its own threads the same way (cpp/src/solver.cpp, resolve_threads).
"""
from __future__ import annotations

import contextlib
import os

from threadpoolctl import threadpool_limits


def busy_elsewhere():
    """Runnable threads of other processes now (Linux), or None where unknown."""
    try:
        with open("/proc/loadavg") as f:
            runnable = int(f.read().split()[3].split("/")[0])
        ours = 0
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2:stat.rfind(")") + 3] == "R":
                ours += 1
        return max(0, runnable - ours)
    except (OSError, ValueError, IndexError):
        return None


def idle_cores():
    """Processors no other process is running on now (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = busy_elsewhere()
    return cores if busy is None else max(1, min(cores, cores - busy))


@contextlib.contextmanager
def blas_threads(n=None):
    """numpy's BLAS limited to ``n`` threads (default: the idle cores) inside the block."""
    with threadpool_limits(limits=n or idle_cores(), user_api="blas"):
        yield
