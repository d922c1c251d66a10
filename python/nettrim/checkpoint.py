"""Resumable runs: every finished layer saved in a directory, keyed by the run's inputs."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

import numpy as np

from .errors import InvalidArgument
from .io import atomic_json, atomic_savez


class Checkpoint:
    """Finished layers of one run (model, calibration data, options) in ``directory``.

    A directory holding another run's layers is refused rather than silently mixed in."""

    def __init__(self, directory, net, X, options):
        self.directory = str(directory)
        h = hashlib.sha256()
        for layer in net.layers:
            h.update(np.ascontiguousarray(layer.matrix).tobytes())
            h.update(layer.bias.tobytes())
        h.update(np.ascontiguousarray(X).tobytes())
        h.update(json.dumps(options, sort_keys=True, default=str).encode())
        self.fingerprint = h.hexdigest()
        os.makedirs(self.directory, exist_ok=True)
        meta = os.path.join(self.directory, "run.json")
        if os.path.exists(meta):
            try:
                with open(meta) as f:
                    found = json.load(f).get("fingerprint")
            except (ValueError, AttributeError, OSError) as e:
                raise InvalidArgument(f"checkpoint: {meta} cannot be read ({e}); use an empty directory or remove it") \
                    from None
            if found != self.fingerprint:
                raise InvalidArgument(f"checkpoint: {self.directory} holds a run with another model, calibration "
                                 f"data or options; use an empty directory or remove it")
        else:
            atomic_json(meta, {"fingerprint": self.fingerprint})

    def _path(self, key, k):
        # The key says what the layer was pruned to (method and target); hashed for a file name.
        digest = hashlib.sha256(str(key).encode()).hexdigest()[:16]
        return os.path.join(self.directory, f"layer{k}-{digest}.npz")

    def get(self, key, k):
        """``(matrices, biases, report)`` of a finished layer, or None."""
        from .report import LayerReport
        path = self._path(key, k)
        if not os.path.exists(path):
            return None
        import zipfile
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                groups = int(z["groups"])
                matrices = [z[f"W{g}"] for g in range(groups)]
                biases = [z[f"b{g}"] for g in range(groups)]
                d = json.loads(str(z["report"]))
            return matrices, biases, LayerReport.from_dict(d)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            text = str(e).strip().splitlines()
            raise InvalidArgument(f"checkpoint: {path} cannot be read, damaged or truncated? "
                             f"({text[0] if text else type(e).__name__}); delete it to recompute that layer") from None

    def put(self, key, k, matrices, biases, report):
        arrays = {"groups": np.array(len(matrices)), "report": np.array(json.dumps(asdict(report)))}
        for g, (W, b) in enumerate(zip(matrices, biases)):
            arrays[f"W{g}"], arrays[f"b{g}"] = W, b
        atomic_savez(self._path(key, k), arrays)
