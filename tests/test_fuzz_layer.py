"""Property-based tests of prune_layer: every input either raises a clear error or returns a
result whose reports agree with an independent float64 recomputation.

Shapes, dtypes, memory orders, eps, duplicate / zero / constant columns, rank-1 inputs and
scales from 1e-20 to 1e20.  The recomputation below is written out here, in numpy float64,
on purpose: it shares no code with the engine or with nettrim.metrics.

Profiles: "ci" (default, a few hundred cases, in the normal suite) and "slow" (10,000 cases):

    NETTRIM_FUZZ=slow pytest -m slow tests/test_fuzz_layer.py -p no:randomly
"""
import math
import os
import warnings

import nettrim
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SLOW = os.environ.get("NETTRIM_FUZZ") == "slow"
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("slow", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

STATUSES = {"converged", "max_iterations", "time_limit", "numerical_error"}


@st.composite
def layers(draw):
    P = draw(st.integers(1, 40))
    n_in = draw(st.integers(1, 10))
    M = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, n_in))
    kind = draw(st.sampled_from(["plain", "duplicate", "zero", "constant", "rank1"]))
    if kind == "duplicate" and n_in > 1:
        X[:, -1] = X[:, 0]
    elif kind == "zero":
        X[:, 0] = 0
    elif kind == "constant":
        X[:, 0] = 3.0
    elif kind == "rank1":
        X = np.outer(rng.standard_normal(P), rng.standard_normal(n_in))
    W = rng.standard_normal((n_in, M))
    b = rng.standard_normal(M) * draw(st.sampled_from([0.0, 0.1, 1.0]))
    scale = 10.0 ** draw(st.integers(-20, 20))
    return X * scale, W, b * scale, kind, scale


@st.composite
def cases(draw):
    X, W, b, kind, scale = draw(layers())
    mode = draw(st.sampled_from(["relu", "linear"]))
    constraint = draw(st.sampled_from(["joint", "neuron"]))
    eps_rel = draw(st.sampled_from([0.0, 1e-6, 1e-3, 0.05, 0.3, 1.0, 3.0]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    order = draw(st.sampled_from(["C", "F"]))
    fit_bias = draw(st.booleans())
    return dict(X=X, W=W, b=b, kind=kind, scale=scale, mode=mode, constraint=constraint, eps_rel=eps_rel,
                dtype=dtype, order=order, fit_bias=fit_bias)


def recompute(X, Y, weight, bias, eps, mode, constraint):
    """Violations, nonzeros and relative error of (weight, bias), in float64, from scratch."""
    A = X.astype(np.float64) @ weight.astype(np.float64) + (0.0 if bias is None else bias.astype(np.float64))
    omega = Y > 0 if mode == "relu" else np.ones(Y.shape, bool)
    D = np.where(omega, A - Y, 0.0)
    eps = np.asarray(eps, np.float64).reshape(-1)
    if constraint == "joint":
        e = float(eps[0])
        norm = math.sqrt(float(np.sum(D * D)))
        v_omega = max(0.0, norm - e) / (e if e > 0 else max(math.sqrt(float(np.sum(np.where(omega, Y, 0) ** 2))),
                                                            1e-300))
    else:
        norms = np.sqrt(np.sum(D * D, axis=0))
        ynorm = np.sqrt(np.sum(np.where(omega, Y, 0) ** 2, axis=0))
        denom = np.where(eps > 0, eps, np.where(ynorm > 0, ynorm, 1.0))
        v_omega = float(np.max(np.maximum(0.0, norms - eps) / denom, initial=0.0))
    if mode == "relu":
        on = Y[omega]
        rms = math.sqrt(float(np.mean(on * on))) if on.size else 1.0
        rms = rms if rms > 0 else 1.0
        excess = np.where(omega, -np.inf, A)
        v_comp = max(0.0, float(excess.max(initial=-np.inf))) / rms
    else:
        v_comp = 0.0
    out = np.maximum(A, 0) if mode == "relu" else A
    ny = math.sqrt(float(np.sum(Y * Y)))
    rel = math.sqrt(float(np.sum((out - Y) ** 2))) / (ny if ny > 0 else 1.0)
    # The engine works on the inputs in its own dtype: float32 rounding of X and Y moves every
    # residual by up to about 2^-24 (||X|| ||U|| + ||Y||) (a few times that, to be safe).
    U = np.vstack([weight, np.zeros((1, weight.shape[1])) if bias is None else bias.reshape(1, -1)]).astype(np.float64)
    Xs = np.hstack([X, np.ones((len(X), 1))])
    shift = 4 * 2.0 ** -24 * (np.linalg.norm(Xs) * np.linalg.norm(U) + np.linalg.norm(Y))
    if constraint == "joint":
        scale = float(eps[0]) if eps[0] > 0 else max(math.sqrt(float(np.sum(np.where(omega, Y, 0) ** 2))), 1e-300)
    else:
        scale = float(np.min(denom))
    return v_omega, v_comp, int(np.count_nonzero(weight)), rel, dict(
        omega=shift / scale, comp=shift / (rms if mode == "relu" else 1.0), rel=shift / (ny if ny > 0 else 1.0))


def check_case(c):
    X = np.asarray(c["X"], order=c["order"])
    Z = X @ c["W"] + c["b"]
    Y = np.maximum(Z, 0) if c["mode"] == "relu" else Z
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nettrim.ConvergenceWarning)
        warnings.simplefilter("ignore", nettrim.NumericalWarning)
        try:
            res = nettrim.prune_layer(X, Y, eps_rel=c["eps_rel"], mode=c["mode"], constraint=c["constraint"],
                                      dtype=c["dtype"], fit_bias=c["fit_bias"], max_iter=3000, threads=1)
        except (nettrim.InvalidArgument, nettrim.InvalidArgumentType, nettrim.NumericalError) as error:
            # A clear refusal: it names what was wrong.
            assert str(error).split(":")[0].strip(), error
            return "refused"
    assert res.status in STATUSES, res.status
    finite = np.all(np.isfinite(res.weight)) and (res.bias is None or np.all(np.isfinite(res.bias)))
    if not finite:
        assert res.status != "converged", "non-finite weights reported converged"
        return "non-finite"
    v_omega, v_comp, nnz, rel, rounding = recompute(X, Y, res.weight, res.bias if c["fit_bias"] else None, res.eps,
                                          c["mode"], c["constraint"])
    assert res.nnz == nnz
    single = c["dtype"] == "float32"
    slack = {k: (v if single else 0.0) for k, v in rounding.items()}
    if res.status == "converged":
        # Feasible to the solver's tolerance (1e-3), up to the rounding of the inputs to its dtype.
        assert v_omega <= 1.01e-3 + slack["omega"], (v_omega, res.omega_violation)
        assert v_comp <= 1.01e-3 + slack["comp"], (v_comp, res.complement_violation)
    # What the engine reports is what the returned matrix does (the same rounding apart).
    assert abs(res.omega_violation - v_omega) <= 1e-6 + 1e-6 * v_omega + slack["omega"], (res.omega_violation, v_omega)
    assert abs(res.complement_violation - v_comp) <= 1e-6 + 1e-6 * v_comp + slack["comp"], \
        (res.complement_violation, v_comp)
    assert abs(res.relative_error - rel) <= 1e-6 + slack["rel"], (res.relative_error, rel)
    return res.status


@settings(settings.get_profile("ci"))
@given(cases())
def test_prune_layer_reports_what_it_returns(c):
    event(check_case(c))


@pytest.mark.slow
@pytest.mark.skipif(not SLOW, reason="the 10,000-case profile: NETTRIM_FUZZ=slow pytest -m slow")
@settings(settings.get_profile("slow"))
@given(cases())
def test_prune_layer_reports_what_it_returns_slow(c):
    event(check_case(c))
