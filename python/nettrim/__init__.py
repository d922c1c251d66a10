"""nettrim: convex layer-wise pruning of trained ReLU networks (Net-Trim)."""
from .layer import ConvergenceWarning, LayerResult, prune_layer
from .layers import AvgPool2d, BatchNorm, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .network import Network, from_arrays
from .schemes import LayerReport, PruneReport, prune_network
from .reporting import report_summary as _report_summary

# A readable report: report.summary() and print(report) give the command line's table.  (Set
# here rather than in schemes.py, which is being restructured; the class can take them over.)
PruneReport.summary = _report_summary
PruneReport.__str__ = _report_summary

__version__ = "0.1.0"
__all__ = ["prune_layer", "LayerResult", "ConvergenceWarning", "Network", "Dense", "Conv2d", "Flatten",
           "MaxPool2d", "AvgPool2d", "BatchNorm", "ReLU", "from_arrays", "prune_network", "PruneReport",
           "LayerReport", "__version__"]
