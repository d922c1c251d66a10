"""nettrim: convex layer-wise pruning of trained ReLU networks (Net-Trim)."""
from .layer import ConvergenceWarning, LayerResult, prune_layer

__version__ = "0.1.0"
__all__ = ["prune_layer", "LayerResult", "ConvergenceWarning", "__version__"]
