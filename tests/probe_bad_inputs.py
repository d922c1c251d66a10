"""Run the bad-input table (tests/test_bad_input_table.py) one row per process and count the outcomes.

    PYTHONPATH=python python tests/probe_bad_inputs.py [--verbose]

Each API row runs in a forked child with its address space capped (4 GiB), so that a row that
allocates without checking fails fast instead of taking the machine, and a segfault or a hang
(60 s) is counted rather than ending the probe.  Outcomes:

- clean: the expected exception type, naming every name of the row (CLI: exit 2, one line);
- unclear: an error, but of another type, or a message that does not name the argument
  (CLI: a traceback-free error in more than one line, or another exit code);
- crash: killed by a signal, a hang, or (CLI) an uncaught traceback;
- silent: no error at all (the bad input was accepted).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("NETTRIM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import test_bad_input_table as table  # noqa: E402


def digits_mlp():
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:1347], idx[1347:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((128, 64), max_iter=300, random_state=0).fit(X[tr], d.target[tr])
    return clf, X[tr], d.target[tr], X[te], d.target[te]


def _child(row, ctx, conn):
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    warnings.simplefilter("ignore")
    try:
        conn.send(table.check_api(row, ctx))
    except pytest.skip.Exception as e:
        conn.send(f"skipped: {e}")
    except BaseException as e:       # noqa: BLE001 - anything the row let through
        conn.send(f"unclear: {type(e).__name__}: {e}")


def run_api(row, ctx, timeout=60):
    parent, child = mp.Pipe(duplex=False)
    proc = mp.get_context("fork").Process(target=_child, args=(row, ctx, child))
    proc.start()
    child.close()
    if parent.poll(timeout):
        try:
            result = parent.recv()
        except EOFError:
            result = None
        proc.join(5)
        if proc.exitcode is not None and proc.exitcode < 0:
            return f"crash: signal {-proc.exitcode}"
        return result if result is not None or proc.exitcode == 0 else f"crash: exit {proc.exitcode}"
    proc.join(1)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return "crash: hang"
    return f"crash: exit {proc.exitcode}"


def kind(outcome):
    return "clean" if outcome is None else outcome.split(":")[0]


def main(verbose=False):
    folder = Path(tempfile.mkdtemp(prefix="nettrim-probe-"))
    model = digits_mlp()
    table.prepare(folder, model)
    ctx = table.Ctx(folder, model)
    counts = {"clean": 0, "unclear": 0, "crash": 0, "silent": 0, "skipped": 0}
    for label, rows, run in (("API", table.API, lambda r: run_api(r, ctx)),
                             ("CLI", table.CLI, lambda r: table.check_cli(r, folder))):
        for row in rows:
            outcome = run(row)
            if label == "CLI" and (folder / "pwned").exists():
                outcome = "crash: the pickle's payload ran"
                (folder / "pwned").unlink()
            for leftover in ("out.npz", "out.onnx", "out.pt", "out.json"):
                if (folder / leftover).exists():
                    (folder / leftover).unlink()
            counts[kind(outcome)] += 1
            if verbose or outcome is not None:
                print(f"{label} {row[0]}: {outcome or 'clean'}"[:400], flush=True)
    tried = sum(counts.values()) - counts["skipped"]
    print(f"\n{tried} cases tried: {counts['clean']} clean, {counts['unclear']} unclear, {counts['crash']} crash, "
          f"{counts['silent']} silent (accepted){'; ' + str(counts['skipped']) + ' skipped' if counts['skipped'] else ''}")


if __name__ == "__main__":
    main("--verbose" in sys.argv)
