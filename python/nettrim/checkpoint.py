"""Resumable runs: every finished layer saved in a directory, keyed by everything that decides it.

A run's fingerprint has parts, each a hash: the whole model (every step, its kind and
settings, activations, pooling, every weight: nettrim's ``.npz`` layout of it), the
calibration data, every option of the run, and nettrim's version.  ``run.json`` holds them;
every layer file holds them too, with a hash of its own arrays, so that a layer file is never
taken for another run's (with ``run.json`` deleted, or a file copied in) and a file rewritten
since is refused.  A mismatch says which part differs.  On load a layer's matrices are checked
against the layer (shapes, float32, finite).
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict

import numpy as np

from . import npz_layout
from .errors import InvalidArgument
from .io import atomic_json, atomic_savez, first_line
from .report import LayerReport
from .version import VERSION

PARTS = {"model": "model", "calibration": "calibration data", "options": "options", "version": "nettrim version"}


class CheckpointMismatch(InvalidArgument):
    """A checkpoint directory holds another run's layers (the message says which part differs)."""


def _hash_arrays(arrays):
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.asarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fingerprint(net, X, options):
    """``{part: hash}`` of a run: the model, the calibration data, the options, the version."""
    model = npz_layout.nettrim_arrays(net.steps, net.input_shape)
    return {"model": _hash_arrays(model), "calibration": _hash_arrays({"X": X}),
            "options": hashlib.sha256(json.dumps(options, sort_keys=True, default=repr).encode()).hexdigest(),
            "version": VERSION}


def _differs(found, want):
    """The parts of a run that differ, in words."""
    if not isinstance(found, dict):
        return "the run (written by another version of nettrim)"
    parts = [PARTS[p] for p in PARTS if found.get(p) != want[p]]
    return ", ".join(parts) or "nothing"


class Checkpoint:
    """Finished layers of one run (model, calibration data, options) in ``directory``.

    A directory holding another run's layers is refused (:class:`CheckpointMismatch`, saying
    what differs) rather than silently mixed in; :func:`clear` empties it of nettrim's files."""

    def __init__(self, directory, net, X, options):
        self.directory = str(directory)
        self.net = net
        self.parts = fingerprint(net, X, options)
        os.makedirs(self.directory, exist_ok=True)
        meta = os.path.join(self.directory, "run.json")
        if os.path.exists(meta):
            try:
                with open(meta) as f:
                    found = json.load(f).get("run")
            except (ValueError, AttributeError, OSError) as e:
                raise InvalidArgument(f"checkpoint: {meta} cannot be read ({e}); use an empty directory or remove it") \
                    from None
            if found != self.parts:
                raise CheckpointMismatch(f"checkpoint: {self.directory} holds a run with another "
                                         f"{_differs(found, self.parts)}; use an empty directory, or remove its "
                                         "files (nettrim prune --force does)")
        else:
            stale = layer_files(self.directory)
            if stale:
                raise CheckpointMismatch(f"checkpoint: {self.directory} holds layer files ({stale[0]} ...) but no "
                                         "run.json saying which run they belong to; use an empty directory, or "
                                         "remove them (nettrim prune --force does)")
            atomic_json(meta, {"run": self.parts})

    def _path(self, key, k):
        # The key says what the layer was pruned to (method and target); hashed for a file name.
        digest = hashlib.sha256(str(key).encode()).hexdigest()[:16]
        return os.path.join(self.directory, f"layer{k}-{digest}.npz")

    def get(self, key, k):
        """``(matrices, biases, report)`` of a finished layer, or None; checked against this run
        and against the layer (shapes, float32, finite)."""
        path = self._path(key, k)
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                groups = int(z["groups"])
                arrays = {f"{c}{g}": z[f"{c}{g}"] for g in range(groups) for c in "Wb"}
                d = json.loads(str(z["report"]))
                run, stored = json.loads(str(z["run"])), str(z["hash"])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise InvalidArgument(f"checkpoint: {path} cannot be read, damaged or truncated? "
                                  f"({first_line(e)}); delete it to recompute that layer") from None
        if run != self.parts:
            raise CheckpointMismatch(f"checkpoint: {path} belongs to a run with another {_differs(run, self.parts)}; "
                                     "use an empty directory, or remove its files (nettrim prune --force does)")
        if _hash_arrays({**arrays, "report": np.array(json.dumps(d, sort_keys=True))}) != stored:
            raise InvalidArgument(f"checkpoint: {path} was changed after it was written (its hash differs); delete it "
                                  "to recompute that layer")
        layer = self.net.layers[k]
        want = [layer.group_matrix(g) for g in range(layer.groups)]
        if groups != len(want):
            raise InvalidArgument(f"checkpoint: {path} holds {groups} groups, layer {layer.name} has {len(want)}; "
                                  "delete it to recompute that layer")
        for g, (W, b) in enumerate(want):
            for name, a, like in ((f"W{g}", arrays[f"W{g}"], W), (f"b{g}", arrays[f"b{g}"], b)):
                if a.shape != np.shape(like) or a.dtype != np.float32 or not np.isfinite(a).all():
                    raise InvalidArgument(f"checkpoint: {path}: {name} is {a.dtype} {a.shape}, expected finite float32 "
                                          f"{np.shape(like)} for layer {layer.name}; delete it to recompute that layer")
        return ([arrays[f"W{g}"] for g in range(groups)], [arrays[f"b{g}"] for g in range(groups)],
                LayerReport.from_dict(d))

    def put(self, key, k, matrices, biases, report):
        arrays = {}
        for g, (W, b) in enumerate(zip(matrices, biases)):
            arrays[f"W{g}"], arrays[f"b{g}"] = np.asarray(W, np.float32), np.asarray(b, np.float32)
        text = json.dumps(asdict(report), sort_keys=True)
        digest = _hash_arrays({**arrays, "report": np.array(text)})
        atomic_savez(self._path(key, k), {**arrays, "groups": np.array(len(matrices)), "report": np.array(text),
                                          "run": np.array(json.dumps(self.parts, sort_keys=True)),
                                          "hash": np.array(digest)})


def layer_files(directory):
    """nettrim's layer files in a checkpoint directory."""
    return sorted(f for f in os.listdir(directory) if f.startswith("layer") and f.endswith(".npz"))


def clear(directory):
    """Removes nettrim's files (``run.json``, the layer files) from a checkpoint directory."""
    directory = str(directory)
    if not os.path.isdir(directory):
        return
    for name in layer_files(directory) + (["run.json"] if os.path.exists(os.path.join(directory, "run.json")) else []):
        os.remove(os.path.join(directory, name))
