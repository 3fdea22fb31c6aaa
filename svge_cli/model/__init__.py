"""SVGe model: plain torch modules on padded dense graph batches."""
from .config import ModelConfig
from .svge import SVGe, reverse_graphs, union_graphs
from .weights import load_state_arrays, state_arrays

__all__ = ["ModelConfig", "SVGe", "load_state_arrays", "reverse_graphs", "state_arrays", "union_graphs"]
