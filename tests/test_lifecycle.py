"""A LayerSolver is one state machine: every pair of lifecycle calls, in either order, leaves a
solver whose next solve answers the program it now holds (mode, constraint, inactive outputs,
target, bound), checked by an independent float64 recomputation of the returned matrix; a call
that cannot apply is a clear error.  One solver used from two threads, or from its own progress
callback, is refused at once, never a crash or a solve on shared buffers."""
import itertools
import threading

import nettrim
import numpy as np
import pytest
from conftest import relu_layer

X, Y, W, b = relu_layer(11, P=120, n_in=7, M=4)
_, _, W2, b2 = relu_layer(12, P=120, n_in=7, M=4)
_, _, W3, b3 = relu_layer(13, P=120, n_in=7, M=3)
TOL = 1e-3


class Expected:
    """What the solver should now hold, kept beside it by the test."""

    def __init__(self):
        self.mode, self.constraint, self.inactive = "relu", "joint", "bounded"
        self.W, self.b, self.Y, self.V = W, b, np.maximum(X @ W + b, 0), None

    def target(self):
        Z = X @ self.W + self.b
        return np.maximum(Z, 0) if self.mode == "relu" else Z


def check(result, e: Expected, eps_rel):
    """The returned matrix, in float64, against the program the test expects the solver to hold."""
    A = X @ result.weight.astype(np.float64) + result.bias.astype(np.float64)
    Yt = e.Y
    omega = Yt > 0 if e.mode == "relu" else np.ones(Yt.shape, bool)
    counted = e.mode == "relu" and e.inactive == "relu"
    missed = np.where(omega, A - Yt, np.maximum(A, 0) if counted else 0)
    scale = np.linalg.norm(np.where(omega, Yt, 0), axis=0)
    if e.constraint == "joint":
        assert np.linalg.norm(missed) <= eps_rel * np.linalg.norm(scale) * (1 + TOL) + 1e-9
    else:
        assert (np.linalg.norm(missed, axis=0) <= eps_rel * scale * (1 + TOL) + 1e-9).all()
    if e.mode == "relu" and not counted:
        bound = np.zeros_like(A) if e.V is None else e.V
        excess = np.where(omega, 0, np.maximum(A - bound, 0))
        assert excess.max() <= TOL * np.sqrt(np.mean(Yt ** 2)) + 1e-9
    act = np.maximum(A, 0) if e.mode == "relu" else A
    assert result.relative_error == pytest.approx(np.linalg.norm(act - Yt) / np.linalg.norm(Yt), rel=1e-6, abs=1e-9)


def mode(solver, e, value):
    solver.update_settings(mode=value)
    e.mode = value
    e.Y = e.target()
    if value == "linear":
        e.V = None


def constraint(solver, e, value):
    solver.update_settings(constraint=value)
    e.constraint = value


def inactive(solver, e, value):
    solver.update_settings(inactive=value)
    e.inactive = value


def target(solver, e, weights):
    solver.update_target(W=weights[0], b=weights[1])
    e.W, e.b = weights
    e.Y = e.target()
    e.V = None


def bound(solver, e, value):
    V = None if value is None else X @ e.W + e.b + value
    solver.update_bound(V)
    e.V = V


CALLS = {
    "mode=linear": lambda s, e: mode(s, e, "linear"),
    "mode=relu": lambda s, e: mode(s, e, "relu"),
    "constraint=neuron": lambda s, e: constraint(s, e, "neuron"),
    "constraint=joint": lambda s, e: constraint(s, e, "joint"),
    "inactive=relu": lambda s, e: inactive(s, e, "relu"),
    "inactive=bounded": lambda s, e: inactive(s, e, "bounded"),
    "target W2": lambda s, e: target(s, e, (W2, b2)),
    "target W3 (3 outputs)": lambda s, e: target(s, e, (W3, b3)),
    "bound +0.5": lambda s, e: bound(s, e, 0.5),
    "bound None": lambda s, e: bound(s, e, None),
    "warm zero": lambda s, e: s.warm_start("zero"),
    "solve": lambda s, e: s.solve(eps_rel=0.3, warn=False),
}


def refused(e, name):
    """The calls that cannot apply to what the solver holds, and say so."""
    if name.startswith("bound +") and (e.mode != "relu" or e.inactive != "bounded"):
        return True
    if name == "inactive=relu" and e.V is not None:
        return True
    if name == "mode=linear" and e.V is not None:
        return True
    return False


@pytest.mark.parametrize("first, second", list(itertools.product(CALLS, repeat=2)))
def test_every_pair_of_calls_leaves_a_solver_that_answers_its_program(first, second):
    solver = nettrim.LayerSolver(X, W=W, b=b, dtype="float64", max_iter=5000)
    e = Expected()
    solver.solve(eps_rel=0.2, warn=False)              # a solve before, so that state could linger
    for name in (first, second):
        if refused(e, name):
            with pytest.raises(nettrim.InvalidArgument):
                CALLS[name](solver, e)
        else:
            CALLS[name](solver, e)
    result = solver.solve(eps_rel=0.1, warn=False)
    assert result.status == "converged", (first, second, result.status)
    assert result.weight.shape == e.W.shape
    check(result, e, 0.1)


def test_a_bound_does_not_outlive_a_new_target():
    """(update_bound, then update_target with as many outputs: the old bound was kept.)"""
    solver = nettrim.LayerSolver(X, W=W, b=b, dtype="float64")
    solver.update_bound(np.full(Y.shape, 50.0))
    solver.update_target(W=W2, b=b2)
    assert solver.V is None
    e = Expected()
    e.W, e.b, e.Y = W2, b2, np.maximum(X @ W2 + b2, 0)
    result = solver.solve(eps_rel=0.05, warn=False)
    check(result, e, 0.05)
    assert result.complement_violation <= TOL


def test_reentrant_calls_from_the_progress_callback_are_refused():
    solver = nettrim.LayerSolver(X, W=W, b=b, dtype="float64")
    for call in (lambda: solver.update_target(W=W3, b=b3), lambda: solver.solve(eps_rel=0.3),
                 lambda: solver.update_settings(tol=1e-2), lambda: solver.warm_start("zero")):
        def progress(*args, call=call):
            call()
        with pytest.raises(RuntimeError, match="LayerSolver: in use"):
            solver.solve(eps_rel=0.05, progress=progress)
    result = solver.solve(eps_rel=0.05)                   # and the solver is still sound
    assert result.status == "converged" and result.weight.shape == W.shape
    check(result, Expected(), 0.05)


def test_one_solver_from_two_threads_is_refused_not_a_crash():
    Xl, _, Wl, bl = relu_layer(14, P=4000, n_in=60, M=40)
    solver = nettrim.LayerSolver(Xl, W=Wl, b=bl, dtype="float64", threads=1, max_iter=3000)
    started, errors, results = threading.Event(), [], []

    def progress(*args):
        started.set()

    def worker():
        try:
            results.append(solver.solve(eps_rel=0.001, progress=progress, warn=False))
        except RuntimeError as e:
            errors.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(30)
    for call in (lambda: solver.solve(eps_rel=0.1), lambda: solver.update_target(W=Wl[:, :3], b=bl[:3]),
                 lambda: solver.update_bound(None), lambda: solver.update_settings(tol=1e-2),
                 lambda: solver.warm_start("zero"), lambda: solver.state()):
        with pytest.raises(RuntimeError, match="LayerSolver: in use"):
            call()
    thread.join()
    assert not errors and results and results[0].weight.shape == Wl.shape
    assert np.isfinite(results[0].weight).all()
