"""nettrim: convex layer-wise pruning of trained ReLU networks (Net-Trim)."""
from .errors import (
                     ConvergenceWarning,
                     InvalidArgument,
                     InvalidArgumentType,
                     NettrimError,
                     NumericalError,
                     NumericalWarning,
                     TargetWarning,
)
from .finetuning import FinetuneReport, finetune
from .graph import GraphModel
from .layer import prune_layer
from .layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .network import Network, from_arrays
from .options import PruneOptions
from .prune import prune_network
from .reconstruction import reconstruct
from .report import LayerReport, Note, PruneReport, ReconstructionReport
from .result import LayerResult, PrunedLayer, SolutionPath
from .solver import LayerSolver, backends
from .statistics import SampleStatistics
from .version import VERSION

__version__ = VERSION
__all__ = ["prune_layer", "LayerSolver", "SampleStatistics", "LayerResult", "PrunedLayer", "SolutionPath", "backends", "prune_network", "PruneOptions", "PruneReport",
           "LayerReport", "Note", "Network", "GraphModel", "Dense", "Conv2d", "Flatten", "MaxPool2d", "AvgPool2d", "BatchNorm", "ReLU",
           "from_arrays", "finetune", "FinetuneReport", "reconstruct", "ReconstructionReport", "NettrimError", "InvalidArgument", "InvalidArgumentType", "NumericalError",
           "ConvergenceWarning", "NumericalWarning", "TargetWarning", "__version__"]
