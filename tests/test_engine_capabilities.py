"""What the engine says about itself: each backend's capabilities, and the settings' fields.

The answers come from the C++ engine (``_core.backend_capabilities``, ``_core.Settings.fields``);
these tests hold them to what the engine does, and every Python copy of the settings' names
(the bindings, solver.py, _core.pyi, ``prune_layer``'s signature) to the engine's list.
"""
import ast
import inspect
import pathlib

import nettrim
import numpy as np
import pytest
from nettrim import _core, solver
from nettrim.errors import InvalidArgument

BACKENDS = ("cpu", "cuda", "cuda:tf32")
PROGRAMS = ("bounded", "relu")
FIELDS = _core.Settings.fields()
# Fields that are not keyword settings: bias_row follows from fit_bias, warm_start is the lifecycle's.
LIFECYCLE = {"bias_row", "warm_start"}


# --- backends -----------------------------------------------------------------------------------
def test_cpu_backend_solves_both_programs_in_both_dtypes_on_the_host():
    caps = _core.backend_capabilities("cpu")
    assert caps == {"name": "cpu", "built": True, "available": True, "gpu": False,
                    "inactive": ["bounded", "relu"], "dtypes": ["float32", "float64"]}


@pytest.mark.parametrize("name", ["gpu", "", "CPU", "cuda:fp16", "cpu "])
def test_unknown_backend_raises_naming_backend(name):
    with pytest.raises(ValueError, match=r"^backend: expected one of 'cpu', 'cuda', 'cuda:tf32'"):
        _core.backend_capabilities(name)
    with pytest.raises(InvalidArgument):
        _core.backend_capabilities(name)


def test_every_backend_name_answers_and_every_available_one_says_so():
    available = _core.available_backends()
    for name in BACKENDS:
        caps = _core.backend_capabilities(name)
        assert caps["name"] == name
        assert set(caps["inactive"]) <= set(PROGRAMS) and set(caps["dtypes"]) <= {"float32", "float64"}
        assert caps["built"] or not caps["available"]
        if name != "cpu":
            assert caps["gpu"] and caps["built"] == _core.cuda
        if name in available:
            assert caps["available"]
        elif name in ("cpu", "cuda"):            # ("cuda:tf32" is listed as "cuda")
            assert not caps["available"]
    assert _core.backend_capabilities("cuda:tf32")["available"] == _core.backend_capabilities("cuda")["available"]
    for name in available:
        assert _core.backend_capabilities(name)["available"]


def _layer():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 5))
    W = rng.standard_normal((5, 3))
    return X, W, np.full(3, 0.1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_capabilities_agree_with_what_a_solve_does(dtype):
    # A program a backend claims sets up and solves; one it does not claim is refused at set-up,
    # naming inactive (what prune_network asks before anything runs).
    X, W, b = _layer()
    for name in _core.available_backends():
        caps = _core.backend_capabilities(name)
        assert dtype in caps["dtypes"]
        for program in PROGRAMS:
            if program in caps["inactive"]:
                s = nettrim.LayerSolver(X, W=W, b=b, backend=name, inactive=program, dtype=dtype)
                assert s.solve(eps_rel=0.1).status == "converged"
            else:
                with pytest.raises(InvalidArgument, match=r"^inactive: "):
                    nettrim.LayerSolver(X, W=W, b=b, backend=name, inactive=program, dtype=dtype)


def test_the_engines_workspace_is_the_solvers():
    for name in _core.available_backends():
        for dtype, make in (("float32", _core.SolverFloat32), ("float64", _core.SolverFloat64)):
            for bound in (False, True):
                assert _core.workspace_bytes(3000, 51, 20, bound, dtype, name) == \
                    make(name).workspace_bytes(3000, 51, 20, bound)


# --- the settings' fields -----------------------------------------------------------------------
def test_settings_fields_are_the_engines_with_its_defaults():
    assert list(FIELDS)[:4] == ["mode", "constraint", "penalty", "inactive"] and "threads" in FIELDS
    defaults = _core.Settings()
    for name, default in FIELDS.items():
        assert getattr(defaults, name) == default, name


def test_bindings_define_every_field_and_nothing_else():
    attributes = {n for n, v in vars(_core.Settings).items() if isinstance(v, property)}
    assert attributes == set(FIELDS)
    s = _core.Settings()
    for name, default in FIELDS.items():     # each one is read and written
        setattr(s, name, default)


def test_solver_takes_every_field_as_a_setting():
    assert set(solver.SETTINGS) == set(FIELDS) - LIFECYCLE
    assert list(solver.SETTINGS) == [n for n in FIELDS if n not in LIFECYCLE]
    assert set(solver._OPTIONAL_REALS) <= set(solver._REALS) | set(solver.SETTINGS)
    assert set(solver._INT_RANGES) <= set(solver._INTS)
    # Each one accepted by keyword with its default (None for an optional number, a name for a choice).
    options = {}
    for name in solver.SETTINGS:
        default = FIELDS[name]
        options[name] = None if name in solver._OPTIONAL_REALS else getattr(default, "name", default)
    s = solver.make_settings(**options)
    for name in solver.SETTINGS:
        if name != "threads":                   # (0: automatic, resolved by make_settings)
            assert getattr(s, name) == FIELDS[name], name
    # And a copy keeps every field, the lifecycle's too.
    s.bias_row, s.warm_start = 4, False
    copy = solver.make_settings(s)
    assert all(getattr(copy, name) == getattr(s, name) for name in FIELDS)


def _stub_fields():
    stub = pathlib.Path(_core.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings")
    return {node.target.id: ast.unparse(node.annotation) for node in cls.body if isinstance(node, ast.AnnAssign)}


def test_stub_lists_every_field_with_its_type():
    stub = _stub_fields()
    assert set(stub) == set(FIELDS)
    for name, default in FIELDS.items():
        expected = type(default).__name__      # Mode, Constraint, ..., bool, int, float
        assert stub[name] == expected, f"_core.pyi: Settings.{name}: {stub[name]}, the engine's is {expected}"


def test_prune_layer_takes_every_setting_with_the_engines_default():
    params = inspect.signature(nettrim.prune_layer).parameters
    # bias_row is fit_bias there; warm_start is the lifecycle's (prune_layer's is where to start).
    assert "fit_bias" in params and "warm_start" in params
    missing = [n for n in FIELDS if n not in LIFECYCLE and n not in params]
    assert not missing, f"prune_layer lacks the engine's settings {missing}"
    others = {"X", "Y", "W", "b", "eps_rel", "eps", "V", "fit_bias", "warm_start", "dtype", "backend", "progress", "form"}
    unknown = [n for n in params if n not in others and n not in FIELDS]
    assert not unknown, f"prune_layer has {unknown}, neither settings of the engine nor its own arguments"
    for name in FIELDS:
        if name in LIFECYCLE:
            continue
        default = params[name].default
        engine = FIELDS[name]
        if name in solver._OPTIONAL_REALS:
            assert default is None and engine == 0, name
        else:
            assert default == getattr(engine, "name", engine), name
