"""Input checks at the Python boundary: each error names the argument and what was expected."""
from __future__ import annotations

import numbers
import os

import numpy as np

from .errors import InvalidArgument, InvalidArgumentType

MAX_THREADS = 1024
"""The most engine threads (or parallel workers) accepted: more is a typo, and libgomp fails
to create threads well before 2**31 (an uncaught "Thread creation failed", or a segfault)."""


def resolve_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidArgumentType(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise InvalidArgumentType(f"dtype: expected 'float32' or 'float64', got {dt.name}")
    return dt.type


def as_float_matrix(name, a, *, rows=None, cols=None, finite=True):
    """A 2-D real floating array (finite entries unless ``finite=False``), never copied."""
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype == object:
        raise InvalidArgumentType(f"{name}: expected a numeric array, got dtype object")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidArgumentType(f"{name}: expected real floating values, got complex dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidArgumentType(f"{name}: expected a floating dtype (float32 or float64), got {arr.dtype}; "
                        f"convert with .astype(np.float32) if the values are meant as numbers")
    if arr.ndim != 2:
        raise InvalidArgument(f"{name}: expected a 2-D array, got {arr.ndim}-D with shape {arr.shape}")
    if arr.size == 0:
        raise InvalidArgument(f"{name}: expected a non-empty array, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise InvalidArgument(f"{name}: expected {rows} rows, got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise InvalidArgument(f"{name}: expected {cols} columns, got shape {arr.shape}")
    if finite:
        check_finite(name, arr)
    return arr


def check_finite(name, arr):
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{name}: expected finite values, got NaN or Inf")


def check_choice(name, value, choices):
    if value not in choices:
        raise InvalidArgument(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_nonnegative(name, value, *, strict=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentType(f"{name}: expected a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise InvalidArgument(f"{name}: expected a finite number {'>' if strict else '>='} 0, got {value!r}")
    return v


def default_threads():
    """The engine's thread count for ``threads=0``: ``NETTRIM_THREADS`` when set, else 0
    (the engine's own automatic choice)."""
    text = os.environ.get("NETTRIM_THREADS", "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_THREADS:
        raise InvalidArgument(f"NETTRIM_THREADS: expected a number of threads in [0, {MAX_THREADS}], got {text!r}")
    return value


# --- scalars: "name: expected X, got Y" -----------------------------------------------------------
def check_int(name, value, *, low=None, high=None, none=False, what="an integer"):
    """An integer (Python or numpy; not a bool, a float or a string) in [low, high]."""
    if value is None and none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(f"{name}: expected {what}{' or None' if none else ''}, got {value!r} "
                        f"({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"in [{low}, {high}]" if low is not None and high is not None else
                  f">= {low}" if low is not None else f"<= {high}")
        raise InvalidArgument(f"{name}: expected {what} {bounds}, got {value}")
    return value


def check_real(name, value, *, low=None, high=None, strict_low=False, finite=True, what="a real number"):
    """A real number (int or float, Python or numpy; not a bool or a string), finite, in range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArgumentType(f"{name}: expected {what}, got {value!r} ({type(value).__name__})")
    value = float(value)
    if finite and not np.isfinite(value):
        raise InvalidArgument(f"{name}: expected a finite number, got {value!r}")
    if np.isnan(value) or (low is not None and (value < low or (strict_low and value == low))) or \
            (high is not None and value > high):
        lo = "" if low is None else f"{'>' if strict_low else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        raise InvalidArgument(f"{name}: expected {what} {' and '.join(b for b in (lo, hi) if b)}, got {value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentType(f"{name}: expected True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_callable(name, value, signature="a function"):
    if value is not None and not callable(value):
        raise InvalidArgumentType(f"{name}: expected {signature} or None, got {value!r} ({type(value).__name__})")
    return value


def check_threads(name, value):
    return check_int(name, value, low=0, high=MAX_THREADS, what="a number of threads (0: automatic)")


def check_path(name, value):
    """A file system path (str or os.PathLike), as a str."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentType(f"{name}: expected a path (str or os.PathLike), got {value!r} ({type(value).__name__})")
    return os.fspath(value)


def check_shape(name, value):
    """One sample's shape: a tuple of positive integers (a list or numpy array is fine; a string is not)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidArgumentType(f"{name}: expected a tuple of positive integers such as (1, 28, 28), got {value!r}")
    dims = list(value)
    if not dims or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) for d in dims):
        raise InvalidArgumentType(f"{name}: expected a tuple of positive integers such as (1, 28, 28), got {value!r}")
    if any(int(d) < 1 for d in dims):
        raise InvalidArgument(f"{name}: expected positive sizes, got {tuple(int(d) for d in dims)}")
    return tuple(int(d) for d in dims)


def check_output_path(name, path):
    """A file that can be written: its folder exists and is writable, and it is not a folder.

    Called before any work, so that a long prune does not end in an error about where to put it."""
    path = check_path(name, path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path} is a directory; expected a file name")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name}: the directory of {path} does not exist ({folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: cannot write to the directory of {path} ({folder}: permission denied)")
    if os.path.exists(path) and not os.access(path, os.W_OK) and not os.access(folder, os.W_OK):
        raise PermissionError(f"{name}: cannot replace {path} (permission denied)")
    return path


def available_memory():
    """Bytes of memory available now (Linux MemAvailable), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


# --- prune_network ------------------------------------------------------------------------------
_SET_PER_LAYER = ("X", "Y", "W", "b", "V", "eps", "fit_bias", "mode")
"""prune_layer arguments that prune_network sets itself for every layer."""


def check_prune_network_arguments(net, calibration_inputs, *, scheme, eps_rel, gamma, sparsity, scope,
                                  method, nm, structured, refit, max_samples, seed, threads, workers, dtype,
                                  checkpoint, on_layer, solver_options, layers=None, allocation="curves",
                                  holdout=0.2, executor=None):
    """Every argument of :func:`nettrim.prune_network`, checked before any work is done.

    Returns the normalized values (a dict).  Raises TypeError / ValueError naming the argument,
    or MemoryError naming the layer that would not fit (an estimate from shapes only)."""
    from .methods import METHODS, NM_CAPABLE, check_nm
    from .methods.refit import refit_mode
    from .network import Network
    if not isinstance(net, Network):
        raise InvalidArgumentType(f"net: expected a nettrim.Network (see nettrim.adapters for models), got {type(net).__name__}")
    if calibration_inputs is None:
        raise InvalidArgumentType("calibration_inputs: expected an array (samples, ...) of the model's inputs, got None")
    if scheme not in ("parallel", "cascade"):
        raise InvalidArgument(f"scheme: expected 'parallel' or 'cascade', got {scheme!r}")
    if method not in METHODS:
        raise InvalidArgument(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if scope not in ("network", "layer"):
        raise InvalidArgument(f"scope: expected 'network' or 'layer', got {scope!r}")
    from .allocation import ALLOCATIONS
    if allocation not in ALLOCATIONS:
        raise InvalidArgument(f"allocation: expected one of {', '.join(map(repr, ALLOCATIONS))}, got {allocation!r}")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidArgumentType(f"executor: expected a concurrent.futures-style executor (with submit), got "
                        f"{type(executor).__name__}")
    selected = check_layer_selection(net, layers)
    out = dict(
        eps_rel=check_real("eps_rel", eps_rel, low=0, what="a relative tolerance (a real number)"),
        gamma=check_real("gamma", gamma, low=1, what="a real number (>= 1 keeps the trained weights feasible)"),
        sparsity=check_sparsity(sparsity, len(selected)),
        layers=selected,
        holdout=check_real("holdout", holdout, low=0, high=0.5, what="a fraction of the calibration samples"),
        structured=check_bool("structured", structured),
        refit=refit_mode(refit),
        max_samples=check_int("max_samples", max_samples, low=1, none=True, what="a positive number of rows"),
        seed=check_int("seed", seed, low=0, what="a seed (an integer)"),
        threads=check_threads("threads", threads),
        workers=check_int("workers", workers, low=1, high=MAX_THREADS, what="a number of parallel solves"),
        dtype=dtype, nm=None, checkpoint=None)
    resolve_dtype(dtype)
    if nm is not None:
        out["nm"] = check_nm(nm)
        if method not in NM_CAPABLE:
            raise InvalidArgument(f"nm: {method} has no N:M variant (those that do: {', '.join(sorted(NM_CAPABLE))})")
        if sparsity is not None:
            raise InvalidArgument("sparsity: not with nm, which fixes the sparsity at 1 - N/M")
    if method != "nettrim" and sparsity is None and nm is None:
        raise InvalidArgument(f"sparsity: method {method!r} needs a target sparsity (or nm)")
    if method == "apoz" and not isinstance(out["sparsity"], (float, type(None))):
        raise InvalidArgument("sparsity: APoZ takes one fraction (neurons are ranked across layers or within each)")
    if method == "apoz" and scope == "layer":
        # (a requested sparsity is a ceiling on every layer it is for; APoZ never removes an
        # output neuron, so the output layer's own weights could not meet it)
        raise InvalidArgument("scope: APoZ removes hidden neurons only, so the output layer cannot meet a per-layer "
                              "sparsity; use scope='network' (nettrim.methods.apoz(..., scope='layer') prunes each "
                              "hidden layer to it)")
    if out["structured"] and method != "nettrim":
        raise InvalidArgument(f"structured: a Net-Trim option, not for method {method!r} (APoZ is structured)")
    check_callable("on_layer", on_layer, "a function (index, LayerReport)")
    check_callable("progress", solver_options.get("progress"), "a function (iteration, primal, dual, elapsed)")
    _check_solver_options(method, out["nm"], solver_options, dtype)
    if checkpoint is not None:
        out["checkpoint"] = check_directory("checkpoint", checkpoint)
    check_network_memory(net, calibration_inputs, max_samples=out["max_samples"], scheme=scheme,
                         workers=out["workers"], dtype=dtype, method=method)
    return out


def check_layer_selection(net, layers):
    """Sorted indices of the prunable layers named (or indexed) in ``layers``; all when None."""
    names = [layer.name for layer in net.layers]
    if layers is None:
        return list(range(len(names)))
    if isinstance(layers, (str, bytes, numbers.Integral)):
        layers = [layers]
    try:
        items = list(layers)
    except TypeError:
        raise InvalidArgumentType(f"layers: expected a list of layer names or indices, got {layers!r}") from None
    out = set()
    for item in items:
        if isinstance(item, str) and item in names:
            out.add(names.index(item))
        elif isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_)) and \
                -len(names) <= int(item) < len(names):
            out.add(int(item) % len(names))
        else:
            raise InvalidArgument(f"layers: {item!r} is not one of the network's prunable layers "
                             f"(names {names}, or indices 0 to {len(names) - 1})")
    if not out:
        raise InvalidArgument("layers: expected at least one layer to prune, got an empty list")
    return sorted(out)


def check_sparsity(sparsity, n_layers):
    """None, a fraction in (0, 1), or a list with one fraction in [0, 1) per layer."""
    if sparsity is None:
        return None
    if isinstance(sparsity, (str, bytes)) or np.ndim(sparsity) == 0:
        if isinstance(sparsity, (bool, np.bool_)) or not isinstance(sparsity, numbers.Real) or \
                not 0 < float(sparsity) < 1:
            raise InvalidArgument(f"sparsity: expected a fraction in (0, 1) of weights to remove, got {sparsity!r}")
        return float(sparsity)
    values = list(np.ravel(np.asarray(sparsity, dtype=object)))
    if len(values) != n_layers or not all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                                          and 0 <= float(v) < 1 for v in values):
        raise InvalidArgument(f"sparsity: expected one fraction in [0, 1) per pruned layer ({n_layers} of them), "
                         f"got {sparsity!r}")
    return [float(v) for v in values]


def check_directory(name, path):
    """A directory that exists or can be made (no file in the way, a writable parent)."""
    path = check_path(name, path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgument(f"{name}: {path} is a file; expected a directory (an existing one, or a new name)")
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InvalidArgument(f"{name}: {path} is under {parent}, which is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: cannot write in {parent} (permission denied)")
    return path


def _check_solver_options(method, nm, options, dtype):
    """Unknown names are errors, and the values are tried on a tiny layer (milliseconds), so that a
    bad option fails here rather than in the first layer, after a checkpoint was written."""
    import inspect
    import warnings

    from .methods import LAYERWISE
    for name in options:
        if name in _SET_PER_LAYER:
            raise InvalidArgumentType(f"{name}: set by prune_network for every layer, not an option")
    if method == "nettrim":
        from .layer import prune_layer
        target = prune_layer
    else:
        target = LAYERWISE.get(method)
    allowed = {"progress"} if target is None else (set(inspect.signature(target).parameters) |
                                                   {"progress"}) - {"X", "W", "b", "sparsity", "nm"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed - set(_SET_PER_LAYER) - {"dtype", "threads", "eps_rel"}))
        raise InvalidArgumentType(f"{unknown[0]}: not an option of method {method!r} (those it takes: {known})")
    rest = {k: v for k, v in options.items() if k != "progress"}
    if target is None or not rest:
        return
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    W = rng.standard_normal((4, 2))
    b = np.array([0.1, -0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "nettrim":
            from .layer import LayerResult
            if isinstance(rest.get("max_iter"), numbers.Integral) and not isinstance(rest["max_iter"], bool):
                rest["max_iter"] = min(int(rest["max_iter"]), 50)
            if isinstance(rest.get("warm_start"), LayerResult):
                rest.pop("warm_start")
            target(X, W=W, b=b, dtype=dtype, threads=1, **rest)
        else:
            target(X, W, b, **({"nm": nm} if nm else {"sparsity": 0.5}), **rest)


def check_network_memory(net, calibration_inputs, *, max_samples, scheme="cascade", workers=1, dtype="float32",
                         method="nettrim"):
    """MemoryError naming the largest layer when pruning ``net`` on inputs of this shape would need
    more memory than is available (estimated from the shapes alone, before anything is allocated)."""
    shape = np.shape(calibration_inputs)
    if len(shape) < 2 or int(np.prod(shape[1:], dtype=np.float64)) != net.n_inputs:
        return                       # check_inputs says what is wrong with the shape
    itemsize = np.dtype(resolve_dtype(dtype)).itemsize
    est = net.memory_estimate(shape[0], max_samples=max_samples, scheme=scheme, workers=workers,
                              itemsize=itemsize, engine=method == "nettrim")
    have = available_memory()
    if not have or est["total"] <= have:
        return
    worst = max(est["layers"], key=lambda r: r["bytes"])
    advice = (f"lower max_samples (now {max_samples}; rows sampled per convolution) or use fewer calibration samples"
              if worst["kind"] == "conv" else "use fewer calibration samples")
    raise MemoryError(f"calibration_inputs: pruning on {shape[0]} samples needs about {est['total'] >> 20} MiB, but "
                      f"only {have >> 20} MiB are available; the largest part is layer {worst['name']} (P={worst['P']} "
                      f"rows x N={worst['N']} inputs, M={worst['M']} outputs: about {worst['bytes'] >> 20} MiB): "
                      f"{advice}")
