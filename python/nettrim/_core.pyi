"""Type stubs of the compiled engine module (cpp/bindings/module.cpp)."""
from typing import Callable, Dict, List, Optional, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

Progress = Optional[Callable[[int, float, float, float], None]]

class EngineMemoryError(MemoryError): ...

class Mode:
    relu: "Mode"
    linear: "Mode"
    name: str

class Constraint:
    joint: "Constraint"
    neuron: "Constraint"
    name: str

class Inactive:
    bounded: "Inactive"
    relu: "Inactive"
    name: str

class Penalty:
    l1: "Penalty"
    group: "Penalty"
    name: str

class Settings:
    mode: Mode
    constraint: Constraint
    inactive: Inactive
    penalty: Penalty
    lam: float
    bias_row: int
    rho: float
    sigma: float
    adaptive_rho: bool
    adapt_every: int
    adapt_bias: float
    adapt_threshold: float
    alpha: float
    max_iter: int
    time_limit: float
    tol: float
    dual_tol: float
    gap_tol: float
    certify_bias: float
    polish: bool
    polish_margin: float
    warm_start: bool
    threads: int
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    @staticmethod
    def fields() -> Dict[str, Union[Mode, Constraint, Inactive, Penalty, float, int, bool]]:
        """Every field of the engine's Settings (nettrim/settings.hpp), in its order: {name: default}."""

class Info:
    status: str
    iterations: int
    primal_residual: float
    dual_residual: float
    objective: float
    dual_bound: float
    gap: float
    omega_violation: float
    complement_violation: float
    error_resolved: bool
    rho1: float
    rho2: float
    rho_updates: int
    factor_updates: int
    threads: int
    setup_seconds: float
    solve_seconds: float
    polish_seconds: float

class _State:
    U: npt.NDArray[np.floating]
    L1: npt.NDArray[np.floating]
    L2: npt.NDArray[np.floating]
    rho1: float
    rho2: float
    def __init__(self) -> None: ...

class StateFloat32(_State): ...
class StateFloat64(_State): ...

class _Result:
    U: npt.NDArray[np.floating]
    info: Info

class ResultFloat32(_Result): ...
class ResultFloat64(_Result): ...

class SampleStatistics:
    samples: int
    inputs: int
    outputs: int
    ones_column: bool
    gram: npt.NDArray[np.float64]
    cross: npt.NDArray[np.float64]
    target_norm2: npt.NDArray[np.float64]
    def __init__(self, inputs: int, outputs: int, ones_column: bool = False) -> None: ...
    def add(self, X: npt.NDArray[np.floating], Y: npt.NDArray[np.floating]) -> None: ...

class _Solver:
    settings: Settings
    samples: int
    rows: int
    compressed: bool
    inputs: int
    outputs: int
    backend: str
    def __init__(self, backend: str = "cpu") -> None: ...
    def setup(self, X: npt.NDArray[np.floating], settings: Settings, progress: Progress = None) -> None: ...
    def setup_statistics(self, stats: SampleStatistics, settings: Settings, progress: Progress = None) -> None: ...
    def floor(self) -> List[float]: ...
    def update_settings(self, settings: Settings) -> None: ...
    def update_target(self, Y: npt.NDArray[np.floating]) -> None: ...
    def update_bound(self, V: npt.NDArray[np.floating]) -> None: ...
    def clear_bound(self) -> None: ...
    def update_eps(self, eps: List[float]) -> None: ...
    def warm_start(self, state: _State) -> None: ...
    def warm_start_primal(self, U0: npt.NDArray[np.floating]) -> None: ...
    def cold_start(self) -> None: ...
    def solve(self, progress: Progress = None) -> _Result: ...
    def solve_path(self, eps: List[List[float]], progress: Progress = None) -> List[_Result]: ...
    def state(self) -> _State: ...
    def workspace_bytes(self, P: int, N: int, M: int, has_bound: bool) -> int: ...

class SolverFloat32(_Solver): ...
class SolverFloat64(_Solver): ...

def available_backends() -> List[str]: ...

class BackendCapabilities(TypedDict):
    name: str
    built: bool          # compiled into this build
    available: bool      # this build and machine have it (a GPU for "cuda")
    gpu: bool
    inactive: List[str]  # the programs it solves: "bounded", "relu"
    dtypes: List[str]    # "float32", "float64"

def backend_capabilities(name: str) -> BackendCapabilities:
    """What the backend ``name`` ("cpu", "cuda", "cuda:tf32") can do, from the backend itself; any
    other name raises nettrim.InvalidArgument (a ValueError) naming ``backend``."""

def workspace_bytes(P: int, N: int, M: int, has_bound: bool, dtype: str = "float32", backend: str = "cpu") -> int:
    """Bytes of host memory the backend's solver allocates for a layer of P samples, N inputs (the bias
    included) and M outputs, beyond X (the backend's own figure, without setting up a solver)."""

def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable), 0 when unknown."""

def refit_support(X: np.ndarray, Y: np.ndarray, support: np.ndarray, start_weights: np.ndarray,
                  start_bias: np.ndarray, V: np.ndarray, fit_bias: bool, max_iter: int = 0, ridge: float = 1e-9,
                  threads: int = 0, inactive: str = "bounded") -> Tuple[np.ndarray, np.ndarray, List[int], int]:
    """Exact least squares on a fixed support from a start meeting the inactive rows' bounds
    (``inactive="bounded"``; float64, C order; V of shape (0, M) for bounds 0), or with each
    inactive row's ReLU output in the error (``inactive="relu"``, V unused): weights, bias,
    steps per neuron, neurons stopped short."""

max_threads: int
version: str
openmp: bool
# True when the build has the CUDA backend (whether a GPU is present: available_backends()).
cuda: bool

# Only in builds with the CUDA backend (NETTRIM_CUDA=ON):
def cuda_device_count() -> int: ...
def cuda_device_name() -> str: ...
def cuda_gemm_seconds(P: int, N: int, M: int, float64: bool = False, tf32: bool = False, repeats: int = 5) -> float: ...
