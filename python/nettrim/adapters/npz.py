"""``.npz`` files: nettrim's own layout (every step, any network) or plain ``W0, b0, W1, b1, ...``.

:func:`read` gives the network and its provenance; :func:`write` puts a (pruned) network in
a file, in the layout of the file it came from by default.
"""
from __future__ import annotations

import warnings

from .. import npz_layout
from .._validate import check_bool, check_output_path
from ..errors import InvalidArgument
from ..io import atomic_savez, first_line
from ..layers import Dense
from ..network import Network
from .base import Provenance


def write(net, provenance, path, *, sparse=False, layout=None):
    """``net`` in one ``.npz``, written atomically; returns the file's sha256.

    Two layouts:

    - ``"plain"``: arrays ``W0, b0, W1, b1, ...`` with every ``W`` stored **inputs x outputs**
      (scikit-learn's ``coefs_`` orientation, ``y = relu(x @ W + b)``), the layout
      :func:`read` reads from any source.  A network read from such a file is written
      back in it by default, with the same keys (``relu0``, ... too when the file had them)
      and the same dtypes (the default when ``provenance`` is a plain file's).  Only for
      networks of Dense layers, and not with ``sparse``.
    - ``"nettrim"``: every step and its settings (``__nettrim__``, JSON), a Dense layer's
      weights as ``"{i}.W"`` (inputs x outputs) and a convolution's as ``"{i}.weight"``
      (C_out, C_in/groups, kh, kw, as PyTorch), ``"{i}.bias"``; with ``sparse=True`` the
      weights as CSR arrays (``"{i}.data"``, ``.indices``, ``.indptr``, ``.rows``) of the
      same matrix (a convolution's reshaped to (C_out, -1)) wherever that is smaller than
      dense (below about half the weights kept), so the file shrinks with the pruning.
      The default for everything else.

    ``provenance``: what :func:`read` said of the file the network came from, or None."""
    path = check_output_path("path", path)
    sparse = check_bool("sparse", sparse)
    source = provenance.details if provenance is not None and provenance.format == "npz" else None
    if layout is None:
        layout = ("plain" if source and source.get("layout") == "plain" and not sparse
                  and all(isinstance(s, Dense) for s in net.steps) else "nettrim")
    if layout == "plain" and source and npz_layout.integer_arrays(source):
        warnings.warn(f"{path}: {', '.join(npz_layout.integer_arrays(source))} held integers in the model file; "
                      "the pruned weights are written as float32", UserWarning, stacklevel=2)
    return atomic_savez(path, npz_layout.arrays(net.steps, net.input_shape, layout=layout, sparse=sparse,
                                                source=source))


def read(path):
    """``(network, provenance)`` from an ``.npz`` written by :func:`write`, or of plain arrays
    ``W0, b0, W1, b1, ...`` (each W inputs x outputs; ``relu0, ...`` optional booleans, else
    ReLU on all but the last layer).

    A plain file's keys and dtypes go into the provenance, so that :func:`write` puts the
    pruned network back in the same layout.  Every error names the file (and the array at
    fault)."""
    steps, input_shape, details = npz_layout.read(path)
    try:
        net = Network(steps, input_shape)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(f"{path}: {first_line(e)}") from None
    return net, Provenance("npz", str(path), details)
